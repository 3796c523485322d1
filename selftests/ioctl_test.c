// SPDX-License-Identifier: GPL-2.0
/*
 * Loop ioctls, block device and control device: every success path, every bad
 * input with the errno loop.c returns, the write-or-CAP_SYS_ADMIN rule, the
 * GET_STATUS fields, the sysfs "loop" group, and lazy detach (autoclear).
 *
 * Device names come from $LOOP_PREFIX ("rloop" by default, "loop" for loop.c);
 * the driver must already be loaded (ioctl_test.sh does that). Backing files
 * live on $SCRATCH. Each test takes its own unbound device from
 * LOOP_CTL_GET_FREE, so a device still being torn down never gets in the way.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "loop_test.h"

#define FILE_SIZE (1024 * 1024)
/* Not a loop ioctl: in the LOOP_ range but unassigned (0x4C0B) or far from it. */
#define LOOP_UNKNOWN_IOCTL 0x4C0B
#define LOOP_UNKNOWN_IOCTL2 0x4C7F
#define LOOP_CTL_UNKNOWN_IOCTL 0x4C83
/* An index no test creates. */
#define MISSING_INDEX 999999
#define NOBODY 65534

#define IOC(fd, cmd, arg) ioc(fd, cmd, (unsigned long)(arg))

static void dev_path(char *buf, size_t len, int idx)
{
	snprintf(buf, len, "/dev/%s%d", prefix(), idx);
}

/* Open /dev/<prefix>IDX; the node may lag a moment behind LOOP_CTL_ADD. */
static int open_dev(int idx, int flags)
{
	char path[64];
	int fd, i;

	dev_path(path, sizeof(path), idx);
	for (i = 0; i < 50; i++) {
		fd = open(path, flags);
		if (fd >= 0 || errno != ENOENT)
			return fd;
		usleep(100 * 1000);
	}
	return -1;
}

/* Read /sys/block/<prefix>IDX/ATTR into BUF without the newline; -errno on failure. */
static int sys_read(int idx, const char *attr, char *buf, size_t len)
{
	char path[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/block/%s%d/%s", prefix(), idx, attr);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	if (n > 0 && buf[n - 1] == '\n')
		buf[n - 1] = 0;
	return 0;
}

/* A numeric sysfs attribute, or -1 if it cannot be read. */
static long long sys_num(int idx, const char *attr)
{
	char buf[64];

	if (sys_read(idx, attr, buf, sizeof(buf)))
		return -1;
	return strtoll(buf, NULL, 0);
}

/* The "loop" sysfs group exists exactly while the device is bound. */
static bool sys_bound(int idx)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "/sys/block/%s%d/loop", prefix(), idx);
	return access(path, F_OK) == 0;
}

static bool sys_exists(int idx, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "/sys/block/%s%d%s%s", prefix(), idx,
		 *name ? "/" : "", name);
	return access(path, F_OK) == 0;
}

/*
 * Lazy detach completes on the last close, and udev may hold the device for a
 * moment after its events: poll (up to 10 s) instead of expecting it at once.
 */
static bool wait_unbound(int idx)
{
	int i;

	for (i = 0; i < 100 && sys_bound(idx); i++)
		usleep(100 * 1000);
	return !sys_bound(idx);
}

/* Wait until no device of ours is bound (all lazy detaches done). */
static bool wait_all_unbound(void)
{
	char path[PATH_MAX];
	glob_t g;
	int i;

	snprintf(path, sizeof(path), "/sys/block/%s[0-9]*/loop", prefix());
	for (i = 0; i < 100; i++) {
		int ret = glob(path, 0, NULL, &g);

		globfree(&g);
		if (ret == GLOB_NOMATCH)
			return true;
		usleep(100 * 1000);
	}
	return false;
}

static unsigned long long dev_size(int fd)
{
	unsigned long long size = ~0ULL;

	if (ioctl(fd, BLKGETSIZE64, &size))
		return ~0ULL;
	return size;
}

static int dev_ssz(int fd)
{
	int ssz = -1;

	if (ioctl(fd, BLKSSZGET, &ssz))
		return -errno;
	return ssz;
}

/*
 * A backing file on $SCRATCH of SIZE bytes whose every 4-byte word encodes
 * SEED and its own offset, so any shift or mix-up between files shows.
 */
static int make_file(char *path, size_t len, size_t size, unsigned int seed)
{
	uint32_t *buf;
	size_t i;
	int fd;

	snprintf(path, len, "%s/ioctl_test.XXXXXX", scratch());
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	buf = malloc(size);
	if (!buf)
		return -1;
	for (i = 0; i < size / 4; i++)
		buf[i] = (seed << 24) ^ (uint32_t)i;
	if (pwrite(fd, buf, size, 0) != (ssize_t)size) {
		free(buf);
		return -1;
	}
	free(buf);
	return fd;
}

/* LEN bytes at OFF_A of A equal LEN bytes at OFF_B of B (either may be O_DIRECT). */
static bool same_content(int a, off_t off_a, int b, off_t off_b, size_t len)
{
	void *x = NULL, *y = NULL;
	bool same;

	same = !posix_memalign(&x, 4096, len) && !posix_memalign(&y, 4096, len) &&
	       pread(a, x, len, off_a) == (ssize_t)len &&
	       pread(b, y, len, off_b) == (ssize_t)len && !memcmp(x, y, len);
	free(x);
	free(y);
	return same;
}

static struct loop_config config_for(int fd)
{
	struct loop_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.fd = fd;
	return cfg;
}

static struct loop_info64 status64(int dev)
{
	struct loop_info64 info;

	memset(&info, 0xa5, sizeof(info));
	if (ioctl(dev, LOOP_GET_STATUS64, &info))
		memset(&info, 0xff, sizeof(info));
	return info;
}

static bool all_zero(const void *p, size_t len)
{
	const unsigned char *c = p;

	while (len--)
		if (*c++)
			return false;
	return true;
}

/* An index with no device behind it, for LOOP_CTL_ADD. */
static int unused_index(void)
{
	int i;

	for (i = 100; sys_exists(i, ""); i++)
		;
	return i;
}

/*
 * LOOP_CTL_REMOVE, retried while it says EBUSY for up to 5 s: udev opens new
 * and just-released devices for a moment (loop.c gives the same EBUSY).
 */
static long ctl_remove(int ctl, int idx)
{
	long ret;
	int i;

	for (i = 0; i < 50; i++) {
		ret = IOC(ctl, LOOP_CTL_REMOVE, idx);
		if (ret != -EBUSY)
			break;
		usleep(100 * 1000);
	}
	return ret;
}

/* An MBR with two Linux partitions: sectors 8..71 and 72..199. */
static int write_mbr(int fd)
{
	static const uint32_t part[2][2] = { { 8, 64 }, { 72, 128 } };
	unsigned char mbr[512] = { 0 };
	int i;

	for (i = 0; i < 2; i++) {
		unsigned char *e = mbr + 446 + 16 * i;

		e[4] = 0x83;
		memcpy(e + 8, &part[i][0], 4);	/* little endian on x86 */
		memcpy(e + 12, &part[i][1], 4);
	}
	mbr[510] = 0x55;
	mbr[511] = 0xaa;
	return pwrite(fd, mbr, sizeof(mbr), 0) == sizeof(mbr) ? 0 : -1;
}

FIXTURE(loopdev) {
	int ctl;		/* the control node */
	int idx;		/* a free device, from LOOP_CTL_GET_FREE */
	int dev;		/* that device, O_RDWR */
	int file, file2;	/* two backing files of FILE_SIZE, O_RDWR */
	char path[PATH_MAX], path2[PATH_MAX];
};

