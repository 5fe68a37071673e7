#!/usr/bin/env python3
"""Load on askgate instances sharing one Redis (issue 21 §5, BENCHMARKS.md).

Starts redis-server (AOF, `appendfsync always`) on a free loopback port in a
temporary directory and INSTANCES askgate instances (`--store redis://`,
`--insecure-no-auth`, port 0) on it, then CLIENTS processes, spread over the
instances round-robin, each for SECONDS submitting a clarify on a session of
its own and answering it at once (two operations, two appends), over one
keep-alive connection. Prints operations per second (submits + answers) and
submits per second. Ends only the processes it started, by pid.

    python3 tests/bench/redis_load.py [INSTANCES] [CLIENTS] [SECONDS]

ASKGATE (default target/release/askgate) and REDIS_SERVER (default
redis-server) pick the binaries. PENDING (default 0) prompts are submitted
first and left pending, on sessions of their own, so the load runs on a
large state.
"""
import http.client, json, multiprocessing, os, re, shutil, socket, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(directory):
    port = free_port()
    program = os.environ.get("REDIS_SERVER", "redis-server")
    process = subprocess.Popen(
        [program, "--port", str(port), "--bind", "127.0.0.1", "--dir", directory,
         "--appendonly", "yes", "--appendfsync", "always", "--save", "",
         "--daemonize", "no", "--logfile", ""],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(7) == b"+PONG\r\n":
                    return process, port
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("redis-server did not answer PING")


def start_askgate(redis_port):
    program = os.environ.get("ASKGATE", os.path.join(ROOT, "target/release/askgate"))
    process = subprocess.Popen(
        [program, "serve", "--bind", "127.0.0.1:0", "--log-level", "info",
         "--insecure-no-auth", "--data-dir", "none",
         "--max-pending", "100000", "--max-prompts", "1000000", "--max-sessions", "1000000",
         "--store", f"redis://127.0.0.1:{redis_port}/0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        found = re.search(r"listening on (?:http://)?127\.0\.0\.1:(\d+)", line)
        if found:
            # Keep draining stderr so the instance never blocks on a full pipe.
            threading.Thread(target=drain, args=(process.stderr,), daemon=True).start()
            return process, int(found.group(1))
    raise SystemExit("askgate did not say where it listens")


def drain(stream):
    for _ in stream:
        pass


def client(port, name, seconds, results):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.connect()
    # http.client writes headers and body apart: without this, Nagle and
    # delayed ACKs hold each request 40 ms.
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    headers = {"Content-Type": "application/json"}
    submits = refused = 0
    end = time.time() + seconds
    while time.time() < end:
        body = json.dumps({"session_id": name, "question": "q"})
        conn.request("POST", "/api/clarify/submit", body, headers)
        reply = conn.getresponse()
        data = reply.read()
        if reply.status != 200:
            refused += 1
            continue
        prompt_id = json.loads(data)["clarify_id"]
        body = json.dumps({"session_id": name, "clarify_id": prompt_id, "response": "a"})
        conn.request("POST", "/api/clarify/respond", body, headers)
        reply = conn.getresponse()
        reply.read()
        refused += reply.status != 200
        submits += 1
    results.put((submits, refused))


def fill(port, first, count, results):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    headers = {"Content-Type": "application/json"}
    for n in range(first, first + count):
        body = json.dumps({"session_id": f"pending-{n % 1000}", "question": f"waiting {n}"})
        conn.request("POST", "/api/clarify/submit", body, headers)
        reply = conn.getresponse()
        reply.read()
        if reply.status != 200:
            raise SystemExit(f"a pending prompt was refused: {reply.status}")
    results.put(count)


def prefill(port, pending, workers=16):
    results = multiprocessing.Queue()
    share = pending // workers
    processes = [multiprocessing.Process(target=fill, args=(port, n * share, share, results))
                 for n in range(workers)]
    for process in processes:
        process.start()
    filled = sum(results.get() for _ in processes)
    for process in processes:
        process.join()
    return filled


def redis_stat(port, name):
    """One line of Redis's `INFO commandstats`, as a dict."""
    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(b"INFO commandstats\r\n")
        data = b""
        while not data.endswith(b"\r\n") or data.count(b"\r\n") < 2:
            data += s.recv(65536)
        header, _, rest = data.partition(b"\r\n")
        size = int(header[1:])
        while len(rest) < size:
            rest += s.recv(65536)
    for line in rest.decode().splitlines():
        if line.startswith(name + ":"):
            return dict(pair.split("=") for pair in line.split(":", 1)[1].split(","))
    return {}


def main():
    instances = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 10
    directory = tempfile.mkdtemp(prefix="askgate-redis-load-")
    redis, redis_port = start_redis(directory)
    servers = []
    try:
        servers = [start_askgate(redis_port) for _ in range(instances)]
        pending = int(os.environ.get("PENDING", "0"))
        if pending:
            started = time.time()
            filled = prefill(servers[0][1], pending)
            print(f"{filled} prompts left pending in {time.time() - started:.1f} s")
        results = multiprocessing.Queue()
        workers = [multiprocessing.Process(target=client, args=(
            servers[n % instances][1], f"load-{n}", seconds, results)) for n in range(clients)]
        for worker in workers:
            worker.start()
        totals = [results.get() for _ in workers]
        for worker in workers:
            worker.join()
        submits = sum(s for s, _ in totals)
        refused = sum(r for _, r in totals)
        print(f"instances={instances} clients={clients} seconds={seconds:g}: "
              f"{2 * submits / seconds:.0f} operations/s ({submits / seconds:.0f} submits/s, "
              f"each answered), {refused} refused")
        evals = redis_stat(redis_port, "cmdstat_eval")
        if evals:
            print(f"  redis: {evals.get('calls', 0)} script calls "
                  f"({int(evals.get('calls', 0)) / max(1, 2 * submits):.2f} an operation), "
                  f"{evals.get('usec_per_call', '?')} us each")
        for n, (_, port) in enumerate(servers):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/metrics")
            lines = conn.getresponse().read().decode().splitlines()
            kept = [line.split() for line in lines if line.startswith("askgate_store_")]
            print(f"  instance {n}: " + ", ".join(f"{name[14:]} {value}" for name, value in kept
                                                   if name != "askgate_store_up"))
    finally:
        for process, _ in servers:
            process.kill()
            process.wait()
        redis.kill()
        redis.wait()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
