// SPDX-License-Identifier: GPL-2.0
/*
 * loop_setup_bench: the setup-path benchmarks B7 and B8 of perf-anchors.md,
 * for any loop driver, chosen by its device name prefix ("loop" for loop.c,
 * "rloop" for rust_loop). Each command prints one JSON object on stdout.
 *
 *   loop_setup_bench PREFIX cycles configure|legacy SECONDS BACKING_FILE
 *       B7: attach/detach cycles for SECONDS: LOOP_CTL_GET_FREE, open,
 *       attach (LOOP_CONFIGURE, or LOOP_SET_FD + LOOP_SET_STATUS64 +
 *       LOOP_SET_BLOCK_SIZE), one 4 KiB read, LOOP_CLR_FD, close.
 *   loop_setup_bench PREFIX attach THREADS FILE_DIR
 *       B8: THREADS threads each take a free device and attach it to its own
 *       32 MiB file at once, read a block, then all detach at once.
 *   loop_setup_bench PREFIX ctl COUNT THREADS FIRST_INDEX
 *       B8: COUNT LOOP_CTL_ADD (indices FIRST_INDEX...) spread over THREADS
 *       threads, then COUNT LOOP_CTL_REMOVE of the same devices.
 *   loop_setup_bench PREFIX population SIZES SAMPLES BACKING_FILE
 *       B9: the cost of device management as the population grows. The
 *       devices made at load time are removed, then for each population in
 *       SIZES (comma-separated, ascending): LOOP_CTL_ADD(-1) up to that many
 *       devices, a wait for udev to settle, then SAMPLES timed
 *       LOOP_CTL_ADD(-1), SAMPLES timed LOOP_CTL_REMOVE of those devices,
 *       and SAMPLES timed cycles of LOOP_CTL_GET_FREE, open, LOOP_CONFIGURE,
 *       LOOP_CLR_FD, close (medians in ms).
 *
 * EBUSY and EAGAIN are counted and the step is retried (they are what B8
 * gates on); any other error ends the program with status 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define BLOCK_SIZE 4096
#define ATTACH_FILE_SIZE (32 << 20)
/* Retries of one EBUSY/EAGAIN step before the run is declared stuck. */
#define MAX_RETRIES 10000

static const char *prefix;
static atomic_long busy_errors;   /* EBUSY */
static atomic_long again_errors;  /* EAGAIN */

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Counts EBUSY/EAGAIN and returns 1 (retry); dies on anything else. */
static int retryable(const char *what)
{
	if (errno == EBUSY)
		atomic_fetch_add(&busy_errors, 1);
	else if (errno == EAGAIN)
		atomic_fetch_add(&again_errors, 1);
	else
		die("%s: %s", what, strerror(errno));
	return 1;
}

static int open_control(void)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/dev/%s-control", prefix);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	return fd;
}

static int open_device(int number)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/dev/%s%d", prefix, number);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	return fd;
}

/* Per-step durations of the B7 cycle, for the p50/p99 in the report. */
enum step { GET_FREE, OPEN, ATTACH, READ, CLR_FD, CLOSE, NR_STEPS };
static const char *const step_names[NR_STEPS] = {
	"get_free", "open", "attach", "read", "clr_fd", "close",
};

struct samples {
	double *values;
	size_t count, capacity;
};

