//! The Pi profile: askgate pinned to one core (`taskset -c 0`) in a cgroup
//! v1 memory cgroup capped at 64 MiB (kernel memory, thread stacks and
//! socket buffers included), at 100 and 1,000 streams.

use crate::harness::{self, millis, percentile};
use crate::{Row, Target};
use std::path::{Path, PathBuf};

const CAP: u64 = 64 << 20;
const CGROUPS: &str = "/sys/fs/cgroup/memory";

pub fn bench(repeat: usize) {
    println!("## Pi profile: one core (taskset -c 0), 64 MiB memory cgroup (v1)\n");
    let check = Cgroup::create("check").and_then(|cgroup| cgroup.remove());
    if let Err(why) = check {
        println!("(not run: {why})\n");
        return;
    }
    println!(
        "| run | streams | p50 | p99 | RSS per stream | peak RSS | cgroup max_usage_in_bytes | failcnt | OOM kills | refused or killed |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for run in 1..=repeat {
        for count in [100, 1000] {
            let row = Cgroup::create(&format!("{count}-{run}")).and_then(|cgroup| {
                let result = measure(&cgroup, count);
                let usage = cgroup.usage();
                cgroup.remove()?;
                Ok((result, usage))
            });
            match row {
                Ok((result, usage)) => print(run, count, result, usage),
                Err(why) => println!("| {run} | {count} | not run: {why} | | | | | | | |"),
            }
        }
    }
    println!();
}

fn measure(cgroup: &Cgroup, count: usize) -> Result<Row, String> {
    let join = format!(
        "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
        cgroup.dir.display()
    );
    let wrapper = ["sh", "-c", &join, "taskset", "-c", "0"];
    let mut target: Target = crate::askgate_target(harness::start_askgate(&wrapper));
    let result = crate::run(&mut target, count);
    harness::stop(&mut target.process);
    result
}

/// What the cgroup recorded: peak bytes charged, failures to charge, OOM kills.
struct Usage {
    max_usage: u64,
    failcnt: u64,
    oom_kills: u64,
}

fn print(run: usize, count: usize, result: Result<Row, String>, usage: Usage) {
    let mib = |bytes: u64| format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64);
    let cells = match &result {
        Ok(row) => format!(
            "{} | {} | {:.1} KiB | {} | ",
            millis(percentile(&row.deliveries, 0.5)),
            millis(row.p99()),
            row.per_stream_kib(count),
            mib(row.peak_kib << 10),
        ),
        Err(_) => " | | | | ".into(),
    };
    let refused = result.err().unwrap_or_else(|| "no".into());
    println!(
        "| {run} | {count} | {cells}{} | {} | {} | {refused} |",
        mib(usage.max_usage),
        usage.failcnt,
        usage.oom_kills
    );
}

struct Cgroup {
    dir: PathBuf,
}

impl Cgroup {
    fn create(name: &str) -> Result<Cgroup, String> {
        let dir = Path::new(CGROUPS).join(format!("askgate-bench-{}-{name}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let cgroup = Cgroup { dir };
        cgroup.write("memory.limit_in_bytes", &CAP.to_string())?;
        Ok(cgroup)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(self.dir.join(file), value).map_err(|e| format!("{file}: {e}"))
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.dir.join(file)).unwrap_or_default()
    }

    fn usage(&self) -> Usage {
        let number = |file: &str| self.read(file).trim().parse().unwrap_or(0);
        let oom = self.read("memory.oom_control");
        let oom_kills = oom
            .lines()
            .find_map(|line| line.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        Usage {
            max_usage: number("memory.max_usage_in_bytes"),
            failcnt: number("memory.failcnt"),
            oom_kills,
        }
    }

    fn remove(self) -> Result<(), String> {
        std::fs::remove_dir(&self.dir).map_err(|e| format!("rmdir {}: {e}", self.dir.display()))
    }
}
