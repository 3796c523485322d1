// SPDX-License-Identifier: GPL-2.0
/*
 * loop_io [-k] DEV FILE [DEV FILE...]
 *
 * For each pair: bind FILE to DEV with LOOP_CONFIGURE, write 64 KiB of fresh
 * bytes through DEV (offset picked from the pid), fsync, check that FILE holds
 * the same bytes there, then LOOP_CLR_FD (lazy: the device unbinds on its last
 * close) unless -k keeps it bound. Exit status 0 only if every step worked.
 *
 * lifecycle_test.sh runs it once per load/unload cycle: one process instead of
 * losetup + dd + cmp + losetup -d per device, which matters under TCG.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define CHUNK 65536

static int attach_write_check(const char *dev_path, const char *file_path, int keep)
{
	static char data[CHUNK], back[CHUNK];
	struct loop_config cfg;
	off_t off;
	int dev, file, ret = -1;
	size_t i;

	file = open(file_path, O_RDWR);
	dev = open(dev_path, O_RDWR);
	if (file < 0 || dev < 0) {
		fprintf(stderr, "open %s: %s\n", file < 0 ? file_path : dev_path, strerror(errno));
		goto out;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.fd = file;
	if (ioctl(dev, LOOP_CONFIGURE, &cfg)) {
		fprintf(stderr, "LOOP_CONFIGURE %s: %s\n", dev_path, strerror(errno));
		goto out;
	}
	off = (off_t)(getpid() % 32) * CHUNK;
	for (i = 0; i < CHUNK; i++)
		data[i] = (char)(rand() >> 7);
	if (pwrite(dev, data, CHUNK, off) != CHUNK || fsync(dev)) {
		fprintf(stderr, "write %s: %s\n", dev_path, strerror(errno));
		goto out;
	}
	if (pread(file, back, CHUNK, off) != CHUNK || memcmp(data, back, CHUNK)) {
		fprintf(stderr, "%s does not hold what was written to %s\n", file_path, dev_path);
		goto out;
	}
	if (!keep && ioctl(dev, LOOP_CLR_FD, 0)) {
		fprintf(stderr, "LOOP_CLR_FD %s: %s\n", dev_path, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (dev >= 0)
		close(dev);
	if (file >= 0)
		close(file);
	return ret;
}

int main(int argc, char **argv)
{
	int keep = argc > 1 && !strcmp(argv[1], "-k");
	int i, ret = 0;

	if ((argc - 1 - keep) < 2 || (argc - 1 - keep) % 2) {
		fprintf(stderr, "usage: %s [-k] DEV FILE [DEV FILE...]\n", argv[0]);
		return 2;
	}
	srand(getpid());
	for (i = 1 + keep; i < argc; i += 2)
		if (attach_write_check(argv[i], argv[i + 1], keep))
			ret = 1;
	return ret;
}