static void add_sample(struct samples *s, double value)
{
	if (s->count == s->capacity) {
		s->capacity = s->capacity ? 2 * s->capacity : 1024;
		s->values = realloc(s->values, s->capacity * sizeof(*s->values));
		if (!s->values)
			die("out of memory");
	}
	s->values[s->count++] = value;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts the samples; returns the value at quantile q (0..1). */
static double quantile(struct samples *s, double q)
{
	if (!s->count)
		return 0;
	qsort(s->values, s->count, sizeof(*s->values), compare_doubles);
	return s->values[(size_t)(q * (s->count - 1) + 0.5)];
}

/*
 * Attaches file_fd to dev_fd: one LOOP_CONFIGURE (4 KiB blocks, direct I/O),
 * or the legacy sequence that reaches the same block size. Returns 0, or -1
 * with errno set.
 */
static int attach(int dev_fd, int file_fd, int legacy)
{
	if (!legacy) {
		struct loop_config config = {
			.fd = file_fd,
			.block_size = BLOCK_SIZE,
			.info.lo_flags = LO_FLAGS_DIRECT_IO,
		};

		return ioctl(dev_fd, LOOP_CONFIGURE, &config);
	}

	struct loop_info64 info = { 0 };

	if (ioctl(dev_fd, LOOP_SET_FD, file_fd))
		return -1;
	if (ioctl(dev_fd, LOOP_SET_STATUS64, &info) ||
	    ioctl(dev_fd, LOOP_SET_BLOCK_SIZE, BLOCK_SIZE)) {
		int saved = errno;

		ioctl(dev_fd, LOOP_CLR_FD);
		errno = saved;
		return -1;
	}
	return 0;
}

static void read_block(int dev_fd)
{
	static char buf[BLOCK_SIZE];

	if (pread(dev_fd, buf, sizeof(buf), 0) != sizeof(buf))
		die("read of /dev/%s*: %s", prefix, strerror(errno));
}

static void print_errors(void)
{
	printf("\"ebusy\": %ld, \"eagain\": %ld",
	       atomic_load(&busy_errors), atomic_load(&again_errors));
}

static int run_cycles(const char *path, double seconds, const char *backing)
{
	int legacy = !strcmp(path, "legacy");
	struct samples steps[NR_STEPS] = { 0 };
	int control = open_control();
	int file_fd = open(backing, O_RDWR | O_CLOEXEC);
	long cycles = 0, retries = 0;
	double start, end;

	if (!legacy && strcmp(path, "configure"))
		die("unknown cycle path '%s'", path);
	if (file_fd < 0)
		die("open %s: %s", backing, strerror(errno));

	start = now();
	while ((end = now()) - start < seconds) {
		double t[NR_STEPS + 1];
		int number, dev_fd;

		t[GET_FREE] = now();
		number = ioctl(control, LOOP_CTL_GET_FREE);
		if (number < 0)
			die("LOOP_CTL_GET_FREE: %s", strerror(errno));
		t[OPEN] = now();
		dev_fd = open_device(number);
		t[ATTACH] = now();
		if (attach(dev_fd, file_fd, legacy)) {
			/* Someone else took the device: count it, take another. */
			retryable("attach");
			close(dev_fd);
			if (++retries > MAX_RETRIES)
				die("attach keeps failing");
			continue;
		}
		t[READ] = now();
		read_block(dev_fd);
		t[CLR_FD] = now();
		if (ioctl(dev_fd, LOOP_CLR_FD))
			die("LOOP_CLR_FD: %s", strerror(errno));
		t[CLOSE] = now();
		close(dev_fd);
		t[NR_STEPS] = now();
		for (int s = 0; s < NR_STEPS; s++)
			add_sample(&steps[s], (t[s + 1] - t[s]) * 1e6);
		cycles++;
	}

	printf("{\"command\": \"cycles\", \"path\": \"%s\", \"cycles\": %ld, "
	       "\"seconds\": %.6f, \"per_second\": %.3f, ",
	       path, cycles, end - start, cycles / (end - start));
	print_errors();
	printf(", \"step_us\": {");
	for (int s = 0; s < NR_STEPS; s++)
		printf("%s\"%s\": {\"p50\": %.1f, \"p99\": %.1f}", s ? ", " : "",
		       step_names[s], quantile(&steps[s], 0.5),
		       quantile(&steps[s], 0.99));
	printf("}}\n");
	return 0;
}

/* B8, parallel attach: the threads meet at three barriers, the main thread
 * timing the phases between them. */
struct attach_worker {
	pthread_t thread;
	pthread_barrier_t *barrier;
	int control, file_fd;
};

static void *attach_worker(void *arg)
{
	struct attach_worker *w = arg;
	int dev_fd = -1, retries = 0;

	pthread_barrier_wait(w->barrier);	/* start */
	while (dev_fd < 0) {
		int number = ioctl(w->control, LOOP_CTL_GET_FREE);

		if (number < 0) {
			retryable("LOOP_CTL_GET_FREE");
		} else {
			dev_fd = open_device(number);
			if (attach(dev_fd, w->file_fd, 0)) {
				/* Another thread was handed the same device. */
				retryable("LOOP_CONFIGURE");
				close(dev_fd);
				dev_fd = -1;
			}
		}
		if (dev_fd < 0 && ++retries > MAX_RETRIES)
			die("parallel attach keeps failing");
	}
	read_block(dev_fd);
	pthread_barrier_wait(w->barrier);	/* all bound */
	if (ioctl(dev_fd, LOOP_CLR_FD))
		die("LOOP_CLR_FD: %s", strerror(errno));
	close(dev_fd);
	pthread_barrier_wait(w->barrier);	/* all detached */
	return NULL;
}

static int run_attach(int threads, const char *dir)
{
	struct attach_worker *workers = calloc(threads, sizeof(*workers));
	pthread_barrier_t barrier;
	int control = open_control();
	double start, bound, detached;

	if (!workers)
		die("out of memory");
	pthread_barrier_init(&barrier, NULL, threads + 1);
	for (int i = 0; i < threads; i++) {
		char path[4096];
		struct attach_worker *w = &workers[i];

		snprintf(path, sizeof(path), "%s/attach-%d.img", dir, i);
		w->file_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (w->file_fd < 0 || ftruncate(w->file_fd, ATTACH_FILE_SIZE))
			die("create %s: %s", path, strerror(errno));
		unlink(path);	/* the open descriptor keeps it alive */
		w->barrier = &barrier;
		w->control = control;
		if (pthread_create(&w->thread, NULL, attach_worker, w))
			die("pthread_create failed");
	}
	pthread_barrier_wait(&barrier);
	start = now();
	pthread_barrier_wait(&barrier);
	bound = now();
	pthread_barrier_wait(&barrier);
	detached = now();
	for (int i = 0; i < threads; i++) {
		pthread_join(workers[i].thread, NULL);
		close(workers[i].file_fd);
	}

	printf("{\"command\": \"attach\", \"threads\": %d, \"attach_seconds\": %.6f, "
	       "\"attach_per_second\": %.3f, \"detach_seconds\": %.6f, ",
	       threads, bound - start, threads / (bound - start), detached - bound);
	print_errors();
	printf("}\n");
	return 0;
}

/* B8, LOOP_CTL_ADD/REMOVE: each thread adds, then removes, its own indices. */
struct ctl_worker {
	pthread_t thread;
	pthread_barrier_t *barrier;
	int control, first, count;
};

/* Issues one control ioctl, retrying EBUSY/EAGAIN. */
static void control_ioctl(int control, unsigned long request, int index,
			  const char *what)
{
	int retries = 0;

	while (ioctl(control, request, index) < 0) {
		retryable(what);
		if (++retries > MAX_RETRIES)
			die("%s %d keeps failing", what, index);
		usleep(1000);
	}
}

static void *ctl_worker(void *arg)
{
	struct ctl_worker *w = arg;

	pthread_barrier_wait(w->barrier);
	for (int i = 0; i < w->count; i++)
		control_ioctl(w->control, LOOP_CTL_ADD, w->first + i, "LOOP_CTL_ADD");
	pthread_barrier_wait(w->barrier);
	for (int i = 0; i < w->count; i++)
		control_ioctl(w->control, LOOP_CTL_REMOVE, w->first + i, "LOOP_CTL_REMOVE");
	pthread_barrier_wait(w->barrier);
	return NULL;
}

static int run_ctl(int count, int threads, int first_index)
{
	struct ctl_worker *workers = calloc(threads, sizeof(*workers));
	pthread_barrier_t barrier;
	int control = open_control();
	double start, added, removed;

	if (!workers)
		die("out of memory");
	if (count % threads)
		die("COUNT must be a multiple of THREADS");
	pthread_barrier_init(&barrier, NULL, threads + 1);
	for (int i = 0; i < threads; i++) {
		struct ctl_worker *w = &workers[i];

		w->barrier = &barrier;
		w->control = control;
		w->count = count / threads;
		w->first = first_index + i * w->count;
		if (pthread_create(&w->thread, NULL, ctl_worker, w))
			die("pthread_create failed");
	}
	pthread_barrier_wait(&barrier);
	start = now();
	pthread_barrier_wait(&barrier);
	added = now();
	pthread_barrier_wait(&barrier);
	removed = now();
	for (int i = 0; i < threads; i++)
		pthread_join(workers[i].thread, NULL);

	printf("{\"command\": \"ctl\", \"count\": %d, \"threads\": %d, "
	       "\"add_seconds\": %.6f, \"remove_seconds\": %.6f, "
	       "\"ops_per_second\": %.3f, ",
	       count, threads, added - start, removed - added,
	       2 * count / (removed - start));
	print_errors();
	printf("}\n");
	return 0;
}

/* B9: device management cost at growing populations. */

/* LOOP_CTL_REMOVE, retried while udev holds the new device open (EBUSY). */
static void remove_device(int control, int number)
{
	control_ioctl(control, LOOP_CTL_REMOVE, number, "LOOP_CTL_REMOVE");
}

/* Lets udev work through the events of the devices just made, so that one
 * measurement does not pay for the backlog of the previous step. */
static void settle_udev(void)
{
	if (system("udevadm settle --timeout=600 2>/dev/null"))
		fprintf(stderr, "udevadm settle failed or timed out\n");
}

static double median_ms(struct samples *s)
{
	return quantile(s, 0.5) * 1e3;
}

static int run_population(const char *sizes, int count, const char *backing)
{
	int control = open_control();
	int file_fd = open(backing, O_RDWR | O_CLOEXEC);
	int *numbers = calloc(count, sizeof(*numbers));
	int population = 0, first = 1;
	const char *p = sizes;

	if (file_fd < 0)
		die("open %s: %s", backing, strerror(errno));
	if (!numbers || count < 1)
		die("bad SAMPLES");
	/* The devices made at load time: the populations count from zero. */
	for (int i = 0; i < 256; i++)
		if (ioctl(control, LOOP_CTL_REMOVE, i) && errno != ENODEV)
			remove_device(control, i);

	printf("{\"command\": \"population\", \"samples\": %d, \"points\": [", count);
	while (*p) {
		struct samples add = { 0 }, remove = { 0 }, cycle = { 0 };
		int target = atoi(p);
		double start, grow_start = now();

		while (population < target) {
			if (ioctl(control, LOOP_CTL_ADD, -1) < 0)
				die("LOOP_CTL_ADD: %s", strerror(errno));
			population++;
		}
		double grow = now() - grow_start;

		settle_udev();
		for (int i = 0; i < count; i++) {
			start = now();
			numbers[i] = ioctl(control, LOOP_CTL_ADD, -1);
			add_sample(&add, now() - start);
			if (numbers[i] < 0)
				die("LOOP_CTL_ADD: %s", strerror(errno));
		}
		settle_udev();
		for (int i = count - 1; i >= 0; i--) {
			start = now();
			remove_device(control, numbers[i]);
			add_sample(&remove, now() - start);
		}
		settle_udev();
		for (int i = 0; i < count; i++) {
			int number, dev_fd, retries = 0;
			struct loop_config config = { .fd = file_fd };

			start = now();
			for (;;) {
				number = ioctl(control, LOOP_CTL_GET_FREE);
				if (number < 0)
					die("LOOP_CTL_GET_FREE: %s", strerror(errno));
				dev_fd = open_device(number);
				if (!ioctl(dev_fd, LOOP_CONFIGURE, &config))
					break;
				/* udev's probe of the last unbind, or a hold. */
				retryable("LOOP_CONFIGURE");
				close(dev_fd);
				if (++retries > MAX_RETRIES)
					die("GET_FREE + LOOP_CONFIGURE keeps failing");
			}
			if (ioctl(dev_fd, LOOP_CLR_FD))
				die("LOOP_CLR_FD: %s", strerror(errno));
			close(dev_fd);
			add_sample(&cycle, now() - start);
		}
		settle_udev();
		printf("%s{\"devices\": %d, \"grow_seconds\": %.3f, \"add_ms\": %.3f, "
		       "\"remove_ms\": %.3f, \"get_free_bind_unbind_ms\": %.3f}",
		       first ? "" : ", ", target, grow, median_ms(&add),
		       median_ms(&remove), median_ms(&cycle));
		first = 0;
		free(add.values);
		free(remove.values);
		free(cycle.values);
		p = strchr(p, ',');
		if (!p)
			break;
		p++;
	}
	printf("], ");
	print_errors();
	printf("}\n");
	close(file_fd);
	close(control);
	free(numbers);
	return 0;
}

static void usage(void)
{
	die("usage: loop_setup_bench PREFIX cycles configure|legacy SECONDS BACKING_FILE\n"
	    "       loop_setup_bench PREFIX attach THREADS FILE_DIR\n"
	    "       loop_setup_bench PREFIX ctl COUNT THREADS FIRST_INDEX\n"
	    "       loop_setup_bench PREFIX population SIZES SAMPLES BACKING_FILE");
}

int main(int argc, char **argv)
{
	if (argc < 3)
		usage();
	prefix = argv[1];
	if (!strcmp(argv[2], "cycles") && argc == 6)
		return run_cycles(argv[3], atof(argv[4]), argv[5]);
	if (!strcmp(argv[2], "attach") && argc == 5)
		return run_attach(atoi(argv[3]), argv[4]);
	if (!strcmp(argv[2], "ctl") && argc == 6)
		return run_ctl(atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
	if (!strcmp(argv[2], "population") && argc == 6)
		return run_population(argv[3], atoi(argv[4]), argv[5]);
	usage();
}
