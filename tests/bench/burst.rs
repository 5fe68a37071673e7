//! After a burst: `BURST` streams (5,000) open on one session, then all
//! close at once; how long until the server holds no more threads than
//! idle and its RSS is back within 1 MiB of idle (issue 23), read every
//! 100 ms for up to 30 s. What stays is what the burst left allocated
//! (tables that kept their room, heap pages not given back), not code:
//! the idle figure is read after a request has run.

use crate::harness::{self, knob};
use std::net::Shutdown;
use std::sync::mpsc::channel;
use std::thread;
use std::time::{Duration, Instant};

/// RSS above idle that counts as back.
const WITHIN_KIB: u64 = 1024;
const PATIENCE: Duration = Duration::from_secs(30);

pub fn bench(repeat: usize) {
    let count: usize = knob("BENCH_BURST", "5000").parse().unwrap_or(5000);
    println!("## After a burst of {count} streams that all close\n");
    println!(
        "| run | idle RSS | with the streams | after they closed | above idle | back within 1 MiB after |"
    );
    println!("|---|---|---|---|---|---|");
    for run in 1..=repeat {
        let mut target = crate::start_askgate();
        match burst(&target, count) {
            Ok(cells) => println!("| {run} | {cells} |"),
            Err(why) => println!("| {run} | not run: {why} | | | | |"),
        }
        harness::stop(&mut target.process);
    }
    println!();
}

fn burst(target: &crate::Target, count: usize) -> Result<String, String> {
    let pid = target.process.id();
    harness::request(target.addr, "GET", "/", None);
    thread::sleep(Duration::from_millis(300));
    let (idle_kib, idle_threads) = (harness::rss_kib(pid), harness::threads(pid));
    let (sender, _receipts) = channel();
    let mut streams = Vec::new();
    for _ in 0..count {
        match crate::subscribe(target, sender.clone()) {
            Some(stream) => streams.push(stream),
            None => return Err(format!("refused after {} streams", streams.len())),
        }
    }
    thread::sleep(crate::SETTLE);
    let loaded_kib = harness::rss_kib(pid);
    // Both ends of each connection close (the client's reader ends too).
    for stream in &streams {
        let _ = stream.shutdown(Shutdown::Both);
    }
    drop(streams);
    let closed = Instant::now();
    let back = loop {
        let rss = harness::rss_kib(pid);
        let idle = harness::threads(pid) <= idle_threads && rss <= idle_kib + WITHIN_KIB;
        if idle || closed.elapsed() >= PATIENCE {
            break idle.then(|| closed.elapsed());
        }
        thread::sleep(Duration::from_millis(100));
    };
    let after_kib = harness::rss_kib(pid);
    let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
    let above = after_kib as i64 - idle_kib as i64;
    let back = back.map_or(format!("not within {} s", PATIENCE.as_secs()), |at| {
        format!("{:.1} s", at.as_secs_f64())
    });
    Ok(format!(
        "{} | {} | {} | {above} KiB | {back}",
        mib(idle_kib),
        mib(loaded_kib),
        mib(after_kib)
    ))
}
