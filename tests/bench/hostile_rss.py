"""RSS after the hostile suite (issue 23): a release askgate started as the
hostile tests start theirs (in memory, open, the suite's FLAGS of
tests/it/hostile.rs, which the tests check on its command line), but as a
process of its own and with the server's own trims; idle RSS 12 s after one
request; then every attack of tests/it/hostile.rs against it, one after
another (ASKGATE_HOSTILE_TARGET=PID@ADDR; the compaction churn, which starts
and crashes servers of its own, is skipped); then RSS at 0, 5, 15 and 30 s
after the suite, against idle, and where the resident memory is (smaps);
then what the attacks left in the state (pending prompts, rules), that
state cleared (cancels, revokes), and RSS at 0, 15 and 30 s after.
Usage: python3 tests/bench/hostile_rss.py target/release/askgate [cargo test args]
Ends only the server it started."""
import http.client, json, os, subprocess, sys, time

# tests/it/hostile.rs FLAGS; a test fails naming them if they differ.
FLAGS = ["--max-state-bytes", "4M", "--max-streams", "200", "--max-parked", "200",
         "--max-connections", "400", "--header-timeout-secs", "2", "--result-ttl", "5"]
binary = sys.argv[1]
test_args = sys.argv[2:] or ["--test", "it"]
command = [binary, "serve", "--bind", "127.0.0.1:0", "--log-level", "warn",
           "--insecure-no-auth", "--data-dir", "none", *FLAGS]
server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
addr = server.stdout.readline().decode().strip().rsplit("/", 1)[-1]

def status(field):
    for line in open(f"/proc/{server.pid}/status"):
        if line.startswith(field):
            return int(line.split()[1])

def rss():
    return status("VmRSS:")

def smaps():
    """Resident kB by mapping: [heap], the other anonymous ones (arenas,
    stacks), and the files' pages (code)."""
    kinds, name = {}, None
    for line in open(f"/proc/{server.pid}/smaps"):
        words = line.split()
        if "-" in words[0] and not words[0].endswith(":"):
            path = words[5] if len(words) > 5 else ""
            name = path if path.startswith("[") else ("file " + os.path.basename(path) if path else "anonymous")
        elif words[0] == "Rss:":
            kinds[name] = kinds.get(name, 0) + int(words[1])
    return {k: v for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]) if v}

def call(method, path, body=None):
    """One request on a connection of its own; the JSON it answered."""
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port))
    conn.request(method, path, body=json.dumps(body) if body else None,
                 headers={"Content-Type": "application/json"})
    reply = conn.getresponse(); text = reply.read(); conn.close()
    return json.loads(text) if reply.getheader("Content-Type", "").startswith("application/json") else text

try:
    call("GET", "/healthz")
    time.sleep(12)
    idle, idle_maps = rss(), smaps()
    print(f"server {server.pid} at {addr}; idle: {idle} kB, threads {status('Threads:')}; {idle_maps}", flush=True)
    started = time.time()
    env = dict(os.environ, ASKGATE_HOSTILE_TARGET=f"{server.pid}@{addr}")
    suite = subprocess.run(["cargo", "test", *test_args, "hostile::", "--", "--test-threads", "1",
                            "--skip", "churn_across", "--nocapture"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ended = time.monotonic()
    lines = suite.stdout.splitlines()
    for n, line in enumerate(lines):
        if line.startswith(("hostile ", "test ", "test result", "---- ")):
            print(line)
        elif " panicked at " in line:
            print(line, *lines[n + 1:n + 2])
    print(f"the suite: {time.time() - started:.0f} s, exit {suite.returncode}; peak RSS {status('VmHWM:')} kB")
    for wait in (0, 5, 15, 30):
        time.sleep(max(0, ended + wait - time.monotonic()))
        now = rss()
        print(f"after {wait} s: {now} kB ({now - idle:+d} kB over idle), threads {status('Threads:')}", flush=True)
    def above_idle():
        maps = smaps()
        return {k: v - idle_maps.get(k, 0) for k, v in maps.items() if v != idle_maps.get(k, 0)}
    print("resident kB above idle by mapping:", above_idle())
    # What the attacks left stored (pending prompts wait 900 s, rules stay),
    # then that state cleared: what stays after is not state.
    sessions = call("GET", "/api/sessions")["sessions"]
    rules = call("GET", "/api/rules")["rules"]
    pending = {kind: sum(s[f"{kind}_count"] for s in sessions) for kind in ("clarify", "approval")}
    print(f"left in the state: {len(sessions)} sessions, pending {pending}, {len(rules)} rules "
          f"of {sum(len(r['command']) for r in rules)} command bytes", flush=True)
    for s in sessions:
        for kind in ("clarify", "approval"):
            if s[f"{kind}_count"]:
                call("POST", f"/api/{kind}/cancel", {"session_id": s["session_id"]})
    for r in rules:
        call("POST", "/api/rules/revoke", {"rule_id": r["rule_id"]})
    cleared = time.monotonic()
    for wait in (0, 15, 30):
        time.sleep(max(0, cleared + wait - time.monotonic()))
        now = rss()
        print(f"{wait} s after clearing the state: {now} kB ({now - idle:+d} kB over idle)", flush=True)
    print("resident kB above idle by mapping:", above_idle())
finally:
    server.terminate(); server.wait()