FIXTURE_SETUP(loopdev)
{
	char ctl[64];

	/* The teardown runs after a skip too: nothing is open yet. */
	self->ctl = self->dev = self->file = self->file2 = -1;
	if (geteuid() != 0)
		SKIP(return, "loop ioctls need root (CAP_SYS_ADMIN)");
	snprintf(ctl, sizeof(ctl), "/dev/%s-control", prefix());
	self->ctl = open(ctl, O_RDWR);
	ASSERT_LE(0, self->ctl) TH_LOG("open %s: %s", ctl, strerror(errno));
	self->idx = ioctl(self->ctl, LOOP_CTL_GET_FREE);
	ASSERT_LE(0, self->idx) TH_LOG("LOOP_CTL_GET_FREE: %s", strerror(errno));
	self->dev = open_dev(self->idx, O_RDWR);
	ASSERT_LE(0, self->dev) TH_LOG("open device %d: %s", self->idx, strerror(errno));
	self->file = make_file(self->path, sizeof(self->path), FILE_SIZE, 1);
	ASSERT_LE(0, self->file) TH_LOG("backing file on %s: %s", scratch(), strerror(errno));
	self->file2 = make_file(self->path2, sizeof(self->path2), FILE_SIZE, 2);
	ASSERT_LE(0, self->file2);
}

FIXTURE_TEARDOWN(loopdev)
{
	/* Lazy detach: the device unbinds once every opener is gone. */
	if (self->dev >= 0) {
		ioctl(self->dev, LOOP_CLR_FD);
		close(self->dev);
	}
	if (self->file >= 0) {
		close(self->file);
		unlink(self->path);
	}
	if (self->file2 >= 0) {
		close(self->file2);
		unlink(self->path2);
	}
	if (self->ctl >= 0)
		close(self->ctl);
}

/* ---- LOOP_SET_FD ------------------------------------------------------- */

TEST_F(loopdev, set_fd_and_get_status64)
{
	struct loop_info64 info;
	struct stat st;
	char buf[PATH_MAX];

	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	ASSERT_EQ(0, fstat(self->file, &st));

	memset(&info, 0xa5, sizeof(info));
	ASSERT_EQ(0, IOC(self->dev, LOOP_GET_STATUS64, &info));
	EXPECT_EQ((__u32)self->idx, info.lo_number);
	EXPECT_EQ((__u64)st.st_dev, info.lo_device);
	EXPECT_EQ((__u64)st.st_ino, info.lo_inode);
	EXPECT_EQ(0ULL, info.lo_rdevice);
	EXPECT_EQ(0ULL, info.lo_offset);
	EXPECT_EQ(0ULL, info.lo_sizelimit);
	EXPECT_EQ(0U, info.lo_flags);
	EXPECT_EQ(0U, info.lo_encrypt_type);
	EXPECT_EQ(0U, info.lo_encrypt_key_size);
	/* LOOP_SET_FD gives no name; the rest is never stored and reads as zeros. */
	EXPECT_TRUE(all_zero(info.lo_file_name, sizeof(info.lo_file_name)));
	EXPECT_TRUE(all_zero(info.lo_crypt_name, sizeof(info.lo_crypt_name)));
	EXPECT_TRUE(all_zero(info.lo_encrypt_key, sizeof(info.lo_encrypt_key)));
	EXPECT_TRUE(all_zero(info.lo_init, sizeof(info.lo_init)));

	EXPECT_EQ((unsigned long long)FILE_SIZE, dev_size(self->dev));
	EXPECT_EQ(512, dev_ssz(self->dev));
	EXPECT_TRUE(same_content(self->dev, 0, self->file, 0, FILE_SIZE));

	ASSERT_EQ(0, sys_read(self->idx, "loop/backing_file", buf, sizeof(buf)));
	EXPECT_STREQ(self->path, buf);
	EXPECT_EQ(0, sys_num(self->idx, "loop/offset"));
	EXPECT_EQ(0, sys_num(self->idx, "loop/sizelimit"));
	EXPECT_EQ(0, sys_num(self->idx, "loop/autoclear"));
	EXPECT_EQ(0, sys_num(self->idx, "loop/partscan"));
	EXPECT_EQ(0, sys_num(self->idx, "loop/dio"));
	EXPECT_EQ(0, sys_num(self->idx, "ro"));
	EXPECT_EQ(FILE_SIZE / 512, sys_num(self->idx, "size"));
}

/* As in loop.c, LOOP_SET_FD takes the low 32 bits of its argument. */
TEST_F(loopdev, set_fd_high_bits_ignored)
{
	EXPECT_EQ(0, IOC(self->dev, LOOP_SET_FD, (1ULL << 32) | (unsigned int)self->file));
	EXPECT_EQ((unsigned long long)FILE_SIZE, dev_size(self->dev));
}

/* O_APPEND set on the backing file after the bind does not move writes. */
TEST_F(loopdev, backing_file_append_flag_ignored)
{
	char data[4096], back[4096];
	struct stat st;

	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	ASSERT_EQ(0, fcntl(self->file, F_SETFL, O_APPEND));
	memset(data, 0x7e, sizeof(data));
	ASSERT_EQ((ssize_t)sizeof(data), pwrite(self->dev, data, sizeof(data), 8192));
	ASSERT_EQ(0, fsync(self->dev));
	ASSERT_EQ(0, fstat(self->file, &st));
	EXPECT_EQ(FILE_SIZE, st.st_size);
	ASSERT_EQ((ssize_t)sizeof(back), pread(self->file, back, sizeof(back), 8192));
	EXPECT_EQ(0, memcmp(data, back, sizeof(data)));
}

TEST_F(loopdev, set_fd_bad_fd)
{
	int closed = dup(self->file), opath;

	ASSERT_LE(0, closed);
	close(closed);
	opath = open(self->path, O_PATH);
	ASSERT_LE(0, opath);

	EXPECT_EQ(-EBADF, IOC(self->dev, LOOP_SET_FD, -1));
	EXPECT_EQ(-EBADF, IOC(self->dev, LOOP_SET_FD, closed));
	EXPECT_EQ(-EBADF, IOC(self->dev, LOOP_SET_FD, opath));
	close(opath);
	EXPECT_EQ(-ENXIO, IOC(self->dev, LOOP_GET_STATUS64, &(struct loop_info64){}));
	EXPECT_FALSE(sys_bound(self->idx));
}

/* A backing file must be a regular file or a block device with read_iter. */
TEST_F(loopdev, set_fd_not_a_file)
{
	struct loop_config cfg;
	int dir = open(scratch(), O_RDONLY | O_DIRECTORY);
	int null = open("/dev/null", O_RDWR);

	ASSERT_LE(0, dir);
	ASSERT_LE(0, null);
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_SET_FD, dir));
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_SET_FD, null));
	cfg = config_for(dir);
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_CONFIGURE, &cfg));
	cfg = config_for(null);
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_CONFIGURE, &cfg));
	close(dir);
	close(null);
	EXPECT_FALSE(sys_bound(self->idx));
}

TEST_F(loopdev, set_fd_already_bound)
{
	struct loop_config cfg = config_for(self->file2);
	struct stat st;

	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	EXPECT_EQ(-EBUSY, IOC(self->dev, LOOP_SET_FD, self->file2));
	EXPECT_EQ(-EBUSY, IOC(self->dev, LOOP_CONFIGURE, &cfg));
	/* Still bound to the first file. */
	ASSERT_EQ(0, fstat(self->file, &st));
	EXPECT_EQ((__u64)st.st_ino, status64(self->dev).lo_inode);
}

