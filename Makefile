# askgate: `make run` serves on 127.0.0.1:8787; `make test` runs every test;
# `make soak` runs the crash test with 100 kills instead of 20, and the
# hostile clients longer and mixed.

CARGO ?= cargo

.PHONY: link-order run test test-rust test-tiny-http test-page test-agents test-image image mcp-sdk check fmt clippy build bench soak soak-hostile

run:
	$(CARGO) run --release -- serve

build:
	$(CARGO) build --all-targets

test: test-rust test-tiny-http test-page test-agents test-image

# The hostile clients run on their own, one at a time: each holds the
# server to deadlines that other tests' load on a small machine would blur.
test-rust: mcp-sdk
	$(CARGO) test -- --skip hostile::
	$(CARGO) test --test it hostile:: -- --test-threads 1

# The official MCP Python SDK, which tests/it/mcp.rs drives `askgate mcp`
# with; installed from PyPI when python3 lacks it.
mcp-sdk:
	sh tests/mcp/install.sh

# The vendored tiny_http's own tests: upstream's, and those of the fork's
# patches. A crate of its own, so that its lock file stays out of askgate's.
test-tiny-http:
	$(CARGO) test --manifest-path vendor/tiny_http/Cargo.toml --target-dir target

# The page in real headless Chromium; installs Debian's chromium, and
# playwright-core and axe-core from npm (tests/page/package-lock.json), when
# they are missing. The proxy tests skip
# nginx or Caddy when they are not installed (.ci/run installs them).
test-page:
	$(CARGO) build
	sh tests/page/run.sh

# The real agents (Claude Code, Codex, Gemini CLI, hermes-agent) gated by
# askgate's hooks against scripted model servers on loopback (tests/agents);
# installs them from npm and PyPI at pinned versions into a cache outside
# the repository.
test-agents:
	$(CARGO) build
	sh tests/agents/install.sh
	node --test tests/agents/

# The crash test (tests/it/durability/crash.rs) at length: SIGKILLs the server
# 100 times under load instead of 20, in release, and checks after each
# restart that nothing acknowledged was lost. ASKGATE_CRASH_SEED=N repeats a
# run's choice of operations. Then the hostile clients (soak-hostile).
soak: soak-hostile
	ASKGATE_CRASH_KILLS=100 $(CARGO) test --release --test it durability::a_crash -- --nocapture

# link/startup.order: the functions start-up, idle and the first requests
# run, which the release build lays out first (build.rs; link/order.py
# says why). Regenerate after changes that move start-up code; needs valgrind.
link-order:
	$(CARGO) build --release
	python3 link/order.py

fmt:
	$(CARGO) fmt

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

check:
	$(CARGO) fmt --check
	$(MAKE) clippy
	$(MAKE) test

# Fan-out latency and memory per stream, beside nginx + nchan when it is
# installed (apt-get install nginx-light libnginx-mod-nchan). BENCH_SUBSCRIBERS
# picks the counts (default 100,1000,5000). First the stripped binary and
# idle RSS against their budgets (tests/bench/lean.sh), which fails when the
# link order has gone stale.
bench:
	$(CARGO) build --release
	sh tests/bench/lean.sh
	$(CARGO) bench --bench fanout
	$(CARGO) bench --bench durability
	$(CARGO) bench --bench redis

# The hostile clients of tests/it/hostile.rs, longer and against a release
# build: every attack, and all of them mixed, for HOSTILE_SECS each, one at
# a time, printing peak RSS, healthz p50/p99 under attack, and how soon
# places, threads and memory came back (BENCHMARKS.md).
HOSTILE_SECS ?= 30
soak-hostile:
	HOSTILE_SECS=$(HOSTILE_SECS) $(CARGO) test --release --test it hostile:: -- --test-threads 1 --nocapture

# The container image (Containerfile): the binary linked statically against
# glibc (no musl toolchain is needed), stripped, on an empty base; the build
# context is target/image/ alone. IMAGE names the tag.
IMAGE ?= askgate:latest
HOST_TRIPLE = $(shell rustc -vV | sed -n 's/^host: //p')
image:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --target $(HOST_TRIPLE)
	rm -rf target/image
	mkdir -p target/image
	mkdir -m 700 target/image/data
	cp target/$(HOST_TRIPLE)/release/askgate target/image/askgate
	strip target/image/askgate
	podman build --quiet --format docker -f Containerfile -t $(IMAGE) target/image

# Builds the image and runs the static binary it holds outside a container
# (podman cannot run containers on these machines); skips without podman,
# saying so, unless ASKGATE_REQUIRE_PODMAN is set (.ci/run).
test-image:
	sh tests/container/build.sh
