# SPDX-License-Identifier: GPL-2.0
#
# rust_loop: see README.md. Every target installs and builds what it needs
# (vm/setup-toolchain.sh, vm/build-kernel.sh); the kernel build is cached
# under ~/.cache/rust-loop, so only the first run is slow.
#
#   make            the module, against the cached debug kernel build
#   make run        the main job: boot the VM, attach an image with losetup, use it
#   make check      every selftest in the VM (TAP), ending with "N passed, N failed"
#   make check-loopc  the same suites against loop.c, for comparison
#   make stress     the stress tests alone, rust_loop then loop.c, for long
#                   runs (STRESS_ITERATIONS=N, see vm/stress.sh)
#   make fuzz       the ioctl fuzzer alone, for long runs: loop.c against
#                   rust_loop, and chaos on each (FUZZ_ITERATIONS=N,
#                   FUZZ_SEED=N, see vm/fuzz.sh)
#   make bench      benchmarks against loop.c (non-debug kernel)
#   make shell      an interactive VM shell with rust_loop loaded
#   make lint       clippy + rustfmt --check
#   make clean

CACHE_DIR ?= $(HOME)/.cache/rust-loop
VARIANT ?= debug
VM := ./vm

# The module's build settings must match the kernel's: Debian's rustc 1.96,
# LLVM 19 and the project's bindgen.
KMAKE_TOOLS = LLVM=-19 RUSTC=/usr/bin/rustc HOSTRUSTC=/usr/bin/rustc \
	BINDGEN=$(CACHE_DIR)/bindgen-0.72.1/bin/bindgen

.PHONY: all module toolchain kernel run check check-loopc stress fuzz bench shell lint fmt clean

all: module

toolchain:
	@$(VM)/setup-toolchain.sh

kernel: toolchain
	@$(VM)/build-kernel.sh $(VARIANT) >/dev/null

module: kernel
	@$(MAKE) -s -C $$($(VM)/build-kernel.sh $(VARIANT)) M=$(CURDIR) $(KMAKE_TOOLS) modules

lint: kernel
	@$(MAKE) -s -C $$($(VM)/build-kernel.sh $(VARIANT)) M=$(CURDIR) $(KMAKE_TOOLS) \
		CLIPPY=1 CLIPPY_DRIVER=/usr/bin/clippy-driver modules
	@/usr/bin/rustfmt --check --edition 2021 rust_loop.rs

fmt:
	@/usr/bin/rustfmt --edition 2021 rust_loop.rs

run: module
	@$(VM)/run.sh -- '$(CURDIR)/vm/demo.sh'

check: module
	@$(VM)/check.sh rloop

check-loopc: module
	@$(VM)/check.sh loop

stress: module
	@$(VM)/stress.sh

fuzz: module
	@$(VM)/fuzz.sh

bench: toolchain
	@$(VM)/bench.sh

shell: module
	@$(VM)/run.sh --shell -- true

clean:
	@rm -f *.o *.ko *.mod *.mod.c *.mod.o .*.cmd modules.order Module.symvers rust_loop/.*.cmd
	@rm -rf .tmp_versions
