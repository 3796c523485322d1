// SPDX-License-Identifier: GPL-2.0
/*
 * dio_punch_race DEVICE BACKING CYCLES THREADS
 *
 * THREADS threads do random O_DIRECT reads and writes (4-64 KiB, 4 KiB
 * aligned) on the loop DEVICE while the main thread, CYCLES times, punches a
 * hole in the BACKING file, shrinks it and grows it back to its size. The
 * device keeps its capacity, so its I/O meets holes and a file that ends too
 * early: each request must complete, with data or with EIO, never hang.
 * Afterwards the backing file has its size back and a direct write + read
 * through the device must return what was written.
 *
 * Exit status 0 unless an I/O failed with something other than EIO or the
 * final check failed; the caller bounds the run time to catch hangs.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define BLOCK 4096
#define MAX_BLOCKS 16
#define MAX_REPORTS 10

static const char *device;
static uint64_t dev_size;
static atomic_bool stop;
static atomic_ulong ios, short_ios, eio, other_errors;

static void *io_main(void *arg)
{
	unsigned int seed = (unsigned int)(long)arg;
	void *buf;
	int fd;

	fd = open(device, O_RDWR | O_DIRECT);
	if (fd < 0 || posix_memalign(&buf, BLOCK, MAX_BLOCKS * BLOCK)) {
		perror(device);
		atomic_fetch_add(&other_errors, 1);
		return NULL;
	}
	memset(buf, 0x5a, MAX_BLOCKS * BLOCK);
	while (!atomic_load(&stop)) {
		off_t off = (off_t)(rand_r(&seed) % (dev_size / BLOCK)) * BLOCK;
		size_t len = (size_t)(1 + rand_r(&seed) % MAX_BLOCKS) * BLOCK;
		bool write = rand_r(&seed) & 1;
		ssize_t n;

		if ((uint64_t)off + len > dev_size)
			len = dev_size - off;
		n = write ? pwrite(fd, buf, len, off) : pread(fd, buf, len, off);
		atomic_fetch_add(&ios, 1);
		if (n == (ssize_t)len)
			continue;
		if (n >= 0)
			atomic_fetch_add(&short_ios, 1);
		else if (errno == EIO)
			atomic_fetch_add(&eio, 1);
		else if (atomic_fetch_add(&other_errors, 1) < MAX_REPORTS)
			fprintf(stderr, "%s of %zu at %lld: %s\n", write ? "write" : "read",
				len, (long long)off, strerror(errno));
	}
	free(buf);
	close(fd);
	return NULL;
}

/* Punch, shrink, regrow, with pauses so that I/O runs in between. */
static int punch_and_truncate(int fd, int cycles)
{
	unsigned int seed = 1;
	int c;

	for (c = 0; c < cycles; c++) {
		off_t off = (off_t)(rand_r(&seed) % (dev_size / BLOCK)) * BLOCK;
		off_t len = (off_t)(1 + rand_r(&seed) % 256) * BLOCK;
		off_t shrunk = (off_t)(rand_r(&seed) % (dev_size / BLOCK)) * BLOCK;

		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len)) {
			perror("fallocate(PUNCH_HOLE)");
			return -1;
		}
		usleep(500);
		if (ftruncate(fd, shrunk)) {
			perror("ftruncate (shrink)");
			return -1;
		}
		usleep(500);
		if (ftruncate(fd, dev_size)) {
			perror("ftruncate (grow)");
			return -1;
		}
		usleep(500);
	}
	return 0;
}

/* With the backing file whole again, the device must work normally. */
static int final_check(void)
{
	unsigned char *out, *in;
	off_t off = dev_size / 2 / BLOCK * BLOCK;
	int fd, ret = -1;

	fd = open(device, O_RDWR | O_DIRECT);
	if (fd < 0 || posix_memalign((void **)&out, BLOCK, BLOCK) ||
	    posix_memalign((void **)&in, BLOCK, BLOCK)) {
		perror(device);
		return -1;
	}
	memset(out, 0xa5, BLOCK);
	if (pwrite(fd, out, BLOCK, off) != BLOCK || pread(fd, in, BLOCK, off) != BLOCK)
		perror("final check");
	else if (memcmp(in, out, BLOCK))
		fprintf(stderr, "final check: read back other data than written\n");
	else
		ret = 0;
	free(out);
	free(in);
	close(fd);
	return ret;
}

int main(int argc, char **argv)
{
	int backing_fd, dev_fd, cycles, nthreads, i, punch_ret, check_ret;
	pthread_t *threads;

	if (argc != 5 || (cycles = atoi(argv[3])) < 1 || (nthreads = atoi(argv[4])) < 1) {
		fprintf(stderr, "usage: %s DEVICE BACKING CYCLES THREADS\n", argv[0]);
		return 2;
	}
	device = argv[1];
	dev_fd = open(device, O_RDONLY);
	if (dev_fd < 0 || ioctl(dev_fd, BLKGETSIZE64, &dev_size) || dev_size < BLOCK) {
		fprintf(stderr, "%s: cannot get a size\n", device);
		return 1;
	}
	close(dev_fd);
	backing_fd = open(argv[2], O_RDWR);
	if (backing_fd < 0) {
		perror(argv[2]);
		return 1;
	}

	threads = calloc(nthreads, sizeof(*threads));
	if (!threads)
		return 1;
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&threads[i], NULL, io_main, (void *)(long)(i + 1))) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	}
	punch_ret = punch_and_truncate(backing_fd, cycles);
	atomic_store(&stop, true);
	for (i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	if (ftruncate(backing_fd, dev_size))
		perror("ftruncate");
	close(backing_fd);
	check_ret = final_check();

	printf("cycles=%d threads=%d ios=%lu short=%lu eio=%lu other_errors=%lu final_check=%s\n",
	       cycles, nthreads, atomic_load(&ios), atomic_load(&short_ios), atomic_load(&eio),
	       atomic_load(&other_errors), check_ret ? "failed" : "ok");
	free(threads);
	return punch_ret || check_ret || other_errors ? 1 : 0;
}
