#!/usr/bin/env python3
"""Regenerates link/startup.order, the order in which the release build lays
out askgate's functions (build.rs hands it to lld as --symbol-ordering-file).

The kernel maps a file's pages 64 KiB around each page fault (fault-around),
so code that start-up runs, scattered over the whole binary, keeps most of
the text resident at idle (BENCHMARKS.md, "idle RSS (branch idle)"). Laid
out first and together, it fills a few windows instead.

What runs is read with valgrind's callgrind, phase by phase, each appended
in turn (a function is listed once, in the first phase that runs it):
  1. start-up with a data directory and 12 s of idle;
  2. the first requests of each common kind: the page, a submit of each
     kind, a poll, a respond, a stream of each kind, the sessions; and a
     stream and a long-poll held open through a change, so the fan-out
     thread's start, a frame written to a socket and a poll answered
     early are laid out with them; a burst of streams and requests
     refused (bad JSON, an unknown route, a head too large);
  3. what follows activity: a trim, the timer and the accept loop going
     on on fresh threads, the fan-out thread ending when idle (in the
     second phase's settling time);
  4. nothing more: shutdown is left to fall where it falls.
A stale entry is harmless (lld skips a symbol it does not find, and build.rs
silences the warning); regenerate after changes that move start-up code:

    make link-order        # cargo build --release, then this script

Needs valgrind (callgrind_control) and nm.
"""

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "askgate")
OUT = os.path.join(ROOT, "link", "startup.order")
IDLE_SECS = 12
# Past a trim period (10 s) and the fan-out's idle end: after activity the
# timer trims and goes on on a fresh thread, the fan-out thread ends, the
# accept loop moves to a fresh thread; each lies among start-up's code.
SETTLE_SECS = 16


# What runs before main from the C start files (crt1.o, crtbegin.o), which
# callgrind names "(below main)" or by address.
BEFORE_MAIN = [
    "_start",
    "deregister_tm_clones",
    "register_tm_clones",
    "__do_global_dtors_aux",
    "frame_dummy",
]


# Constants that start-up never reads, laid out first and together so that
# what it does read (most of it unnamed, so not listed) lies together after
# them: the page's files (build.rs names each PAGE_FILE) and ring's P-256
# table (TLS only).
COLD_DATA = re.compile(r"static_files.*PAGE_FILE|^ecp_nistz256_precomputed$")


# ring picks its code by the CPU (cpuid): valgrind's CPU lacks some
# features (ADX, SHA), so with each variant the profile ran go its siblings.
VARIANT = re.compile(r"_(nohw|avx|avx2|adx|bmi2|shaext|ssse3|neon)$")


def with_variants(names, known, binary):
    """The names, each followed by the other CPU variants of ring's
    functions among them and what those call (read from their code, since
    the profile never ran them)."""
    stems = {}
    for name in sorted(known):
        stems.setdefault(VARIANT.sub("", name), []).append(name)
    for name in names:
        yield name
        if name.startswith("ring_core_"):
            for variant in stems.get(VARIANT.sub("", name), []):
                yield from called_from(variant, known, binary)


def called_from(root, known, binary):
    """`root` and every function it calls, directly or not."""
    found, todo = [], [root]
    while todo:
        name = todo.pop()
        if name in found or name not in known:
            continue
        found.append(name)
        start, size = known[name]
        code = subprocess.run(
            ["objdump", "-d", f"--start-address={start}", f"--stop-address={start + size}", binary],
            capture_output=True,
            text=True,
        ).stdout
        todo.extend(re.findall(r"(?:call|jmp)\s+[0-9a-f]+ <([^>+]+)>", code))
    return found


def cold_data(binary):
    """The read-only data symbols that match COLD_DATA, by address."""
    listing = subprocess.run(
        ["nm", "--defined-only", "-n", binary], capture_output=True, text=True, check=True
    ).stdout
    return [
        parts[2]
        for parts in (line.split() for line in listing.splitlines())
        if len(parts) == 3 and parts[1] in "rR" and COLD_DATA.search(parts[2])
    ]


def text_symbols(binary):
    """The functions defined in the binary, as the linker names them (not
    demangled): (address, name, size), by address."""
    listing = subprocess.run(
        ["nm", "--defined-only", "-n", "-S", binary], capture_output=True, text=True, check=True
    ).stdout
    # The C start files' functions have no size: nm leaves the column out.
    rows = (line.split() for line in listing.splitlines())
    rows = (parts if len(parts) == 4 else parts[:1] + ["0"] + parts[1:] for parts in rows)
    return [
        (int(parts[0], 16), parts[3], int(parts[1], 16))
        for parts in rows
        if len(parts) == 4 and parts[2] in "tTwW"
    ]


def named(name, symbols):
    """callgrind's name for a function, as the linker's: a recursion's
    `'2` dropped, an address (where callgrind found no name) to the
    function that holds it."""
    name = re.sub(r"'\d+$", "", name)
    if not name.startswith("0x"):
        return name
    address = int(name, 16)
    holder = [symbol for start, symbol, _ in symbols if start <= address]
    return holder[-1] if holder else name


