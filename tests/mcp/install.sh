#!/bin/sh
# Installs the official MCP Python SDK (PyPI `mcp`) that tests/it/mcp.rs
# drives `askgate mcp` with, only when python3 cannot import it already.
# `make test` runs this; without python3 the SDK test says it is skipped.
set -eu
if ! command -v python3 >/dev/null 2>&1; then
    echo "tests/mcp: no python3, so the MCP SDK test will be skipped" >&2
    exit 0
fi
if python3 -c 'import mcp.client.stdio' 2>/dev/null; then
    exit 0
fi
echo "tests/mcp: installing the MCP Python SDK (pip install mcp)" >&2
# A Debian python3 refuses system-wide installs (PEP 668) unless told.
python3 -m pip install --quiet 'mcp>=1.10' ||
    python3 -m pip install --quiet --break-system-packages 'mcp>=1.10'
python3 -c 'import mcp.client.stdio'
