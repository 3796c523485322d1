// SPDX-License-Identifier: GPL-2.0
/*
 * Device numbering at scale, through /dev/<prefix>-control: with a few
 * thousand devices, LOOP_CTL_ADD(-1) takes the lowest free number (also the
 * gaps that removals leave), an explicit number that exists is EEXIST, a
 * removed one is ENODEV, a bound one EBUSY, and LOOP_CTL_GET_FREE returns the
 * lowest unbound device, or creates one at the lowest free number when every
 * device is bound. Adding the last devices must cost no more than
 * SCALE_LIMIT times adding the first ones: a registry searched linearly
 * (quadratic cost to add n devices) fails that at 2,000 devices.
 *
 * REGISTRY_DEVICES (default 2000) sets the population. The driver must be
 * loaded (registry_test.sh); the test removes its initial devices first, so
 * that the numbers it expects start at 0, and removes all it made at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "loop_test.h"

/* Devices timed at each end of the population for the scaling check. */
#define WINDOW 200
/* Per-add cost at the top over the cost at the bottom: loop.c's idr
 * measured about 1.3 at 2,000 devices (issue 13), a linear search 6. */
#define SCALE_LIMIT 3.0
/* Devices bound for the GET_FREE checks. */
#define BOUND 48


static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int compare_doubles(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, n, sizeof(*v), compare_doubles);
	return v[n / 2];
}

/* The node may lag a moment behind LOOP_CTL_ADD; ENXIO while it runs down. */
static int open_dev(int idx)
{
	char path[64];
	int fd, i;

	snprintf(path, sizeof(path), "/dev/%s%d", prefix(), idx);
	for (i = 0; i < 100; i++) {
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd >= 0 || (errno != ENOENT && errno != ENXIO))
			return fd;
		usleep(100 * 1000);
	}
	return -1;
}

static int bound(int idx)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/block/%s%d/loop", prefix(), idx);
	return access(path, F_OK) == 0;
}

/* Binds device IDX to FILE and closes it: it stays bound. */
static int bind_dev(int idx, int file)
{
	struct loop_config config = { .fd = file };
	int dev = open_dev(idx), ret;

	if (dev < 0)
		return -errno;
	ret = ioc(dev, LOOP_CONFIGURE, (long)&config);
	close(dev);
	return ret;
}

/* Lazy detach on our close; udev may hold the device a moment longer. */
static int unbind_dev(int idx)
{
	int dev = open_dev(idx), ret, i;

	if (dev < 0)
		return -errno;
	ret = ioc(dev, LOOP_CLR_FD, 0);
	close(dev);
	for (i = 0; ret == 0 && i < 100 && bound(idx); i++)
		usleep(100 * 1000);
	return ret ? ret : bound(idx) ? -EBUSY : 0;
}

/* LOOP_CTL_REMOVE, retried while udev holds the device (EBUSY). */
static long remove_dev(int ctl, int idx)
{
	long ret;
	int i;

	for (i = 0; i < 100; i++) {
		ret = ioc(ctl, LOOP_CTL_REMOVE, idx);
		if (ret != -EBUSY)
			return ret;
		usleep(100 * 1000);
	}
	return ret;
}

FIXTURE(registry) {
	int unused;
};

FIXTURE_SETUP(registry)
{
}

FIXTURE_TEARDOWN(registry)
{
}

/* Thousands of adds and removes take minutes under KASAN and TCG (the
 * harness's default limit is 30 s; lib.mk's runner stops a test at 900). */
