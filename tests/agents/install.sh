#!/bin/sh
# The agents tests/agents drives, at pinned versions, into a cache outside
# the repository (ASKGATE_AGENTS_DIR, default
# ${XDG_CACHE_HOME:-$HOME/.cache}/askgate-agents): Claude Code, Codex and
# Gemini CLI from npm, hermes-agent from PyPI into a virtual environment
# there (hermes/). Says what it installs first; does nothing when they are
# there. Without npm or python3's venv it says why and leaves the tests to
# skip (or fail, under ASKGATE_REQUIRE_AGENTS).
# page.test.mjs drives the page with tests/page's playwright-core, installed
# from its package-lock.json (npm ci) when missing; Chromium is Debian's
# (.ci/run installs it).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir="${ASKGATE_AGENTS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/askgate-agents}"
mkdir -p "$dir"

if [ ! -d "$here/../page/node_modules/playwright-core" ] && command -v npm >/dev/null; then
    echo "installing playwright-core into tests/page/node_modules (npm ci), for tests/agents/page.test.mjs"
    (cd "$here/../page" && npm ci --no-audit --no-fund --loglevel=error)
fi

packages="@anthropic-ai/claude-code@2.1.328 @openai/codex@0.169.0 @google/gemini-cli@0.61.0"
stamp="$dir/.installed"
bins="$dir/node_modules/.bin"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$packages" ] &&
    [ -x "$bins/claude" ] && [ -x "$bins/codex" ] && [ -x "$bins/gemini" ]; then
    :
elif ! command -v npm >/dev/null; then
    echo "tests/agents: npm is missing, so the agents cannot be installed" >&2
else
    echo "installing into $dir, for tests/agents: $packages"
    # shellcheck disable=SC2086
    npm install --no-audit --no-fund --loglevel=error --prefix "$dir" $packages
    printf '%s' "$packages" > "$stamp"
fi

# hermes-agent pins its own dependencies (==) in its wheel's metadata.
hermes="hermes-agent==0.19.0"
venv="$dir/hermes"
if [ -f "$venv/.installed" ] && [ "$(cat "$venv/.installed")" = "$hermes" ] && [ -x "$venv/bin/hermes" ]; then
    :
elif ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    echo "tests/agents: python3 with venv is missing, so hermes-agent cannot be installed" >&2
else
    echo "installing into $venv, for tests/agents: $hermes (pip)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$hermes"
    printf '%s' "$hermes" > "$venv/.installed"
fi
