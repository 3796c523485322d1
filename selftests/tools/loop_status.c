// SPDX-License-Identifier: GPL-2.0
/*
 * loop_status [--legacy] [--excl] DEVICE [offset=N] [sizelimit=N] [name=S]
 *             [autoclear=0|1] [partscan]
 * loop_status --get DEVICE
 * loop_status --set-fd DEVICE FILE
 *
 * The loop ioctls losetup cannot issue on a bound device. The first form
 * reads the status (LOOP_GET_STATUS64, or the legacy LOOP_GET_STATUS with
 * --legacy), changes the fields given and writes it back (LOOP_SET_STATUS64
 * or LOOP_SET_STATUS), on DEVICE opened read-write (and O_EXCL with --excl).
 * --get prints "offset sizelimit flags name" from LOOP_GET_STATUS64.
 * --set-fd binds FILE with LOOP_SET_FD (never LOOP_CONFIGURE).
 *
 * Exit status 0 on success. When the ioctl fails, its errno's name (EBUSY,
 * ...) is printed on stdout and the exit status is 1; other errors exit 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int fail_ioctl(const char *what)
{
	const char *name = strerrorname_np(errno);

	fprintf(stderr, "%s: %s\n", what, strerror(errno));
	printf("%s\n", name ? name : "unknown errno");
	return 1;
}

static int open_device(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "open %s: %s\n", path, strerror(errno));
		exit(2);
	}
	return fd;
}

static unsigned long long number(const char *arg)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(arg, &end, 0);
	if (errno || *end) {
		fprintf(stderr, "not a number: %s\n", arg);
		exit(2);
	}
	return n;
}

/* One change to the status: the same for loop_info64 and loop_info. */
struct change {
	bool offset, sizelimit, name, autoclear, partscan;
	unsigned long long offset_v, sizelimit_v;
	bool autoclear_v;
	const char *name_v;
};

static void parse_change(struct change *c, int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];

		if (!strncmp(a, "offset=", 7)) {
			c->offset = true;
			c->offset_v = number(a + 7);
		} else if (!strncmp(a, "sizelimit=", 10)) {
			c->sizelimit = true;
			c->sizelimit_v = number(a + 10);
		} else if (!strncmp(a, "name=", 5)) {
			c->name = true;
			c->name_v = a + 5;
		} else if (!strncmp(a, "autoclear=", 10)) {
			c->autoclear = true;
			c->autoclear_v = number(a + 10) != 0;
		} else if (!strcmp(a, "partscan")) {
			c->partscan = true;
		} else {
			fprintf(stderr, "unknown change: %s\n", a);
			exit(2);
		}
	}
}

static __u32 changed_flags(const struct change *c, __u32 flags)
{
	if (c->autoclear)
		flags = c->autoclear_v ? flags | LO_FLAGS_AUTOCLEAR : flags & ~LO_FLAGS_AUTOCLEAR;
	if (c->partscan)
		flags |= LO_FLAGS_PARTSCAN;
	return flags;
}

static int set_status64(int fd, const struct change *c)
{
	struct loop_info64 info;

	if (ioctl(fd, LOOP_GET_STATUS64, &info))
		return fail_ioctl("LOOP_GET_STATUS64");
	if (c->offset)
		info.lo_offset = c->offset_v;
	if (c->sizelimit)
		info.lo_sizelimit = c->sizelimit_v;
	if (c->name)
		snprintf((char *)info.lo_file_name, sizeof(info.lo_file_name), "%s", c->name_v);
	info.lo_flags = changed_flags(c, info.lo_flags);
	if (ioctl(fd, LOOP_SET_STATUS64, &info))
		return fail_ioctl("LOOP_SET_STATUS64");
	return 0;
}

static int set_status_legacy(int fd, const struct change *c)
{
	struct loop_info info;

	if (c->sizelimit) {
		fprintf(stderr, "loop_info has no size limit\n");
		exit(2);
	}
	if (ioctl(fd, LOOP_GET_STATUS, &info))
		return fail_ioctl("LOOP_GET_STATUS");
	if (c->offset)
		info.lo_offset = (int)c->offset_v;
	if (c->name)
		snprintf(info.lo_name, sizeof(info.lo_name), "%s", c->name_v);
	info.lo_flags = (int)changed_flags(c, (__u32)info.lo_flags);
	if (ioctl(fd, LOOP_SET_STATUS, &info))
		return fail_ioctl("LOOP_SET_STATUS");
	return 0;
}

static int get_status(const char *dev)
{
	struct loop_info64 info;
	int fd = open_device(dev, O_RDONLY);

	if (ioctl(fd, LOOP_GET_STATUS64, &info))
		return fail_ioctl("LOOP_GET_STATUS64");
	printf("%llu %llu %u %.*s\n", (unsigned long long)info.lo_offset,
	       (unsigned long long)info.lo_sizelimit, info.lo_flags,
	       (int)sizeof(info.lo_file_name), (char *)info.lo_file_name);
	return 0;
}

static int set_fd(const char *dev, const char *file)
{
	int fd = open_device(dev, O_RDWR);
	int file_fd = open_device(file, O_RDWR);

	if (ioctl(fd, LOOP_SET_FD, file_fd))
		return fail_ioctl("LOOP_SET_FD");
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: loop_status [--legacy] [--excl] DEVICE CHANGE...\n"
			"       loop_status --get DEVICE\n"
			"       loop_status --set-fd DEVICE FILE\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct change change = { 0 };
	bool legacy = false;
	int flags = O_RDWR;
	int i = 1;

	if (argc == 3 && !strcmp(argv[1], "--get"))
		return get_status(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "--set-fd"))
		return set_fd(argv[2], argv[3]);
	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (!strcmp(argv[i], "--legacy"))
			legacy = true;
		else if (!strcmp(argv[i], "--excl"))
			flags |= O_EXCL;
		else
			usage();
	}
	if (i >= argc)
		usage();
	parse_change(&change, argc - i - 1, argv + i + 1);
	int fd = open_device(argv[i], flags);

	return legacy ? set_status_legacy(fd, &change) : set_status64(fd, &change);
}