TEST_F_TIMEOUT(registry, numbers_at_scale, 840)
{
	const char *env = getenv("REGISTRY_DEVICES");
	int n = env ? atoi(env) : 2000;
	int ctl, file, i, idx;
	double *first, *last, t, low, high;
	static const int gaps[] = { 0, 7, 999, 1500, 1998 };
	char path[PATH_MAX], ctl_path[64];
	long got;

	ASSERT_LE(2 * WINDOW, n);
	ASSERT_LT(1998, n);
	first = calloc(WINDOW, sizeof(*first));
	last = calloc(WINDOW, sizeof(*last));
	ASSERT_TRUE(first && last);
	snprintf(path, sizeof(path), "%s/registry_test.XXXXXX", scratch());
	file = mkstemp(path);
	ASSERT_LE(0, file);
	unlink(path);
	ASSERT_EQ(0, ftruncate(file, 1 << 20));
	snprintf(ctl_path, sizeof(ctl_path), "/dev/%s-control", prefix());
	ctl = open(ctl_path, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, ctl);

	/* Start empty: the devices made at load time go. */
	for (i = 0; i < 64; i++) {
		got = remove_dev(ctl, i);
		ASSERT_TRUE(got == 0 || got == -ENODEV) TH_LOG("remove %d: %ld", i, got);
	}

	/* Lowest free number first, each add timed. */
	for (i = 0; i < n; i++) {
		t = now();
		got = ioc(ctl, LOOP_CTL_ADD, -1);
		t = now() - t;
		ASSERT_EQ(i, got);
		if (i < WINDOW)
			first[i] = t;
		else if (i >= n - WINDOW)
			last[i - (n - WINDOW)] = t;
	}
	low = median(first, WINDOW);
	high = median(last, WINDOW);
	TH_LOG("LOOP_CTL_ADD(-1): median %.2f ms for devices 0..%d, %.2f ms for %d..%d",
	       low * 1e3, WINDOW - 1, high * 1e3, n - WINDOW, n - 1);
	EXPECT_GE(SCALE_LIMIT * low, high);

	/* Explicit numbers: existing ones are EEXIST; a new one leaves a gap
	 * that ADD(-1) fills before going past it. */
	EXPECT_EQ(-EEXIST, ioc(ctl, LOOP_CTL_ADD, 0));
	EXPECT_EQ(-EEXIST, ioc(ctl, LOOP_CTL_ADD, n - 1));
	EXPECT_EQ(n + 1, ioc(ctl, LOOP_CTL_ADD, n + 1));
	EXPECT_EQ(n, ioc(ctl, LOOP_CTL_ADD, -1));
	EXPECT_EQ(n + 2, ioc(ctl, LOOP_CTL_ADD, -1));

	/* Gaps left by removals, filled lowest first. */
	for (i = (int)(sizeof(gaps) / sizeof(gaps[0])) - 1; i >= 0; i--)
		ASSERT_EQ(0, remove_dev(ctl, gaps[i]));
	EXPECT_EQ(-ENODEV, ioc(ctl, LOOP_CTL_REMOVE, 999));
	for (i = 0; i < (int)(sizeof(gaps) / sizeof(gaps[0])); i++)
		EXPECT_EQ(gaps[i], ioc(ctl, LOOP_CTL_ADD, -1));
	EXPECT_EQ(n + 3, ioc(ctl, LOOP_CTL_ADD, -1));

	/* GET_FREE: the lowest unbound device, as devices get bound. Each
	 * one handed out is bound before the next call (rust_loop holds a
	 * handed-out device for 2 s, loop.c does not). */
	for (i = 0; i < BOUND; i++) {
		got = ioc(ctl, LOOP_CTL_GET_FREE, 0);
		ASSERT_EQ(i, got);
		ASSERT_EQ(0, bind_dev(i, file));
	}
	EXPECT_EQ(-EBUSY, ioc(ctl, LOOP_CTL_REMOVE, BOUND / 2));
	ASSERT_EQ(0, unbind_dev(BOUND / 2));
	EXPECT_EQ(BOUND / 2, ioc(ctl, LOOP_CTL_GET_FREE, 0));
	ASSERT_EQ(0, bind_dev(BOUND / 2, file));
	EXPECT_EQ(BOUND, ioc(ctl, LOOP_CTL_GET_FREE, 0));

	/* Every unbound device removed: GET_FREE makes a new one at the
	 * lowest free number, unbound. */
	for (idx = BOUND; idx <= n + 3; idx++)
		ASSERT_EQ(0, remove_dev(ctl, idx)) TH_LOG("remove %d", idx);
	got = ioc(ctl, LOOP_CTL_GET_FREE, 0);
	EXPECT_EQ(BOUND, got);
	EXPECT_FALSE(bound(BOUND));
	EXPECT_EQ(-EEXIST, ioc(ctl, LOOP_CTL_ADD, BOUND));
	EXPECT_EQ(BOUND + 1, ioc(ctl, LOOP_CTL_ADD, -1));

	for (i = 0; i < BOUND; i++)
		EXPECT_EQ(0, unbind_dev(i));
	for (i = 0; i <= BOUND + 1; i++)
		EXPECT_EQ(0, remove_dev(ctl, i));
	close(ctl);
	close(file);
	free(first);
	free(last);
}

TEST_HARNESS_MAIN