/* A device cannot back itself; a loop device backs another only if bound. */
TEST_F(loopdev, set_fd_loop_device_chain)
{
	struct stat st;
	int lower_idx, lower;

	EXPECT_EQ(-EBADF, IOC(self->dev, LOOP_SET_FD, self->dev));

	lower_idx = IOC(self->ctl, LOOP_CTL_ADD, -1);
	ASSERT_LE(0, lower_idx);
	lower = open_dev(lower_idx, O_RDWR);
	ASSERT_LE(0, lower);
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_SET_FD, lower));

	ASSERT_EQ(0, IOC(lower, LOOP_SET_FD, self->file));
	EXPECT_EQ(0, IOC(self->dev, LOOP_SET_FD, lower));
	ASSERT_EQ(0, fstat(lower, &st));
	EXPECT_EQ((__u64)st.st_rdev, status64(self->dev).lo_rdevice);
	EXPECT_TRUE(same_content(self->dev, 0, self->file, 0, FILE_SIZE));

	/* The upper device goes at teardown and then releases the lower one. */
	EXPECT_EQ(0, IOC(lower, LOOP_CLR_FD, 0));
	close(lower);
}

/* ---- LOOP_CONFIGURE ---------------------------------------------------- */

TEST_F(loopdev, configure_and_sysfs)
{
	struct loop_config cfg = config_for(self->file);
	struct loop_info64 info;
	char buf[PATH_MAX], data[4096];

	cfg.block_size = 4096;
	cfg.info.lo_offset = 8192;
	cfg.info.lo_sizelimit = 65536;
	cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
	strcpy((char *)cfg.info.lo_file_name, "name-from-userspace");
	ASSERT_EQ(0, IOC(self->dev, LOOP_CONFIGURE, &cfg));

	info = status64(self->dev);
	EXPECT_EQ((__u32)self->idx, info.lo_number);
	EXPECT_EQ(8192ULL, info.lo_offset);
	EXPECT_EQ(65536ULL, info.lo_sizelimit);
	EXPECT_EQ((__u32)LO_FLAGS_AUTOCLEAR, info.lo_flags);
	EXPECT_STREQ("name-from-userspace", (char *)info.lo_file_name);

	/* sysfs shows the real path, not the name userspace passed. */
	ASSERT_EQ(0, sys_read(self->idx, "loop/backing_file", buf, sizeof(buf)));
	EXPECT_STREQ(self->path, buf);
	EXPECT_EQ(8192, sys_num(self->idx, "loop/offset"));
	EXPECT_EQ(65536, sys_num(self->idx, "loop/sizelimit"));
	EXPECT_EQ(1, sys_num(self->idx, "loop/autoclear"));
	EXPECT_EQ(0, sys_num(self->idx, "loop/partscan"));
	EXPECT_EQ(0, sys_num(self->idx, "loop/dio"));
	EXPECT_EQ(0, sys_num(self->idx, "ro"));
	EXPECT_EQ(4096, sys_num(self->idx, "queue/logical_block_size"));
	EXPECT_EQ(65536 / 512, sys_num(self->idx, "size"));
	EXPECT_EQ(65536ULL, dev_size(self->dev));
	EXPECT_EQ(4096, dev_ssz(self->dev));

	/* Device byte 0 is file byte 8192, both ways. */
	EXPECT_TRUE(same_content(self->dev, 0, self->file, 8192, 65536));
	memset(data, 0x5a, sizeof(data));
	ASSERT_EQ((ssize_t)sizeof(data), pwrite(self->dev, data, sizeof(data), 4096));
	ASSERT_EQ(0, fsync(self->dev));
	EXPECT_TRUE(same_content(self->dev, 4096, self->file, 8192 + 4096, sizeof(data)));
	/* Writes past the size limit fail instead of reaching the file. */
	EXPECT_EQ(-1, pwrite(self->dev, data, sizeof(data), 65536));
}

/* lo_file_name is 64 bytes; the kernel forces the last one to NUL. */
TEST_F(loopdev, configure_long_name)
{
	struct loop_config cfg = config_for(self->file);
	struct loop_info64 info;
	char want[LO_NAME_SIZE];

	memset(cfg.info.lo_file_name, 'x', LO_NAME_SIZE);
	ASSERT_EQ(0, IOC(self->dev, LOOP_CONFIGURE, &cfg));
	memset(want, 'x', LO_NAME_SIZE - 1);
	want[LO_NAME_SIZE - 1] = 0;
	info = status64(self->dev);
	EXPECT_EQ(0, memcmp(want, info.lo_file_name, LO_NAME_SIZE));
}

TEST_F(loopdev, configure_bad_fd)
{
	struct loop_config cfg = config_for(-1);

	EXPECT_EQ(-EBADF, IOC(self->dev, LOOP_CONFIGURE, &cfg));
	EXPECT_EQ(-EFAULT, IOC(self->dev, LOOP_CONFIGURE, NULL));
	EXPECT_FALSE(sys_bound(self->idx));
}

TEST_F(loopdev, configure_unknown_flags)
{
	static const __u32 bad[] = { 2, 32, 0x100, 0x80000000 };
	struct loop_config cfg;
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = config_for(self->file);
		cfg.info.lo_flags = bad[i] | LO_FLAGS_AUTOCLEAR;
		EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_CONFIGURE, &cfg))
			TH_LOG("flags 0x%x", bad[i]);
	}
	EXPECT_EQ(-ENXIO, IOC(self->dev, LOOP_GET_STATUS64, &(struct loop_info64){}));
	EXPECT_FALSE(sys_bound(self->idx));
}

/* Only LO_CRYPT_NONE is left, and keys are at most LO_KEY_SIZE bytes. */
TEST_F(loopdev, configure_encryption)
{
	struct loop_config cfg = config_for(self->file);

	cfg.info.lo_encrypt_type = LO_CRYPT_XOR;
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_CONFIGURE, &cfg));
	cfg.info.lo_encrypt_type = LO_CRYPT_CRYPTOAPI;
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_CONFIGURE, &cfg));
	cfg.info.lo_encrypt_type = LO_CRYPT_DES;
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_CONFIGURE, &cfg));
	cfg.info.lo_encrypt_type = LO_CRYPT_NONE;
	cfg.info.lo_encrypt_key_size = LO_KEY_SIZE + 1;
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_CONFIGURE, &cfg));
	EXPECT_FALSE(sys_bound(self->idx));
	cfg.info.lo_encrypt_key_size = LO_KEY_SIZE;
	EXPECT_EQ(0, IOC(self->dev, LOOP_CONFIGURE, &cfg));
}

TEST_F(loopdev, configure_offset_overflow)
{
	struct loop_config cfg = config_for(self->file);

	cfg.info.lo_offset = (__u64)LLONG_MAX + 1;
	EXPECT_EQ(-EOVERFLOW, IOC(self->dev, LOOP_CONFIGURE, &cfg));
	cfg.info.lo_offset = 0;
	cfg.info.lo_sizelimit = ~0ULL;
	EXPECT_EQ(-EOVERFLOW, IOC(self->dev, LOOP_CONFIGURE, &cfg));
	EXPECT_FALSE(sys_bound(self->idx));
	/* LLONG_MAX itself is allowed: the device is then empty. */
	cfg.info.lo_offset = LLONG_MAX;
	cfg.info.lo_sizelimit = 0;
	EXPECT_EQ(0, IOC(self->dev, LOOP_CONFIGURE, &cfg));
	EXPECT_EQ(0ULL, dev_size(self->dev));
}

