// SPDX-License-Identifier: GPL-2.0
/*
 * unbound_mount CONTROL DEVPREFIX FIRST THREADS ROUNDS WORKDIR
 *
 * Reads of an unbound loop device must never make a later mount fail: an
 * unbound device has no data, and nothing it returned then (zeros, errors)
 * may stay in its page cache once a file is bound.
 *
 * Owner thread i uses device DEVPREFIX<FIRST+i> (created with LOOP_CTL_ADD on
 * CONTROL if missing, removed at the end) and its own cramfs image
 * WORKDIR/img<i>, built from WORKDIR/src<i>/data. While a reader thread keeps
 * opening the device and reading it (buffered and O_DIRECT), the owner, ROUNDS
 * times: binds the image (LOOP_CONFIGURE, read-only), mounts it on
 * WORKDIR/mnt<i>, compares the checksum of the mounted data file with the
 * source's, unmounts and detaches (LOOP_CLR_FD).
 *
 * Exit status 0 only if every mount succeeded and every checksum matched.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#define READ_SPAN (64 * 1024)	/* covers the cramfs superblock and root */
#define MAX_REPORTS 10
#define BIND_TIMEOUT_S 60	/* a lazy detach or a udev probe ends in this */

struct device {
	int index;
	char dev[64];
	char img[4096], src[4096], mnt[4096], mnt_data[4096];
	atomic_bool stop_reader;
	pthread_t owner, reader;
};

static int rounds;
static atomic_ulong mounts, mount_failures, checksum_errors, other_errors;
static atomic_ulong bind_retries, reads, read_errors;

/* FNV-1a 64 of a whole file, or 0 with errno set on a read error. */
static uint64_t checksum_file(const char *path)
{
	uint64_t hash = 0xcbf29ce484222325ULL;
	unsigned char buf[65536];
	ssize_t n, i;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (i = 0; i < n; i++)
			hash = (hash ^ buf[i]) * 0x100000001b3ULL;
	close(fd);
	return n < 0 ? 0 : hash;
}

/* Open, read, close in a loop, alternating buffered and O_DIRECT opens. */
static void *reader_main(void *arg)
{
	struct device *d = arg;
	unsigned long n = 0;
	void *buf;

	if (posix_memalign(&buf, 4096, READ_SPAN))
		return NULL;
	while (!atomic_load(&d->stop_reader)) {
		bool direct = n++ & 1;
		int fd = open(d->dev, O_RDONLY | (direct ? O_DIRECT : 0));

		/* ENXIO: the device is running down; not a read. */
		if (fd < 0 && errno == ENXIO)
			continue;
		if (fd < 0 || pread(fd, buf, READ_SPAN, 0) < 0) {
			if (atomic_fetch_add(&read_errors, 1) < MAX_REPORTS)
				fprintf(stderr, "%s: reader: %s %s: %s\n", d->dev,
					direct ? "direct" : "buffered", fd < 0 ? "open" : "read",
					strerror(errno));
		} else {
			atomic_fetch_add(&reads, 1);
		}
		if (fd >= 0)
			close(fd);
	}
	free(buf);
	return NULL;
}

/*
 * Open the device and bind the image (LOOP_CONFIGURE, read-only); returns the
 * open device. The previous round's LOOP_CLR_FD is lazy while the reader holds
 * the device: it ends at the last close, with opens failing ENXIO meanwhile.
 * So on EBUSY or ENXIO, retry with the device closed.
 */
static int open_and_bind(struct device *d)
{
	struct loop_config config = { .info.lo_flags = LO_FLAGS_READ_ONLY };
	time_t deadline = time(NULL) + BIND_TIMEOUT_S;
	int dev_fd, err;

	config.fd = open(d->img, O_RDONLY);
	if ((int)config.fd < 0) {
		perror(d->img);
		return -1;
	}
	for (;;) {
		dev_fd = open(d->dev, O_RDWR);
		if (dev_fd >= 0 && ioctl(dev_fd, LOOP_CONFIGURE, &config) == 0)
			break;
		err = errno;
		if (dev_fd >= 0)
			close(dev_fd);
		dev_fd = -1;
		if ((err != EBUSY && err != ENXIO) || time(NULL) >= deadline) {
			fprintf(stderr, "%s: bind: %s\n", d->dev, strerror(err));
			break;
		}
		atomic_fetch_add(&bind_retries, 1);
		usleep(1000);
	}
	close(config.fd);
	return dev_fd;
}

