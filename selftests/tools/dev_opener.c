// SPDX-License-Identifier: GPL-2.0
/*
 * dev_opener DEVICE THREADS
 *
 * Keeps opening DEVICE read-only, reading its first 4 KiB and closing it from
 * THREADS threads, as udev probes and monitoring tools do, until SIGINT or
 * SIGTERM. Then prints how many opens succeeded and how many failed; the
 * first few read errors are reported as they happen.
 * ENXIO is counted apart: loop devices refuse opens while they run down.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_REPORTS 10

static const char *device;
static atomic_bool stop;
static atomic_ulong opens, enxio, open_errors, read_errors;

static void *opener_main(void *arg)
{
	char buf[4096];

	(void)arg;
	while (!atomic_load(&stop)) {
		int fd = open(device, O_RDONLY);

		if (fd < 0) {
			atomic_fetch_add(errno == ENXIO ? &enxio : &open_errors, 1);
			continue;
		}
		atomic_fetch_add(&opens, 1);
		if (read(fd, buf, sizeof(buf)) < 0 &&
		    atomic_fetch_add(&read_errors, 1) < MAX_REPORTS)
			fprintf(stderr, "dev_opener: read %s: %s\n", device, strerror(errno));
		close(fd);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t *threads;
	sigset_t stop_signals;
	int nthreads, i, sig;

	if (argc != 3 || (nthreads = atoi(argv[2])) < 1) {
		fprintf(stderr, "usage: %s DEVICE THREADS\n", argv[0]);
		return 2;
	}
	device = argv[1];

	/* Block the stop signals in every thread; main waits for them. */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

	threads = calloc(nthreads, sizeof(*threads));
	if (!threads)
		return 1;
	for (i = 0; i < nthreads; i++) {
		int err = pthread_create(&threads[i], NULL, opener_main, NULL);

		if (err) {
			fprintf(stderr, "pthread_create: %s\n", strerror(err));
			return 1;
		}
	}
	sigwait(&stop_signals, &sig);
	atomic_store(&stop, true);
	for (i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	printf("opens=%lu enxio=%lu open_errors=%lu read_errors=%lu\n",
	       atomic_load(&opens), atomic_load(&enxio),
	       atomic_load(&open_errors), atomic_load(&read_errors));
	free(threads);
	return 0;
}
