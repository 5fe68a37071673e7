"""RSS after compaction (issue 23): a release askgate on a fresh data directory,
--result-ttl 1; idle RSS after 12 s; 40,000 clarify submits and cancels over
500 sessions (one journal compaction at least); then RSS at 0, 5, 15 and 30 s,
against idle. Usage: python3 tests/bench/compaction_rss.py target/release/askgate
Ends only the server it started."""
import atexit, http.client, json, os, re, subprocess, sys, time, tempfile, shutil
binary = sys.argv[1]
data = tempfile.mkdtemp(prefix="askgate-rss-")
p = subprocess.Popen([binary, "serve", "--bind", "127.0.0.1:18795", "--insecure-no-auth", "--data-dir", data, "--log-level", "warn", "--result-ttl", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
p.stdout.readline()
atexit.register(lambda: (p.terminate(), p.wait()))
def status(field):
    for line in open(f"/proc/{p.pid}/status"):
        if line.startswith(field):
            return int(line.split()[1])
def rss(): return status("VmRSS:")
conn = None
def call(method, path, body=None):
    global conn
    for attempt in range(2):
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", 18795)
            conn.request(method, path, body=json.dumps(body) if body else None, headers={"Content-Type": "application/json"})
            r = conn.getresponse(); return r.status, r.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            conn.close(); conn = None
    raise SystemExit("server gone")
call("GET", "/healthz")
time.sleep(12)
idle = rss()
print(f"idle: {idle} kB")
def journal_compactions():
    s, b = call("GET", "/metrics")
    m = re.search(rb"askgate_journal_snapshots_total (\d+)", b)
    return int(m.group(1)) if m else None
before = journal_compactions()
t = time.time()
for round_ in range(4):
    ids = []
    for n in range(5000):
        s, b = call("POST", "/api/clarify/submit", {"session_id": f"s{n % 500}", "question": "q" * 200, "timeout_seconds": 0})
        ids.append((f"s{n % 500}", json.loads(b)["clarify_id"]))
    for sid, cid in ids:
        call("POST", "/api/clarify/cancel", {"session_id": sid, "clarify_id": cid})
peak = status("VmHWM:")
after = journal_compactions()
print(f"40,000 submits and cancels in {time.time()-t:.1f} s; compactions {before} -> {after}; peak {peak} kB")
prev = 0
for wait in (0, 5, 15, 30):
    time.sleep(wait if wait == 0 else wait - prev)
    prev = wait
    print(f"after {wait} s: {rss()} kB ({rss() - idle:+d} kB over idle)")
    prev = wait
p.terminate(); p.wait()
shutil.rmtree(data)