/* Powers of two from 512 to at least PAGE_SIZE; 0 means the default (512). */
TEST_F(loopdev, configure_block_sizes)
{
	static const unsigned int good[][2] = {
		{ 0, 512 }, { 512, 512 }, { 1024, 1024 }, { 2048, 2048 }, { 4096, 4096 },
	};
	static const unsigned int bad[] = { 1, 256, 511, 513, 1000, 3 * 512, 6144, 1 << 17 };
	struct loop_config cfg;
	unsigned int i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg = config_for(self->file);
		cfg.block_size = bad[i];
		EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_CONFIGURE, &cfg))
			TH_LOG("block size %u", bad[i]);
		EXPECT_FALSE(sys_bound(self->idx));
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		cfg = config_for(self->file);
		cfg.block_size = good[i][0];
		ASSERT_EQ(0, IOC(self->dev, LOOP_CONFIGURE, &cfg))
			TH_LOG("block size %u", good[i][0]);
		EXPECT_EQ((int)good[i][1], dev_ssz(self->dev));
		EXPECT_EQ(good[i][1], sys_num(self->idx, "queue/logical_block_size"));
		EXPECT_EQ((unsigned long long)FILE_SIZE, dev_size(self->dev));
		/* Detach, and wait for it, before the next size. */
		ASSERT_EQ(0, IOC(self->dev, LOOP_CLR_FD, 0));
		close(self->dev);
		self->dev = -1;
		ASSERT_TRUE(wait_unbound(self->idx));
		self->dev = open_dev(self->idx, O_RDWR);
		ASSERT_LE(0, self->dev);
		/* Unbinding resets the block size. */
		EXPECT_EQ(512, sys_num(self->idx, "queue/logical_block_size"));
	}
}

TEST_F(loopdev, configure_partscan)
{
	struct loop_config cfg = config_for(self->file);
	char p1[64], p2[64], path[PATH_MAX];
	int part;

	ASSERT_EQ(0, write_mbr(self->file));
	cfg.info.lo_flags = LO_FLAGS_PARTSCAN;
	ASSERT_EQ(0, IOC(self->dev, LOOP_CONFIGURE, &cfg));

	/* The scan is complete when the ioctl returns. */
	snprintf(p1, sizeof(p1), "%s%dp1", prefix(), self->idx);
	snprintf(p2, sizeof(p2), "%s%dp2", prefix(), self->idx);
	ASSERT_TRUE(sys_exists(self->idx, p1));
	ASSERT_TRUE(sys_exists(self->idx, p2));
	snprintf(path, sizeof(path), "%s/size", p1);
	EXPECT_EQ(64, sys_num(self->idx, path));
	snprintf(path, sizeof(path), "%s/start", p2);
	EXPECT_EQ(72, sys_num(self->idx, path));
	EXPECT_EQ(1, sys_num(self->idx, "loop/partscan"));
	EXPECT_EQ((__u32)LO_FLAGS_PARTSCAN, status64(self->dev).lo_flags);

	snprintf(path, sizeof(path), "/dev/%s", p1);
	part = open(path, O_RDONLY);
	ASSERT_LE(0, part) TH_LOG("open %s: %s", path, strerror(errno));
	EXPECT_EQ(64ULL * 512, dev_size(part));
	EXPECT_TRUE(same_content(part, 0, self->file, 8 * 512, 64 * 512));
	close(part);
}

/* Without PARTSCAN nothing is scanned; setting it later scans at once. */
TEST_F(loopdev, set_status64_partscan)
{
	struct loop_info64 set = {};
	char p1[64];

	ASSERT_EQ(0, write_mbr(self->file));
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	snprintf(p1, sizeof(p1), "%s%dp1", prefix(), self->idx);
	EXPECT_FALSE(sys_exists(self->idx, p1));
	EXPECT_EQ(0, sys_num(self->idx, "loop/partscan"));

	set.lo_flags = LO_FLAGS_PARTSCAN;
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_STATUS64, &set));
	EXPECT_TRUE(sys_exists(self->idx, p1));
	EXPECT_EQ(1, sys_num(self->idx, "loop/partscan"));
}

/* ---- Ioctls that need a bound device ----------------------------------- */

TEST_F(loopdev, unbound_device_enxio)
{
	struct loop_info64 info64 = {};
	struct loop_info info = {};

	EXPECT_EQ(-ENXIO, IOC(self->dev, LOOP_CLR_FD, 0));
	EXPECT_EQ(-ENXIO, IOC(self->dev, LOOP_GET_STATUS64, &info64));
	EXPECT_EQ(-ENXIO, IOC(self->dev, LOOP_GET_STATUS, &info));
	EXPECT_EQ(-ENXIO, IOC(self->dev, LOOP_SET_STATUS64, &info64));
	EXPECT_EQ(-ENXIO, IOC(self->dev, LOOP_SET_STATUS, &info));
	EXPECT_EQ(-ENXIO, IOC(self->dev, LOOP_SET_CAPACITY, 0));
	EXPECT_EQ(-ENXIO, IOC(self->dev, LOOP_SET_DIRECT_IO, 0));
	EXPECT_EQ(-ENXIO, IOC(self->dev, LOOP_SET_DIRECT_IO, 1));
	EXPECT_EQ(-ENXIO, IOC(self->dev, LOOP_SET_BLOCK_SIZE, 512));
	EXPECT_EQ(-ENXIO, IOC(self->dev, LOOP_SET_BLOCK_SIZE, 4096));
	EXPECT_EQ(-ENXIO, IOC(self->dev, LOOP_CHANGE_FD, self->file));
	EXPECT_FALSE(sys_bound(self->idx));
	EXPECT_EQ(0ULL, dev_size(self->dev));
}

TEST_F(loopdev, null_arguments)
{
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_GET_STATUS64, NULL));
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_GET_STATUS, NULL));
	EXPECT_EQ(-EFAULT, IOC(self->dev, LOOP_SET_STATUS64, NULL));
	EXPECT_EQ(-EFAULT, IOC(self->dev, LOOP_SET_STATUS, NULL));
}

TEST_F(loopdev, unknown_ioctl)
{
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_UNKNOWN_IOCTL, 0));
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_UNKNOWN_IOCTL2, 0));
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_UNKNOWN_IOCTL, 0));
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_UNKNOWN_IOCTL2, 0));
	/* Control ioctls mean nothing to a device. */
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_CTL_GET_FREE, 0));
}

/* ---- LOOP_SET_STATUS64 / LOOP_SET_STATUS -------------------------------- */

