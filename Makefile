# isola — the two commands a newcomer needs:
#   make demo   run isola's main job (installs what is missing first)
#   make test   run the whole test suite (unit and end-to-end; needs root)
SHELL := /bin/bash
export CARGO_TERM_COLOR ?= never
CACHE ?= /var/cache/isola

.PHONY: demo test setup build root check bench install install-files

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

# A system-wide install (PREFIX, default /usr/local; DESTDIR for staging):
# the binaries, the static guest agent beside them, where isola looks for it,
# and the systemd units (socket activation on /run/isola/docker.sock, with
# the group isola that owns the socket). `make build` (which this runs) has
# built and cached the guest kernel under $(CACHE). install-files copies
# only, from RELEASE_DIR and AGENT_BIN, without building.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= /lib/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
RELEASE_DIR ?= target/release
AGENT_BIN ?= target/x86_64-unknown-linux-gnu/release/agent
install: build
	@$(MAKE) --no-print-directory install-files

install-files:
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR)
	install -m 0755 $(RELEASE_DIR)/isola $(RELEASE_DIR)/isola-runtime $(DESTDIR)$(BINDIR)/
	install -m 0755 $(AGENT_BIN) $(DESTDIR)$(BINDIR)/isola-agent
	@# The VM-isolation name of the runtime, for a RuntimeClass handler's BinaryName.
	ln -sf isola-runtime $(DESTDIR)$(BINDIR)/isola-runtime-vm
	@# The unit names the binary where it is installed, not where DESTDIR stages it.
	sed 's|/usr/local/bin/isola |$(BINDIR)/isola |' contrib/systemd/isola.service > $(DESTDIR)$(UNITDIR)/isola.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/isola.service
	install -m 0644 contrib/systemd/isola.socket $(DESTDIR)$(UNITDIR)/isola.socket
	install -m 0644 contrib/systemd/isola.sysusers $(DESTDIR)$(SYSUSERSDIR)/isola.conf
	@# On the live system (no DESTDIR), make the group now and let systemd see the units.
	@if [ -z "$(DESTDIR)" ] && command -v systemd-sysusers >/dev/null; then systemd-sysusers $(SYSUSERSDIR)/isola.conf; fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "installed isola, isola-runtime (and isola-runtime-vm) and isola-agent into $(DESTDIR)$(BINDIR), the systemd units into $(DESTDIR)$(UNITDIR) (guest kernel: $(CACHE)/kernel); start the API with: systemctl enable --now isola.socket"
