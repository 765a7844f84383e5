# isola — the two commands a newcomer needs:
#   make demo   run isola's main job (installs what is missing first)
#   make test   run the whole test suite (unit and end-to-end; needs root)
SHELL := /bin/bash
export CARGO_TERM_COLOR ?= never
CACHE ?= /var/cache/isola

.PHONY: demo test setup build root check bench install

root:
	@if [ "$$(id -u)" != 0 ]; then echo "make: isola's demo and tests need root (containers, mounts, cgroups); run with sudo" >&2; exit 1; fi

setup: root
	@scripts/setup.sh
	@scripts/guest-kernel.sh >/dev/null

build: setup
	cargo build --release --workspace --bins
	@# The utility VM's /init must be static (the initramfs holds no libraries).
	crates/agent/build-static.sh >/dev/null

demo: build
	@scripts/demo.sh

check:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

test: setup check
	cargo nextest run --workspace --no-fail-fast

bench: build
	@bench/run.sh

# A system-wide install (PREFIX, default /usr/local): the binaries, and the
# static guest agent beside them, where isola looks for it. `make build`
# (which this runs) has built and cached the guest kernel under $(CACHE).
PREFIX ?= /usr/local
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 target/release/isola target/release/isola-runtime $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 target/x86_64-unknown-linux-gnu/release/agent $(DESTDIR)$(PREFIX)/bin/isola-agent
	@# The VM-isolation name of the runtime, for a RuntimeClass handler's BinaryName.
	ln -sf isola-runtime $(DESTDIR)$(PREFIX)/bin/isola-runtime-vm
	@echo "installed isola, isola-runtime (and isola-runtime-vm) and isola-agent into $(DESTDIR)$(PREFIX)/bin (guest kernel: $(CACHE)/kernel)"
