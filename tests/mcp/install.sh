#!/bin/sh
# Installs the official MCP Python SDK (PyPI `mcp`) that tests/it/mcp.rs
# drives `askgate mcp` with, into a virtual environment of the checkout's
# own (target/mcp-venv), never system-wide: `make test` runs this, and says
# what it installs before it does. tests/it/mcp.rs runs that environment's
# python. Without python3 (or its venv module) the SDK test says it is
# skipped (and fails under CI, which sets ASKGATE_REQUIRE_MCP_SDK).
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/target/mcp-venv"
if [ -x "$venv/bin/python3" ] && "$venv/bin/python3" -c 'import mcp.client.stdio' 2>/dev/null; then
    exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "tests/mcp: no python3, so the MCP SDK test will be skipped" >&2
    exit 0
fi
echo "tests/mcp: installing the MCP Python SDK (pip install 'mcp>=1.10' from PyPI) into $venv, a virtual environment of this checkout; nothing is installed system-wide" >&2
if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    echo "tests/mcp: python3 cannot make a virtual environment (Debian: apt-get install python3-venv), so the MCP SDK test will be skipped" >&2
    rm -rf "$venv"
    exit 0
fi
"$venv/bin/python3" -m pip install --quiet --disable-pip-version-check 'mcp>=1.10'
"$venv/bin/python3" -c 'import mcp.client.stdio'