TEST_F(loopdev, set_status64)
{
	struct loop_info64 set, info;
	char buf[PATH_MAX];

	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	memset(&set, 0, sizeof(set));
	set.lo_offset = 512;
	set.lo_sizelimit = 4096;
	/* Only AUTOCLEAR and PARTSCAN can be set; the rest is silently ignored. */
	set.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN | LO_FLAGS_READ_ONLY |
		       LO_FLAGS_DIRECT_IO | 0x100;
	strcpy((char *)set.lo_file_name, "renamed");
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_STATUS64, &set));

	info = status64(self->dev);
	EXPECT_EQ(512ULL, info.lo_offset);
	EXPECT_EQ(4096ULL, info.lo_sizelimit);
	EXPECT_EQ((__u32)(LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN), info.lo_flags);
	EXPECT_STREQ("renamed", (char *)info.lo_file_name);
	EXPECT_EQ(512, sys_num(self->idx, "loop/offset"));
	EXPECT_EQ(4096, sys_num(self->idx, "loop/sizelimit"));
	EXPECT_EQ(1, sys_num(self->idx, "loop/autoclear"));
	EXPECT_EQ(1, sys_num(self->idx, "loop/partscan"));
	EXPECT_EQ(0, sys_num(self->idx, "loop/dio"));
	EXPECT_EQ(0, sys_num(self->idx, "ro"));
	ASSERT_EQ(0, sys_read(self->idx, "loop/backing_file", buf, sizeof(buf)));
	EXPECT_STREQ(self->path, buf);
	EXPECT_EQ(4096ULL, dev_size(self->dev));
	EXPECT_EQ(8, sys_num(self->idx, "size"));
	EXPECT_TRUE(same_content(self->dev, 0, self->file, 512, 4096));

	/* AUTOCLEAR can be cleared, PARTSCAN cannot. */
	set.lo_flags = 0;
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_STATUS64, &set));
	EXPECT_EQ((__u32)LO_FLAGS_PARTSCAN, status64(self->dev).lo_flags);
	EXPECT_EQ(0, sys_num(self->idx, "loop/autoclear"));
	EXPECT_EQ(1, sys_num(self->idx, "loop/partscan"));

	/* A size limit past the end is ignored; an offset past the end empties it. */
	set.lo_offset = 0;
	set.lo_sizelimit = 2 * FILE_SIZE;
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_STATUS64, &set));
	EXPECT_EQ((unsigned long long)FILE_SIZE, dev_size(self->dev));
	set.lo_offset = FILE_SIZE + 4096;
	set.lo_sizelimit = 0;
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_STATUS64, &set));
	EXPECT_EQ(0ULL, dev_size(self->dev));
}

TEST_F(loopdev, set_status64_bad_input)
{
	struct loop_info64 set;

	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	memset(&set, 0, sizeof(set));
	set.lo_offset = 1024;
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_STATUS64, &set));

	set.lo_encrypt_type = LO_CRYPT_XOR;
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_SET_STATUS64, &set));
	set.lo_encrypt_type = 7;
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_SET_STATUS64, &set));
	set.lo_encrypt_type = 0;
	set.lo_encrypt_key_size = LO_KEY_SIZE + 1;
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_SET_STATUS64, &set));
	set.lo_encrypt_key_size = 0;
	set.lo_offset = (__u64)LLONG_MAX + 1;
	EXPECT_EQ(-EOVERFLOW, IOC(self->dev, LOOP_SET_STATUS64, &set));
	set.lo_offset = 0;
	set.lo_sizelimit = (__u64)LLONG_MAX + 1;
	EXPECT_EQ(-EOVERFLOW, IOC(self->dev, LOOP_SET_STATUS64, &set));

	/* Nothing changed. */
	EXPECT_EQ(1024ULL, status64(self->dev).lo_offset);
	EXPECT_EQ(0ULL, status64(self->dev).lo_sizelimit);
	EXPECT_EQ((unsigned long long)FILE_SIZE - 1024, dev_size(self->dev));
}

/* struct loop_info: no sizelimit (reset to 0), no encryption fields copied. */
TEST_F(loopdev, legacy_status)
{
	struct loop_info64 set64 = {};
	struct loop_info set, info;
	struct stat st;

	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	set64.lo_sizelimit = 4096;
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_STATUS64, &set64));

	memset(&set, 0, sizeof(set));
	set.lo_offset = 1024;
	set.lo_flags = LO_FLAGS_AUTOCLEAR;
	set.lo_encrypt_type = LO_CRYPT_XOR;	/* not copied, so no EINVAL */
	strcpy(set.lo_name, "legacy");
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_STATUS, &set));
	EXPECT_EQ(0ULL, status64(self->dev).lo_sizelimit);
	EXPECT_EQ((unsigned long long)FILE_SIZE - 1024, dev_size(self->dev));

	ASSERT_EQ(0, fstat(self->file, &st));
	memset(&info, 0xa5, sizeof(info));
	ASSERT_EQ(0, IOC(self->dev, LOOP_GET_STATUS, &info));
	EXPECT_EQ(self->idx, info.lo_number);
	EXPECT_EQ((unsigned long)st.st_dev, (unsigned long)info.lo_device);
	EXPECT_EQ((unsigned long)st.st_ino, info.lo_inode);
	EXPECT_EQ(0UL, (unsigned long)info.lo_rdevice);
	EXPECT_EQ(1024, info.lo_offset);
	EXPECT_EQ(0, info.lo_encrypt_type);
	EXPECT_EQ(LO_FLAGS_AUTOCLEAR, info.lo_flags);
	EXPECT_STREQ("legacy", info.lo_name);
	/* The structure's padding holds zeroes, not kernel stack. */
	EXPECT_TRUE(all_zero((char *)&info + sizeof(info.lo_number),
			     offsetof(struct loop_info, lo_device) - sizeof(info.lo_number)));
	EXPECT_TRUE(all_zero((char *)&info + offsetof(struct loop_info, reserved) +
			     sizeof(info.reserved),
			     sizeof(info) - offsetof(struct loop_info, reserved) -
			     sizeof(info.reserved)));

	/* A negative int offset becomes a huge u64 one. */
	set.lo_offset = -1;
	EXPECT_EQ(-EOVERFLOW, IOC(self->dev, LOOP_SET_STATUS, &set));
	/* An offset that does not fit loop_info's int cannot be read back with it. */
	set64.lo_offset = 1ULL << 31;
	set64.lo_sizelimit = 0;
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_STATUS64, &set64));
	EXPECT_EQ(-EOVERFLOW, IOC(self->dev, LOOP_GET_STATUS, &info));
	EXPECT_EQ(1ULL << 31, status64(self->dev).lo_offset);
}

/* ---- SET_CAPACITY, SET_DIRECT_IO, SET_BLOCK_SIZE ------------------------ */

TEST_F(loopdev, set_capacity)
{
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	ASSERT_EQ(0, ftruncate(self->file, 2 * FILE_SIZE));
	EXPECT_EQ((unsigned long long)FILE_SIZE, dev_size(self->dev));
	EXPECT_EQ(0, IOC(self->dev, LOOP_SET_CAPACITY, 0));
	EXPECT_EQ(2ULL * FILE_SIZE, dev_size(self->dev));
	EXPECT_EQ(2 * FILE_SIZE / 512, sys_num(self->idx, "size"));
	ASSERT_EQ(0, ftruncate(self->file, FILE_SIZE / 2));
	EXPECT_EQ(0, IOC(self->dev, LOOP_SET_CAPACITY, 0));
	EXPECT_EQ((unsigned long long)FILE_SIZE / 2, dev_size(self->dev));
}

/*
 * A backing file shrunk under a bound device: what is left reads as before,
 * a read past its end fails with EIO (loop.c's lo_complete_rq), buffered and
 * direct, in both I/O modes of the device.
 */
TEST_F(loopdev, read_past_backing_file_end)
{
	const off_t past_end = FILE_SIZE * 3 / 4;
	int dio, direct, buffered;
	void *buf;

	ASSERT_EQ(0, posix_memalign(&buf, 4096, 4096));
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	ASSERT_EQ(0, ftruncate(self->file, FILE_SIZE / 2));
	for (dio = 0; dio <= 1; dio++) {
		ASSERT_EQ(0, IOC(self->dev, LOOP_SET_DIRECT_IO, dio));
		direct = open_dev(self->idx, O_RDONLY | O_DIRECT);
		buffered = open_dev(self->idx, O_RDONLY);
		ASSERT_LE(0, direct);
		ASSERT_LE(0, buffered);
		EXPECT_TRUE(same_content(direct, 4096, self->file, 4096, 4096));
		EXPECT_TRUE(same_content(buffered, 8192, self->file, 8192, 4096));
		errno = 0;
		EXPECT_EQ(-1, pread(direct, buf, 4096, past_end)) TH_LOG("dio=%d", dio);
		EXPECT_EQ(EIO, errno);
		errno = 0;
		EXPECT_EQ(-1, pread(buffered, buf, 4096, past_end)) TH_LOG("dio=%d", dio);
		EXPECT_EQ(EIO, errno);
		close(direct);
		close(buffered);
	}
	free(buf);
}

