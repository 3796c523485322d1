/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the C tests share: the driver under test and the scratch folder (from
 * the environment lib.sh sets up), and an ioctl that returns -errno.
 */
#ifndef LOOP_TEST_H
#define LOOP_TEST_H

#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>

/* The node prefix of the driver under test: "rloop" or "loop". */
static inline const char *prefix(void)
{
	const char *p = getenv("LOOP_PREFIX");

	return p && *p ? p : "rloop";
}

/* Where backing files go. */
static inline const char *scratch(void)
{
	const char *s = getenv("SCRATCH");

	return s && *s ? s : "/tmp";
}

/* ioctl returning the result or -errno, so EXPECT_EQ shows both numbers. */
static inline long ioc(int fd, unsigned long cmd, unsigned long arg)
{
	long ret = ioctl(fd, cmd, arg);

	return ret < 0 ? -errno : ret;
}

#endif /* LOOP_TEST_H */