static void *owner_main(void *arg)
{
	struct device *d = arg;
	uint64_t expected = checksum_file(d->src);
	int round;

	if (!expected) {
		perror(d->src);
		atomic_fetch_add(&other_errors, 1);
		return NULL;
	}
	for (round = 0; round < rounds; round++) {
		int dev_fd = open_and_bind(d);

		if (dev_fd < 0) {
			atomic_fetch_add(&other_errors, 1);
			continue;
		}
		atomic_fetch_add(&mounts, 1);
		if (mount(d->dev, d->mnt, "cramfs", MS_RDONLY, NULL) < 0) {
			fprintf(stderr, "%s round %d: mount: %s\n", d->dev, round,
				strerror(errno));
			atomic_fetch_add(&mount_failures, 1);
		} else {
			uint64_t sum = checksum_file(d->mnt_data);

			if (sum != expected) {
				fprintf(stderr, "%s round %d: checksum %016llx, expected %016llx%s\n",
					d->dev, round, (unsigned long long)sum,
					(unsigned long long)expected,
					sum ? "" : " (read error)");
				atomic_fetch_add(&checksum_errors, 1);
			}
			if (umount(d->mnt) < 0) {
				fprintf(stderr, "%s: umount: %s\n", d->mnt, strerror(errno));
				atomic_fetch_add(&other_errors, 1);
			}
		}
		if (ioctl(dev_fd, LOOP_CLR_FD) < 0) {
			fprintf(stderr, "%s: LOOP_CLR_FD: %s\n", d->dev, strerror(errno));
			atomic_fetch_add(&other_errors, 1);
		}
		close(dev_fd);
	}
	return NULL;
}

/* LOOP_CTL_REMOVE, waiting out EBUSY: udev may still be probing the device
 * after the last detach. */
static int remove_device(int ctl_fd, int index)
{
	time_t deadline = time(NULL) + BIND_TIMEOUT_S;
	int ret;

	while ((ret = ioctl(ctl_fd, LOOP_CTL_REMOVE, index)) < 0 && errno == EBUSY &&
	       time(NULL) < deadline)
		usleep(10000);
	if (ret < 0)
		fprintf(stderr, "LOOP_CTL_REMOVE %d: %s\n", index, strerror(errno));
	return ret;
}

int main(int argc, char **argv)
{
	int ctl_fd, first, nthreads, i;
	const char *workdir;
	struct device *devs;
	bool *created;

	if (argc != 7 || (first = atoi(argv[3])) < 0 ||
	    (nthreads = atoi(argv[4])) < 1 || (rounds = atoi(argv[5])) < 1) {
		fprintf(stderr, "usage: %s CONTROL DEVPREFIX FIRST THREADS ROUNDS WORKDIR\n",
			argv[0]);
		return 2;
	}
	workdir = argv[6];
	ctl_fd = open(argv[1], O_RDWR);
	if (ctl_fd < 0) {
		perror(argv[1]);
		return 1;
	}
	devs = calloc(nthreads, sizeof(*devs));
	created = calloc(nthreads, sizeof(*created));
	if (!devs || !created)
		return 1;

	for (i = 0; i < nthreads; i++) {
		struct device *d = &devs[i];

		d->index = first + i;
		snprintf(d->dev, sizeof(d->dev), "%s%d", argv[2], d->index);
		snprintf(d->img, sizeof(d->img), "%s/img%d", workdir, i);
		snprintf(d->src, sizeof(d->src), "%s/src%d/data", workdir, i);
		snprintf(d->mnt, sizeof(d->mnt), "%s/mnt%d", workdir, i);
		snprintf(d->mnt_data, sizeof(d->mnt_data), "%s/mnt%d/data", workdir, i);
		if (ioctl(ctl_fd, LOOP_CTL_ADD, d->index) >= 0) {
			created[i] = true;
		} else if (errno != EEXIST) {
			fprintf(stderr, "LOOP_CTL_ADD %d: %s\n", d->index, strerror(errno));
			return 1;
		}
	}
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&devs[i].reader, NULL, reader_main, &devs[i]) ||
		    pthread_create(&devs[i].owner, NULL, owner_main, &devs[i])) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	}
	for (i = 0; i < nthreads; i++) {
		pthread_join(devs[i].owner, NULL);
		atomic_store(&devs[i].stop_reader, true);
		pthread_join(devs[i].reader, NULL);
	}
	for (i = 0; i < nthreads; i++)
		if (created[i] && remove_device(ctl_fd, devs[i].index) < 0)
			atomic_fetch_add(&other_errors, 1);
	printf("threads=%d rounds=%d mounts=%lu mount_failures=%lu checksum_errors=%lu "
	       "other_errors=%lu bind_retries=%lu reads=%lu read_errors=%lu\n",
	       nthreads, rounds, atomic_load(&mounts), atomic_load(&mount_failures),
	       atomic_load(&checksum_errors), atomic_load(&other_errors),
	       atomic_load(&bind_retries), atomic_load(&reads), atomic_load(&read_errors));
	return mount_failures || checksum_errors || other_errors ? 1 : 0;
}