/* A write the backing file system has no room for fails with ENOSPC. */
TEST_F(loopdev, backing_fs_full_enospc)
{
	const off_t sparse_size = 4 * FILE_SIZE;
	char dir[PATH_MAX], path[PATH_MAX + 16];
	ssize_t written = 0;
	int file, direct;
	off_t off;
	void *buf;

	ASSERT_EQ(0, posix_memalign(&buf, 4096, 4096));
	memset(buf, 0x5a, 4096);
	snprintf(dir, sizeof(dir), "%s/full-fs.XXXXXX", scratch());
	ASSERT_NE(NULL, mkdtemp(dir));
	ASSERT_EQ(0, mount("tmpfs", dir, "tmpfs", 0, "size=256k")) TH_LOG("%s", strerror(errno));
	snprintf(path, sizeof(path), "%s/sparse", dir);
	file = open(path, O_RDWR | O_CREAT, 0600);
	ASSERT_LE(0, file);
	ASSERT_EQ(0, ftruncate(file, sparse_size));
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, file));
	direct = open_dev(self->idx, O_WRONLY | O_DIRECT);
	ASSERT_LE(0, direct);
	for (off = 0; off < sparse_size; off += 4096) {
		errno = 0;
		written = pwrite(direct, buf, 4096, off);
		if (written != 4096)
			break;
	}
	EXPECT_EQ(-1, written) TH_LOG("stopped at %lld", (long long)off);
	EXPECT_EQ(ENOSPC, errno) TH_LOG("%s", strerror(errno));
	EXPECT_LT(0, off);
	close(direct);
	EXPECT_EQ(0, IOC(self->dev, LOOP_CLR_FD, 0));
	close(file);
	umount2(dir, MNT_DETACH);
	rmdir(dir);
	free(buf);
}

TEST_F(loopdev, set_direct_io)
{
	char data[4096];

	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	EXPECT_EQ(0, sys_num(self->idx, "loop/dio"));
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_DIRECT_IO, 1));
	EXPECT_EQ(1, sys_num(self->idx, "loop/dio"));
	EXPECT_EQ((__u32)LO_FLAGS_DIRECT_IO, status64(self->dev).lo_flags);
	EXPECT_EQ(0, IOC(self->dev, LOOP_SET_DIRECT_IO, 1));

	/* Data still goes to the file. */
	memset(data, 0x3c, sizeof(data));
	ASSERT_EQ((ssize_t)sizeof(data), pwrite(self->dev, data, sizeof(data), 8192));
	ASSERT_EQ(0, fsync(self->dev));
	EXPECT_TRUE(same_content(self->dev, 8192, self->file, 8192, sizeof(data)));

	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_DIRECT_IO, 0));
	EXPECT_EQ(0, sys_num(self->idx, "loop/dio"));
	EXPECT_EQ(0U, status64(self->dev).lo_flags);
	/* Any non-zero argument means on. */
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_DIRECT_IO, 2));
	EXPECT_EQ(1, sys_num(self->idx, "loop/dio"));
}

TEST_F(loopdev, set_block_size)
{
	static const unsigned long bad[] = { 1, 256, 511, 1000, 3 * 512, 6144, 1 << 17 };
	unsigned int i;

	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	EXPECT_EQ(512, dev_ssz(self->dev));
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_BLOCK_SIZE, 4096));
	EXPECT_EQ(4096, dev_ssz(self->dev));
	EXPECT_EQ(4096, sys_num(self->idx, "queue/logical_block_size"));
	EXPECT_EQ((unsigned long long)FILE_SIZE, dev_size(self->dev));
	EXPECT_EQ(0, IOC(self->dev, LOOP_SET_BLOCK_SIZE, 4096));

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_SET_BLOCK_SIZE, bad[i]))
			TH_LOG("block size %lu", bad[i]);
	EXPECT_EQ(4096, dev_ssz(self->dev));

	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_BLOCK_SIZE, 1024));
	EXPECT_EQ(1024, dev_ssz(self->dev));
	/* 0 means the default, 512 without direct I/O. */
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_BLOCK_SIZE, 0));
	EXPECT_EQ(512, dev_ssz(self->dev));
	EXPECT_TRUE(same_content(self->dev, 0, self->file, 0, FILE_SIZE));
}

/* ---- LOOP_CHANGE_FD ---------------------------------------------------- */

TEST_F(loopdev, change_fd_needs_read_only)
{
	struct stat st;

	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_CHANGE_FD, self->file2));
	ASSERT_EQ(0, fstat(self->file, &st));
	EXPECT_EQ((__u64)st.st_ino, status64(self->dev).lo_inode);
}

TEST_F(loopdev, change_fd_read_only)
{
	struct loop_config cfg = config_for(self->file);
	char bigger_path[PATH_MAX], buf[PATH_MAX];
	int bigger, dir, direct;
	struct stat st;

	cfg.info.lo_flags = LO_FLAGS_READ_ONLY;
	ASSERT_EQ(0, IOC(self->dev, LOOP_CONFIGURE, &cfg));
	EXPECT_EQ(1, sys_num(self->idx, "ro"));

	EXPECT_EQ(-EBADF, IOC(self->dev, LOOP_CHANGE_FD, -1));
	dir = open(scratch(), O_RDONLY | O_DIRECTORY);
	ASSERT_LE(0, dir);
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_CHANGE_FD, dir));
	close(dir);
	/* The new file must have the same size. */
	bigger = make_file(bigger_path, sizeof(bigger_path), 2 * FILE_SIZE, 3);
	ASSERT_LE(0, bigger);
	EXPECT_EQ(-EINVAL, IOC(self->dev, LOOP_CHANGE_FD, bigger));
	close(bigger);
	unlink(bigger_path);

	ASSERT_EQ(0, IOC(self->dev, LOOP_CHANGE_FD, self->file2));
	ASSERT_EQ(0, fstat(self->file2, &st));
	EXPECT_EQ((__u64)st.st_ino, status64(self->dev).lo_inode);
	EXPECT_EQ((__u32)LO_FLAGS_READ_ONLY, status64(self->dev).lo_flags);
	ASSERT_EQ(0, sys_read(self->idx, "loop/backing_file", buf, sizeof(buf)));
	EXPECT_STREQ(self->path2, buf);
	/*
	 * O_DIRECT: a read udev started before the switch can leave a page of
	 * the old file in the device's page cache (loop.c does the same).
	 */
	direct = open_dev(self->idx, O_RDONLY | O_DIRECT);
	ASSERT_LE(0, direct);
	EXPECT_TRUE(same_content(direct, 0, self->file2, 0, FILE_SIZE));
	close(direct);
}

/* ---- Read-only devices ------------------------------------------------- */

