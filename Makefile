# askgate: `make run` serves on 127.0.0.1:8787; `make test` runs every test.

CARGO ?= cargo

.PHONY: run test test-rust test-page check fmt clippy build

run:
	$(CARGO) run --release -- serve

build:
	$(CARGO) build --all-targets

test: test-rust

test-rust:
	$(CARGO) test --all-targets

fmt:
	$(CARGO) fmt

clippy:
	$(CARGO) clippy --all-targets -- -D warnings

check:
	$(CARGO) fmt --check
	$(MAKE) clippy
	$(MAKE) test
