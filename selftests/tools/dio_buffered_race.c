// SPDX-License-Identifier: GPL-2.0
/*
 * dio_buffered_race FILE THREADS REGION ITERATIONS
 *
 * Modelled on xfstests generic/418 (dio-invalidate-cache): THREADS threads
 * each own a disjoint REGION-byte range of FILE (REGION a multiple of 512;
 * when it is not a multiple of the page size, neighbours share page-cache
 * pages). Every iteration, each thread:
 *   1. reads its range buffered (caching the previous pattern) and checks it,
 *   2. writes a new pattern with O_DIRECT, reads it back buffered: the direct
 *      write must have invalidated the cached pages,
 *   3. writes another pattern buffered, reads it back with O_DIRECT: the
 *      direct read must see the dirty pages.
 * Patterns are bytes 0x01..0xff, different per thread and per step, and every
 * byte read is checked. Exit status 0 only with no mismatch and no I/O error.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_REPORTS 10

static const char *path;
static size_t region;
static int iterations;
static atomic_ulong checks, mismatches, io_errors;

struct worker {
	int id;
	pthread_t thread;
};

/* Compare buf with pattern; report the first few mismatches. */
static void verify(int id, int iter, const char *step, const unsigned char *buf,
		   unsigned char pattern)
{
	size_t i, first;

	atomic_fetch_add(&checks, 1);
	for (i = 0; i < region && buf[i] == pattern; i++)
		;
	if (i == region)
		return;
	first = i;
	if (atomic_fetch_add(&mismatches, 1) < MAX_REPORTS)
		fprintf(stderr, "thread %d iteration %d %s: byte %zu of region is 0x%02x, expected 0x%02x\n",
			id, iter, step, first, buf[first], pattern);
}

/* The pattern after p: 0x01..0xff, never 0 (what a hole reads as). */
static unsigned char next_pattern(unsigned char p)
{
	return p % 255 + 1;
}

static int transfer(int fd, void *buf, off_t off, int write, const char *what)
{
	ssize_t n = write ? pwrite(fd, buf, region, off) : pread(fd, buf, region, off);

	if (n == (ssize_t)region)
		return 0;
	fprintf(stderr, "%s at %lld: %s\n", what, (long long)off,
		n < 0 ? strerror(errno) : "short transfer");
	atomic_fetch_add(&io_errors, 1);
	return -1;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	off_t off = (off_t)w->id * region;
	unsigned char prev = 0, pattern = w->id * 37 % 255;
	int dio_fd, buf_fd, iter;
	unsigned char *buf;

	dio_fd = open(path, O_RDWR | O_DIRECT);
	buf_fd = open(path, O_RDWR);
	if (dio_fd < 0 || buf_fd < 0 || posix_memalign((void **)&buf, 4096, region)) {
		perror(path);
		atomic_fetch_add(&io_errors, 1);
		return NULL;
	}
	for (iter = 0; iter < iterations; iter++) {
		if (transfer(buf_fd, buf, off, 0, "buffered read"))
			break;
		verify(w->id, iter, "cached read", buf, prev);

		memset(buf, pattern = next_pattern(pattern), region);
		if (transfer(dio_fd, buf, off, 1, "direct write") ||
		    transfer(buf_fd, buf, off, 0, "buffered read"))
			break;
		verify(w->id, iter, "buffered read after direct write", buf, pattern);

		memset(buf, pattern = next_pattern(pattern), region);
		if (transfer(buf_fd, buf, off, 1, "buffered write") ||
		    transfer(dio_fd, buf, off, 0, "direct read"))
			break;
		verify(w->id, iter, "direct read after buffered write", buf, pattern);
		prev = pattern;
	}
	free(buf);
	close(dio_fd);
	close(buf_fd);
	return NULL;
}

int main(int argc, char **argv)
{
	struct worker *workers;
	int nthreads, fd, i;

	if (argc != 5 || (nthreads = atoi(argv[2])) < 1 ||
	    (region = strtoul(argv[3], NULL, 0)) == 0 || region % 512 ||
	    (iterations = atoi(argv[4])) < 1) {
		fprintf(stderr, "usage: %s FILE THREADS REGION(multiple of 512) ITERATIONS\n",
			argv[0]);
		return 2;
	}
	path = argv[1];
	/* A fresh file of zeros: the first cached read expects 0. */
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, (off_t)nthreads * region) || fsync(fd)) {
		perror(path);
		return 1;
	}
	close(fd);

	workers = calloc(nthreads, sizeof(*workers));
	if (!workers)
		return 1;
	for (i = 0; i < nthreads; i++) {
		workers[i].id = i;
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i])) {
			fprintf(stderr, "pthread_create failed\n");
			return 1;
		}
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(workers[i].thread, NULL);
	printf("threads=%d region=%zu iterations=%d checks=%lu mismatches=%lu io_errors=%lu\n",
	       nthreads, region, iterations, atomic_load(&checks),
	       atomic_load(&mismatches), atomic_load(&io_errors));
	free(workers);
	return mismatches || io_errors ? 1 : 0;
}
