#!/bin/sh
# run.sh: runs the browser tests of the page on a fresh machine.
#
# Installs Debian's chromium when /usr/bin/chromium is missing and
# playwright-core from npm when tests/page/node_modules is missing, then runs
# every tests/page/*.test.mjs one file at a time against target/debug/askgate
# (build it first: cargo build). Exits with the tests' status. Screenshots go
# to artifacts/ at the repository root. 13-proxy.test.mjs also needs nginx,
# Caddy and openssl (.ci/run installs them); a proxy that is missing is
# skipped, and the output says so.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ ! -x /usr/bin/chromium ]; then
    echo "tests/page: installing Debian's chromium (apt-get update, apt-get install chromium; as root, or through sudo)" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y chromium
fi

# npm ci installs exactly package-lock.json: playwright-core, and axe-core
# for the accessibility checks (16-a11y). A node_modules from before a
# dependency was added is brought up to date the same way.
if [ ! -d "$here/node_modules/playwright-core" ] || [ ! -f "$here/node_modules/axe-core/axe.min.js" ]; then
    echo "tests/page: installing playwright-core and axe-core from npm into tests/page/node_modules (npm ci)" >&2
    (cd "$here" && npm ci --no-audit --no-fund)
fi

cd "$root"
status=0
# Explicit files (expanded by the shell): Node 20 takes a directory, Node 22
# takes globs, both take file names.
node --test --test-concurrency=1 tests/page/*.test.mjs || status=$?
exit "$status"