TEST_F(loopdev, read_only_flag)
{
	struct loop_config cfg = config_for(self->file);
	uint64_t zero_range[2] = { 0, 4096 };
	char path[64], data[512];
	int ro = 0, wr;

	cfg.info.lo_flags = LO_FLAGS_READ_ONLY;
	ASSERT_EQ(0, IOC(self->dev, LOOP_CONFIGURE, &cfg));
	EXPECT_EQ((__u32)LO_FLAGS_READ_ONLY, status64(self->dev).lo_flags);
	EXPECT_EQ(1, sys_num(self->idx, "ro"));
	ASSERT_EQ(0, ioctl(self->dev, BLKROGET, &ro));
	EXPECT_EQ(1, ro);

	/* write(2) fails with EPERM (block/fops.c), on an fd opened before... */
	memset(data, 0, sizeof(data));
	EXPECT_EQ(-1, pwrite(self->dev, data, sizeof(data), 0));
	EXPECT_EQ(EPERM, errno);
	/* ...and on a new one: open(2) itself does not check. */
	dev_path(path, sizeof(path), self->idx);
	wr = open(path, O_WRONLY);
	ASSERT_LE(0, wr) TH_LOG("open O_WRONLY: %s", strerror(errno));
	EXPECT_EQ(-1, pwrite(wr, data, sizeof(data), 0));
	EXPECT_EQ(EPERM, errno);
	close(wr);
	/* Zeroing is refused too, and nothing reached the file. */
	EXPECT_EQ(-EPERM, IOC(self->dev, BLKZEROOUT, zero_range));
	EXPECT_TRUE(same_content(self->dev, 0, self->file, 0, FILE_SIZE));
}

/* Read-only is forced when the device or the file is not open for writing. */
TEST_F(loopdev, read_only_forced)
{
	int rodev, rofile;

	rodev = open_dev(self->idx, O_RDONLY);
	ASSERT_LE(0, rodev);
	ASSERT_EQ(0, IOC(rodev, LOOP_SET_FD, self->file));
	EXPECT_EQ((__u32)LO_FLAGS_READ_ONLY, status64(rodev).lo_flags);
	EXPECT_EQ(1, sys_num(self->idx, "ro"));
	EXPECT_EQ(0, IOC(rodev, LOOP_CLR_FD, 0));
	close(rodev);
	close(self->dev);
	self->dev = -1;
	ASSERT_TRUE(wait_unbound(self->idx));

	self->dev = open_dev(self->idx, O_RDWR);
	ASSERT_LE(0, self->dev);
	rofile = open(self->path, O_RDONLY);
	ASSERT_LE(0, rofile);
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, rofile));
	close(rofile);
	EXPECT_EQ((__u32)LO_FLAGS_READ_ONLY, status64(self->dev).lo_flags);
	EXPECT_EQ(1, sys_num(self->idx, "ro"));
}

/* ---- Permissions ------------------------------------------------------- */

/*
 * Run the ioctls below as "nobody" (no capabilities) in a child and return
 * their results through a pipe: changing a bound device needs the fd to be
 * open for writing or CAP_SYS_ADMIN; reading its status needs neither.
 */
enum { UNPRIV_SET_STATUS64, UNPRIV_SET_CAPACITY, UNPRIV_SET_DIRECT_IO,
	UNPRIV_SET_BLOCK_SIZE, UNPRIV_SET_STATUS, UNPRIV_GET_STATUS64, UNPRIV_N };

static int run_unprivileged(int dev, long results[UNPRIV_N])
{
	struct loop_info64 info64 = {};
	struct loop_info info = {};
	int pipefd[2], status;
	pid_t pid;

	if (pipe(pipefd))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		long r[UNPRIV_N];

		close(pipefd[0]);
		if (setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, NOBODY, NOBODY))
			_exit(2);
		r[UNPRIV_SET_STATUS64] = IOC(dev, LOOP_SET_STATUS64, &info64);
		r[UNPRIV_SET_CAPACITY] = IOC(dev, LOOP_SET_CAPACITY, 0);
		r[UNPRIV_SET_DIRECT_IO] = IOC(dev, LOOP_SET_DIRECT_IO, 0);
		r[UNPRIV_SET_BLOCK_SIZE] = IOC(dev, LOOP_SET_BLOCK_SIZE, 1024);
		r[UNPRIV_SET_STATUS] = IOC(dev, LOOP_SET_STATUS, &info);
		r[UNPRIV_GET_STATUS64] = IOC(dev, LOOP_GET_STATUS64, &info64);
		_exit(write(pipefd[1], r, sizeof(r)) == sizeof(r) ? 0 : 3);
	}
	close(pipefd[1]);
	if (read(pipefd[0], results, sizeof(long) * UNPRIV_N) != (ssize_t)(sizeof(long) * UNPRIV_N))
		results[0] = -EIO;
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(loopdev, unprivileged_without_write_mode)
{
	long r[UNPRIV_N];
	int rodev;

	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	rodev = open_dev(self->idx, O_RDONLY);
	ASSERT_LE(0, rodev);
	ASSERT_EQ(0, run_unprivileged(rodev, r));
	EXPECT_EQ(-EPERM, r[UNPRIV_SET_STATUS64]);
	EXPECT_EQ(-EPERM, r[UNPRIV_SET_CAPACITY]);
	EXPECT_EQ(-EPERM, r[UNPRIV_SET_DIRECT_IO]);
	EXPECT_EQ(-EPERM, r[UNPRIV_SET_BLOCK_SIZE]);
	EXPECT_EQ(-EPERM, r[UNPRIV_SET_STATUS]);
	EXPECT_EQ(0, r[UNPRIV_GET_STATUS64]);
	EXPECT_EQ(512, dev_ssz(self->dev));
	close(rodev);
}

TEST_F(loopdev, unprivileged_with_write_mode)
{
	long r[UNPRIV_N];

	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	ASSERT_EQ(0, run_unprivileged(self->dev, r));
	EXPECT_EQ(0, r[UNPRIV_SET_STATUS64]);
	EXPECT_EQ(0, r[UNPRIV_SET_CAPACITY]);
	EXPECT_EQ(0, r[UNPRIV_SET_DIRECT_IO]);
	EXPECT_EQ(0, r[UNPRIV_SET_BLOCK_SIZE]);
	EXPECT_EQ(0, r[UNPRIV_SET_STATUS]);
	EXPECT_EQ(0, r[UNPRIV_GET_STATUS64]);
	EXPECT_EQ(1024, dev_ssz(self->dev));
}

/* CAP_SYS_ADMIN stands in for write mode. */
TEST_F(loopdev, admin_without_write_mode)
{
	struct loop_info64 set = {};
	int rodev;

	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	rodev = open_dev(self->idx, O_RDONLY);
	ASSERT_LE(0, rodev);
	set.lo_offset = 4096;
	EXPECT_EQ(0, IOC(rodev, LOOP_SET_STATUS64, &set));
	EXPECT_EQ(0, IOC(rodev, LOOP_SET_CAPACITY, 0));
	EXPECT_EQ(0, IOC(rodev, LOOP_SET_BLOCK_SIZE, 2048));
	EXPECT_EQ(4096ULL, status64(rodev).lo_offset);
	EXPECT_EQ(2048, dev_ssz(rodev));
	close(rodev);
}

