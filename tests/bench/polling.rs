//! Polling throughput: wrk on `GET /api/clarify/pending?session_id=...`
//! against nginx serving the same JSON as a static file, as a ratio.

use crate::harness;
use std::net::SocketAddr;
use std::process::Command;

const SESSION: &str = "polling";
const WRK: [&str; 6] = ["-t1", "-c32", "-d5s", "--latency", "--timeout", "5s"];

pub fn bench(repeat: usize) {
    println!(
        "## Polling throughput (wrk {}, nginx: 1 worker)\n",
        WRK.join(" ")
    );
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("(wrk is not installed: `apt-get install wrk`)\n");
        return;
    }
    println!("| run | askgate req/s | p99 | nginx static file req/s | p99 | askgate / nginx |");
    println!("|---|---|---|---|---|---|");
    for run in 1..=repeat {
        let (mut process, addr) = harness::start_askgate(&[]);
        let submit = format!(r#"{{"session_id": "{SESSION}", "question": "how many?"}}"#);
        harness::request(addr, "POST", "/api/clarify/submit", Some(&submit));
        let path = format!("/api/clarify/pending?session_id={SESSION}");
        let json = harness::body_of(&harness::request(addr, "GET", &path, None)).to_string();
        let ours = wrk(addr, &path);
        harness::stop(&mut process);
        let theirs = static_nginx(&json);
        let ratio = match (&ours, &theirs) {
            (Some(ours), Some(theirs)) => format!("{:.2}", ours.0 / theirs.0),
            _ => "n/a".into(),
        };
        let show = |result: &Option<(f64, String)>| {
            result.as_ref().map_or("failed | ".into(), |(rate, p99)| {
                format!("{rate:.0} | {p99}")
            })
        };
        println!("| {run} | {} | {} | {ratio} |", show(&ours), show(&theirs));
    }
    println!();
}

/// nginx serving `json` as a file, measured with wrk.
fn static_nginx(json: &str) -> Option<(f64, String)> {
    let root = std::env::temp_dir().join(format!("askgate-bench-static-{}", std::process::id()));
    std::fs::create_dir_all(&root).ok()?;
    std::fs::write(root.join("pending.json"), json).ok()?;
    let location = format!(
        "location = /pending.json {{ root {}; default_type application/json; }}",
        root.display()
    );
    let (mut process, addr, _) = harness::start_nginx("static", None, &location)?;
    let result = wrk(addr, "/pending.json");
    harness::stop(&mut process);
    result
}

/// Requests per second and the p99 latency wrk reports.
fn wrk(addr: SocketAddr, path: &str) -> Option<(f64, String)> {
    let output = Command::new("wrk")
        .args(WRK)
        .arg(format!("http://{addr}{path}"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let rate = text
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))?
        .trim()
        .parse()
        .ok()?;
    let p99 = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("99%"))
        .map_or("?".into(), |p| p.trim().to_string());
    Some((rate, p99))
}
