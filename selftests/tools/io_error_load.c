// SPDX-License-Identifier: GPL-2.0
/*
 * io_error_load DIR WORKERS SECONDS
 *
 * A mixed filesystem load for fault-injection tests (after xfstests
 * generic/019), run for SECONDS. Worker k uses the 1 MiB file DIR/load<k>
 * (created and filled first if it does not exist yet) in one of three ways:
 *   k % 3 == 0: random 16 KiB pwrite()s, fsync() after every fourth,
 *   k % 3 == 1: drops the file's cached pages, maps it shared, dirties every
 *               page through the mapping (page faults read the disk) and
 *               msync()s it,
 *   k % 3 == 2: random 64 KiB O_DIRECT pread()s.
 * Failures are counted, not fatal: EIO, SIGBUS (a failed read behind a page
 * fault), EROFS (the filesystem gave up) and anything else. The summary line
 * says how many of each; the caller decides what was expected.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_SIZE (1024 * 1024)
#define WRITE_SIZE (16 * 1024)
#define READ_SIZE (64 * 1024)
#define MAX_REPORTS 10

static const char *dir;
static atomic_bool stop;
static atomic_ulong ops, eio, sigbus, erofs, other_errors;

/* A SIGBUS while touching a mapping jumps back to the worker that faulted. */
static __thread sigjmp_buf fault_jump;
static __thread volatile sig_atomic_t in_mapping;

static void on_sigbus(int sig)
{
	if (!in_mapping) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	siglongjmp(fault_jump, 1);
}

/* Count one failed call by its errno. */
static void failed(int k, const char *what)
{
	int err = errno;

	if (err == EIO) {
		atomic_fetch_add(&eio, 1);
	} else if (err == EROFS) {
		atomic_fetch_add(&erofs, 1);
	} else if (atomic_fetch_add(&other_errors, 1) < MAX_REPORTS) {
		fprintf(stderr, "worker %d: %s: %s\n", k, what, strerror(err));
	}
}

/* Open DIR/load<k>, creating and filling it if it is not FILE_SIZE long. */
static int open_file(int k)
{
	char path[4096], *buf;
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "%s/load%d", dir, k);
	fd = open(path, O_RDWR | O_CREAT, 0644);
	if (fd < 0) {
		failed(k, "open");
		return -1;
	}
	if (fstat(fd, &st) == 0 && st.st_size == FILE_SIZE)
		return fd;
	buf = malloc(FILE_SIZE);
	if (!buf)
		abort();
	memset(buf, 'a' + k % 26, FILE_SIZE);
	if (pwrite(fd, buf, FILE_SIZE, 0) != FILE_SIZE || fsync(fd)) {
		failed(k, "fill");
		close(fd);
		fd = -1;
	}
	free(buf);
	return fd;
}

static void write_fsync_loop(int k, int fd)
{
	unsigned int seed = k;
	unsigned long n = 0;
	char buf[WRITE_SIZE];

	memset(buf, 'A' + k % 26, sizeof(buf));
	while (!atomic_load(&stop)) {
		off_t off = (off_t)(rand_r(&seed) % (FILE_SIZE / WRITE_SIZE)) * WRITE_SIZE;

		atomic_fetch_add(&ops, 1);
		if (pwrite(fd, buf, sizeof(buf), off) != sizeof(buf))
			failed(k, "pwrite");
		if (++n % 4 == 0 && fsync(fd))
			failed(k, "fsync");
	}
}

static void mmap_loop(int k, int fd)
{
	long page = sysconf(_SC_PAGESIZE);

	while (!atomic_load(&stop)) {
		volatile char *map;
		long i;

		atomic_fetch_add(&ops, 1);
		posix_fadvise(fd, 0, FILE_SIZE, POSIX_FADV_DONTNEED);
		map = mmap(NULL, FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED) {
			failed(k, "mmap");
			continue;
		}
		if (sigsetjmp(fault_jump, 1) == 0) {
			in_mapping = 1;
			for (i = 0; i < FILE_SIZE; i += page)
				map[i]++;
			in_mapping = 0;
			if (msync((void *)map, FILE_SIZE, MS_SYNC))
				failed(k, "msync");
		} else {
			in_mapping = 0;
			atomic_fetch_add(&sigbus, 1);
		}
		munmap((void *)map, FILE_SIZE);
	}
}

static void direct_read_loop(int k, int fd)
{
	unsigned int seed = k;
	void *buf;

	/* O_DIRECT reads the disk, never the page cache. */
	if (fcntl(fd, F_SETFL, O_DIRECT) || posix_memalign(&buf, 4096, READ_SIZE)) {
		failed(k, "O_DIRECT");
		return;
	}
	while (!atomic_load(&stop)) {
		off_t off = (off_t)(rand_r(&seed) % (FILE_SIZE / READ_SIZE)) * READ_SIZE;

		atomic_fetch_add(&ops, 1);
		if (pread(fd, buf, READ_SIZE, off) != READ_SIZE)
			failed(k, "pread");
	}
	free(buf);
}

static void *worker_main(void *arg)
{
	int k = (int)(long)arg;
	int fd = open_file(k);

	if (fd < 0)
		return NULL;
	switch (k % 3) {
	case 0:
		write_fsync_loop(k, fd);
		break;
	case 1:
		mmap_loop(k, fd);
		break;
	default:
		direct_read_loop(k, fd);
		break;
	}
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_sigbus };
	int nworkers, seconds, k;
	pthread_t *threads;

	if (argc != 4 || (nworkers = atoi(argv[2])) < 1 || (seconds = atoi(argv[3])) < 1) {
		fprintf(stderr, "usage: %s DIR WORKERS SECONDS\n", argv[0]);
		return 2;
	}
	dir = argv[1];
	sigaction(SIGBUS, &sa, NULL);
	threads = calloc(nworkers, sizeof(*threads));
	if (!threads)
		return 1;
	for (k = 0; k < nworkers; k++) {
		if (pthread_create(&threads[k], NULL, worker_main, (void *)(long)k)) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	}
	sleep(seconds);
	atomic_store(&stop, true);
	for (k = 0; k < nworkers; k++)
		pthread_join(threads[k], NULL);
	printf("workers=%d seconds=%d ops=%lu eio=%lu sigbus=%lu erofs=%lu other_errors=%lu\n",
	       nworkers, seconds, atomic_load(&ops), atomic_load(&eio),
	       atomic_load(&sigbus), atomic_load(&erofs), atomic_load(&other_errors));
	free(threads);
	return 0;
}