/* Binding and detaching need no privilege at all, only an open device. */
TEST_F(loopdev, unprivileged_bind_and_detach)
{
	int rodev, pid, status;

	rodev = open_dev(self->idx, O_RDONLY);
	ASSERT_LE(0, rodev);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct loop_config cfg = config_for(self->file);

		if (setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, NOBODY, NOBODY))
			_exit(2);
		if (ioctl(rodev, LOOP_CONFIGURE, &cfg))
			_exit(10 + errno);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("LOOP_CONFIGURE as nobody: errno %d",
						  WEXITSTATUS(status) - 10);
	/* The device was opened read-only, so the binding is read-only. */
	EXPECT_EQ((__u32)LO_FLAGS_READ_ONLY, status64(rodev).lo_flags);

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		if (setresgid(NOBODY, NOBODY, NOBODY) || setresuid(NOBODY, NOBODY, NOBODY))
			_exit(2);
		_exit(ioctl(rodev, LOOP_CLR_FD, 0) ? 10 + errno : 0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status)) TH_LOG("LOOP_CLR_FD as nobody: errno %d",
						  WEXITSTATUS(status) - 10);
	close(rodev);
	close(self->dev);
	self->dev = -1;
	EXPECT_TRUE(wait_unbound(self->idx));
}

/* ---- Lazy detach ------------------------------------------------------- */

/* LOOP_CLR_FD while another fd is open: bound until the last close. */
TEST_F(loopdev, clr_fd_is_lazy)
{
	int other;

	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	other = open_dev(self->idx, O_RDONLY);
	ASSERT_LE(0, other);

	ASSERT_EQ(0, IOC(self->dev, LOOP_CLR_FD, 0));
	EXPECT_TRUE(sys_bound(self->idx));
	EXPECT_EQ(1, sys_num(self->idx, "loop/autoclear"));
	EXPECT_EQ((__u32)LO_FLAGS_AUTOCLEAR, status64(other).lo_flags);
	/* Still bound, so a second request is accepted too. */
	EXPECT_EQ(0, IOC(other, LOOP_CLR_FD, 0));

	close(self->dev);
	self->dev = -1;
	EXPECT_TRUE(sys_bound(self->idx));
	EXPECT_TRUE(same_content(other, 0, self->file, 0, FILE_SIZE));

	close(other);
	ASSERT_TRUE(wait_unbound(self->idx));
	self->dev = open_dev(self->idx, O_RDWR);
	ASSERT_LE(0, self->dev);
	EXPECT_EQ(-ENXIO, IOC(self->dev, LOOP_GET_STATUS64, &(struct loop_info64){}));
	EXPECT_EQ(0ULL, dev_size(self->dev));
}

TEST_F(loopdev, autoclear_on_last_close)
{
	struct loop_config cfg = config_for(self->file);

	cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR;
	ASSERT_EQ(0, IOC(self->dev, LOOP_CONFIGURE, &cfg));
	EXPECT_TRUE(sys_bound(self->idx));
	close(self->dev);
	self->dev = -1;
	EXPECT_TRUE(wait_unbound(self->idx));
}

/* ---- Control device ---------------------------------------------------- */

TEST_F(loopdev, ctl_add_remove)
{
	int idx = unused_index(), any;

	EXPECT_EQ(idx, IOC(self->ctl, LOOP_CTL_ADD, idx));
	EXPECT_TRUE(sys_exists(idx, ""));
	EXPECT_EQ(-EEXIST, IOC(self->ctl, LOOP_CTL_ADD, idx));
	EXPECT_EQ(-EEXIST, IOC(self->ctl, LOOP_CTL_ADD, self->idx));
	EXPECT_EQ(0, ctl_remove(self->ctl, idx));
	EXPECT_FALSE(sys_exists(idx, ""));
	EXPECT_EQ(-ENODEV, IOC(self->ctl, LOOP_CTL_REMOVE, idx));

	/* A negative index asks for any free one. */
	any = IOC(self->ctl, LOOP_CTL_ADD, -1);
	ASSERT_LE(0, any);
	EXPECT_TRUE(sys_exists(any, ""));
	EXPECT_EQ(0, ctl_remove(self->ctl, any));
}

TEST_F(loopdev, ctl_remove_errors)
{
	EXPECT_EQ(-EINVAL, IOC(self->ctl, LOOP_CTL_REMOVE, -1));
	EXPECT_EQ(-ENODEV, IOC(self->ctl, LOOP_CTL_REMOVE, MISSING_INDEX));
	/* Open (our fd), then bound as well. */
	EXPECT_EQ(-EBUSY, IOC(self->ctl, LOOP_CTL_REMOVE, self->idx));
	ASSERT_EQ(0, IOC(self->dev, LOOP_SET_FD, self->file));
	EXPECT_EQ(-EBUSY, IOC(self->ctl, LOOP_CTL_REMOVE, self->idx));
	EXPECT_TRUE(sys_bound(self->idx));
}

/* Bound but not open anywhere: still EBUSY. */
TEST_F(loopdev, ctl_remove_bound_closed)
{
	int idx = IOC(self->ctl, LOOP_CTL_ADD, -1), dev;

	ASSERT_LE(0, idx);
	dev = open_dev(idx, O_RDWR);
	ASSERT_LE(0, dev);
	ASSERT_EQ(0, IOC(dev, LOOP_SET_FD, self->file));
	close(dev);
	EXPECT_EQ(-EBUSY, IOC(self->ctl, LOOP_CTL_REMOVE, idx));
	EXPECT_TRUE(sys_bound(idx));

	dev = open_dev(idx, O_RDONLY);
	ASSERT_LE(0, dev);
	EXPECT_EQ(0, IOC(dev, LOOP_CLR_FD, 0));
	close(dev);
	ASSERT_TRUE(wait_unbound(idx));
	EXPECT_EQ(0, ctl_remove(self->ctl, idx));
	EXPECT_FALSE(sys_exists(idx, ""));
}

TEST_F(loopdev, ctl_get_free)
{
	long free1, free2, free3;
	int dev;

	/* Let earlier tests' lazy detaches finish, so that nothing changes under us. */
	ASSERT_TRUE(wait_all_unbound());
	free1 = IOC(self->ctl, LOOP_CTL_GET_FREE, 0);
	ASSERT_LE(0, free1);
	EXPECT_FALSE(sys_bound(free1));
	dev = open_dev(free1, O_RDWR);
	ASSERT_LE(0, dev);
	ASSERT_EQ(0, IOC(dev, LOOP_SET_FD, self->file));

	free2 = IOC(self->ctl, LOOP_CTL_GET_FREE, 0);
	ASSERT_LE(0, free2);
	EXPECT_NE(free1, free2);
	EXPECT_TRUE(sys_exists(free2, ""));
	EXPECT_FALSE(sys_bound(free2));
	free3 = IOC(self->ctl, LOOP_CTL_GET_FREE, 0);
	if (strcmp(prefix(), "loop") == 0) {
		/* loop.c gives the same device until someone binds it. */
		EXPECT_EQ(free2, free3);
	} else {
		/*
		 * rust_loop holds a handed-out device for its taker for 2 s, so
		 * parallel takers never race for one; then it is free again.
		 */
		ASSERT_LE(0, free3);
		EXPECT_NE(free2, free3);
		EXPECT_FALSE(sys_bound(free3));
		usleep(2200 * 1000);
		EXPECT_GE(free2, IOC(self->ctl, LOOP_CTL_GET_FREE, 0));
	}
	EXPECT_EQ(0, IOC(dev, LOOP_CLR_FD, 0));
	close(dev);
}

TEST_F(loopdev, ctl_unknown_ioctl)
{
	EXPECT_EQ(-ENOSYS, IOC(self->ctl, LOOP_CTL_UNKNOWN_IOCTL, 0));
	EXPECT_EQ(-ENOSYS, IOC(self->ctl, LOOP_SET_FD, self->file));
	EXPECT_EQ(-ENOSYS, IOC(self->ctl, LOOP_GET_STATUS64, 0));
}

TEST_HARNESS_MAIN
