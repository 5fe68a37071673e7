#!/bin/sh
# The agents tests/agents drives, from npm at pinned versions, into a cache
# outside the repository (ASKGATE_AGENTS_DIR, default
# ${XDG_CACHE_HOME:-$HOME/.cache}/askgate-agents). Says what it installs
# first; does nothing when they are there. Without npm it says why and
# leaves the tests to skip (or fail, under ASKGATE_REQUIRE_AGENTS).
# page.test.mjs drives the page with tests/page's playwright-core, installed
# from its package-lock.json (npm ci) when missing; Chromium is Debian's
# (.ci/run installs it).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$here/../page/node_modules/playwright-core" ] && command -v npm >/dev/null; then
    echo "installing playwright-core into tests/page/node_modules (npm ci), for tests/agents/page.test.mjs"
    (cd "$here/../page" && npm ci --no-audit --no-fund --loglevel=error)
fi
dir="${ASKGATE_AGENTS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/askgate-agents}"
packages="@anthropic-ai/claude-code@2.1.328 @openai/codex@0.169.0 @google/gemini-cli@0.61.0"
stamp="$dir/.installed"
bins="$dir/node_modules/.bin"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$packages" ] &&
    [ -x "$bins/claude" ] && [ -x "$bins/codex" ] && [ -x "$bins/gemini" ]; then
    exit 0
fi
if ! command -v npm >/dev/null; then
    echo "tests/agents: npm is missing, so the agents cannot be installed" >&2
    exit 0
fi
echo "installing into $dir, for tests/agents: $packages"
mkdir -p "$dir"
# shellcheck disable=SC2086
npm install --no-audit --no-fund --loglevel=error --prefix "$dir" $packages
printf '%s' "$packages" > "$stamp"