def start(binary, data_dir, out_file):
    """askgate under callgrind; returns the process and the address it
    listens on."""
    process = subprocess.Popen(
        [
            "valgrind",
            "--tool=callgrind",
            "--demangle=no",
            "--dump-instr=no",
            "--compress-strings=no",
            "--compress-pos=no",
            f"--callgrind-out-file={out_file}",
            binary,
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
            data_dir,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for line in process.stdout:
        found = re.search(r"listening on http://(\S+)", line)
        if found:
            return process, found.group(1)
    sys.exit("askgate ended before it listened")


def dump(process):
    """Writes what ran since the last dump, and starts counting afresh."""
    subprocess.run(
        ["callgrind_control", "--dump", str(process.pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )


def request(addr, method, path, token=None, body=None, stream=False):
    host, port = addr.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Content-Type": "application/json"} if body else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    # A stream's first frame, then the client leaves.
    response.read1(4096) if stream else response.read()
    connection.close()
    print(f"  {response.status} {method} {path}", file=sys.stderr)


def first_requests(addr, human):
    """One request of each common kind, as a page and an agent send them."""
    request(addr, "GET", "/")
    for name in sorted(os.listdir(os.path.join(ROOT, "www"))):
        request(addr, "GET", f"/{name}")
    clarify = '{"session_id": "order", "question": "which one?", "choices": ["a", "b"]}'
    request(addr, "POST", "/api/clarify/submit", body=clarify)
    request(addr, "POST", "/api/approval/submit", body='{"session_id": "order", "command": "ls -la"}')
    request(addr, "GET", "/api/events", human, stream=True)
    request(addr, "GET", "/api/clarify/stream?session_id=order", human, stream=True)
    request(addr, "GET", "/api/approval/stream?session_id=order", human, stream=True)
    request(addr, "GET", "/api/clarify/pending?session_id=order", human)
    request(addr, "GET", "/api/approval/pending?session_id=order&since=0&wait=0", human)
    request(addr, "GET", "/api/sessions", human)
    request(addr, "POST", "/api/clarify/respond", human, '{"session_id": "order", "response": "a"}')
    request(addr, "POST", "/api/approval/respond", human, '{"session_id": "order", "choice": "once"}')
    request(addr, "GET", "/healthz")


def held_open(addr, human):
    """A stream and a long-poll open while a change is made, each read until
    the change reaches it."""
    host, port = addr.rsplit(":", 1)
    path = "/api/clarify/pending?session_id=held"
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request("GET", path, headers={"Authorization": f"Bearer {human}"})
    version = json.loads(connection.getresponse().read())["version"]
    connection.close()
    stream = socket.create_connection((host, int(port)), timeout=60)
    stream.sendall(f"GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {human}\r\n\r\n".encode())
    poll = socket.create_connection((host, int(port)), timeout=60)
    poll.sendall(f"GET {path}&since={version}&wait=60 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {human}\r\n\r\n".encode())
    read_until(stream, b"\n\n")
    # Under callgrind, a request takes a while to park.
    time.sleep(2)
    request(addr, "POST", "/api/clarify/submit", body='{"session_id": "held", "question": "held?"}')
    read_until(stream, b"held?")
    read_until(poll, b"held?")
    stream.close()
    poll.close()
    print("  a stream and a long-poll held through a change", file=sys.stderr)


def burst_and_refusals(addr, human):
    """Streams opened at once and closed (spare workers, the registry's
    room given back), and requests refused as hostile or broken clients'
    are, so that what a burst or an attack runs lies with the rest."""
    host, port = addr.rsplit(":", 1)
    streams = []
    for _ in range(32):
        stream = socket.create_connection((host, int(port)), timeout=60)
        stream.sendall(f"GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {human}\r\n\r\n".encode())
        streams.append(stream)
    for stream in streams:
        read_until(stream, b"\n\n")
    for stream in streams:
        stream.close()
    request(addr, "POST", "/api/clarify/submit", body="{not json")
    request(addr, "POST", "/api/approval/submit", body='{"session_id": "order"}')
    request(addr, "GET", "/api/nothing")
    request(addr, "DELETE", "/api/clarify/pending")
    request(addr, "GET", "/api/events")
    refused = socket.create_connection((host, int(port)), timeout=60)
    refused.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 70000 + b"\r\n\r\n")
    read_until(refused, b"\r\n\r\n")
    refused.close()
    print("  a burst of streams, and refusals", file=sys.stderr)


def read_until(connection, wanted):
    got = b""
    while wanted not in got:
        data = connection.recv(65536)
        if not data:
            sys.exit(f"the connection ended before {wanted!r}")
        got += data


def ran(dump_file, binary):
    """The functions of `binary` that ran in one dump, in the order
    callgrind lists them."""
    names, ours = [], False
    with open(dump_file) as lines:
        for line in lines:
            if line.startswith("ob="):
                ours = os.path.realpath(line[3:].strip()) == os.path.realpath(binary)
            elif ours and line.startswith("fn="):
                names.append(line[3:].strip())
    return names


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else BINARY
    symbols = text_symbols(binary)
    known = {name: (start, size) for start, name, size in symbols}
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = os.path.join(scratch, "data")
        out_file = os.path.join(scratch, "callgrind.out")
        process, addr = start(binary, data_dir, out_file)
        time.sleep(IDLE_SECS)
        dump(process)
        human = open(os.path.join(data_dir, "tokens")).read().split("human=")[1].split()[0]
        first_requests(addr, human)
        held_open(addr, human)
        burst_and_refusals(addr, human)
        time.sleep(SETTLE_SECS)
        dump(process)
        process.terminate()
        process.wait()
        order, seen = cold_data(binary), set()
        phases = [BEFORE_MAIN] + [ran(f"{out_file}.{phase}", binary) for phase in (1, 2)]
        for phase in phases:
            for name in with_variants([named(name, symbols) for name in phase], known, binary):
                if name in known and name not in seen:
                    seen.add(name)
                    order.append(name)
    with open(OUT, "w") as out:
        out.write("\n".join(order) + "\n")
    print(f"{len(order)} functions in {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
