//! The memory the process's cgroup lets it use, which sizes the default
//! places for open streams and parked requests (`--max-streams` and
//! `--max-parked` left at `auto`).
//!
//! Each of those places is a thread, and a thread costs the cgroup about
//! 40 KiB that RSS does not show: its kernel stack and task, its user stack
//! and its share of the heap (BENCHMARKS.md, "where a stream's bytes go").
//! In a container capped at 32 MiB the 1,024 places of a large machine do
//! not fit, and the OOM killer ends the server for everyone at the 833rd
//! stream; sized from the cap, the next stream is a 503 and everyone else
//! is still served.
//!
//! Read from cgroup v2's `memory.max` at every level up to the root (the
//! smallest wins), or from v1's `hierarchical_memory_limit`, which already
//! is that smallest. No cgroup, no limit, or nothing readable: `None`.

use std::path::{Path, PathBuf};

/// What one thread holding a stream or a parked request costs the cgroup.
const THREAD_COST: u64 = 40 << 10;
/// Kept for everything else: the idle process and its code pages (charged
/// as page cache), requests being served, the prompts themselves.
const RESERVE: u64 = 12 << 20;
/// The places with no memory limit to fit (each of `--max-streams` and
/// `--max-parked`).
pub const UNCAPPED_PLACES: usize = 1024;

/// Where cgroup file systems are mounted.
const ROOT: &str = "/sys/fs/cgroup";

/// The process's memory limit in bytes, if its cgroup has one.
pub fn memory_limit() -> Option<u64> {
    let membership = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    limit_from(&membership, |path| std::fs::read_to_string(path).ok())
}

/// The places for threads: `share` (numerator, denominator) of what the
/// limit leaves after the reserve, at 40 KiB a thread (all of it for
/// streams, a quarter for parked requests: both full charge less than the
/// limit, a thread costing nearer 34 KiB); `UNCAPPED_PLACES` at most, and
/// at least 8 so a tiny cap still serves.
pub fn places(limit: Option<u64>, share: (u64, u64)) -> usize {
    let Some(limit) = limit else {
        return UNCAPPED_PLACES;
    };
    let threads = limit.saturating_sub(RESERVE) / THREAD_COST;
    let mine = threads * share.0 / share.1;
    usize::try_from(mine).map_or(UNCAPPED_PLACES, |mine| mine.clamp(8, UNCAPPED_PLACES))
}

/// The limit from `/proc/self/cgroup`'s lines and a file reader.
fn limit_from(membership: &str, read: impl Fn(&Path) -> Option<String>) -> Option<u64> {
    let mut v2 = None;
    for line in membership.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        if controllers.split(',').any(|c| c == "memory") {
            return v1_limit(path, &read);
        }
        if controllers.is_empty() {
            v2 = Some(path);
        }
    }
    v2_limit(v2?, &read)
}

/// v1: `memory.stat`'s `hierarchical_memory_limit`, in the process's own
/// group or, inside a container that sees its group as the root, at the
/// mount's root. An unlimited group says a number near 2^63.
fn v1_limit(path: &str, read: &impl Fn(&Path) -> Option<String>) -> Option<u64> {
    let mount = Path::new(ROOT).join("memory");
    let stat = read(&within(&mount, path).join("memory.stat"))
        .or_else(|| read(&mount.join("memory.stat")))?;
    let limit: u64 = stat
        .lines()
        .find_map(|line| line.strip_prefix("hierarchical_memory_limit "))?
        .trim()
        .parse()
        .ok()?;
    (limit < 1 << 60).then_some(limit)
}

/// v2: the smallest `memory.max` from the process's group up to the root
/// (`max` is no limit).
fn v2_limit(path: &str, read: &impl Fn(&Path) -> Option<String>) -> Option<u64> {
    let mut dir = within(Path::new(ROOT), path);
    let mut smallest: Option<u64> = None;
    loop {
        if let Some(max) = read(&dir.join("memory.max")).and_then(|max| max.trim().parse().ok()) {
            smallest = Some(smallest.map_or(max, |smallest: u64| smallest.min(max)));
        }
        if dir == Path::new(ROOT) || !dir.pop() {
            return smallest;
        }
    }
}

fn within(mount: &Path, path: &str) -> PathBuf {
    mount.join(path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn reader(files: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> + use<> {
        let files: HashMap<PathBuf, String> = files
            .iter()
            .map(|(path, text)| (PathBuf::from(path), text.to_string()))
            .collect();
        move |path| files.get(path).cloned()
    }

    #[test]
    fn v1_reads_the_hierarchical_limit_of_the_processs_group() {
        let membership = "5:cpu:/\n4:memory:/pi/askgate\n0::/\n";
        let stat = "cache 0\nhierarchical_memory_limit 33554432\nrss 0\n";
        let read = reader(&[("/sys/fs/cgroup/memory/pi/askgate/memory.stat", stat)]);
        assert_eq!(limit_from(membership, read), Some(32 << 20));
    }

    #[test]
    fn v1_in_a_container_reads_the_mounts_root_and_unlimited_is_none() {
        let membership = "4:memory:/docker/abc\n";
        let capped = reader(&[(
            "/sys/fs/cgroup/memory/memory.stat",
            "hierarchical_memory_limit 67108864\n",
        )]);
        assert_eq!(limit_from(membership, capped), Some(64 << 20));
        let unlimited = reader(&[(
            "/sys/fs/cgroup/memory/docker/abc/memory.stat",
            "hierarchical_memory_limit 9223372036854771712\n",
        )]);
        assert_eq!(limit_from(membership, unlimited), None);
    }

    #[test]
    fn v2_takes_the_smallest_max_up_to_the_root() {
        let membership = "0::/user.slice/askgate.service\n";
        let read = reader(&[
            (
                "/sys/fs/cgroup/user.slice/askgate.service/memory.max",
                "max\n",
            ),
            ("/sys/fs/cgroup/user.slice/memory.max", "33554432\n"),
        ]);
        assert_eq!(limit_from(membership, read), Some(32 << 20));
        let none = reader(&[(
            "/sys/fs/cgroup/user.slice/askgate.service/memory.max",
            "max\n",
        )]);
        assert_eq!(limit_from(membership, none), None);
        assert_eq!(limit_from("", reader(&[])), None, "no cgroup at all");
    }

    #[test]
    fn places_fit_the_cap_and_are_all_of_them_without_one() {
        assert_eq!(places(None, (1, 1)), UNCAPPED_PLACES);
        // 32 MiB: 20 MiB for threads, 512 of them for streams, and a
        // quarter as many again for parked requests (all of both charge
        // about 27 MiB: a thread is nearer 34 KiB than 40).
        assert_eq!(places(Some(32 << 20), (1, 1)), 512);
        assert_eq!(places(Some(32 << 20), (1, 4)), 128);
        assert_eq!(places(Some(8 << 20), (1, 1)), 8, "a few places even so");
        assert_eq!(places(Some(64 << 20), (1, 1)), UNCAPPED_PLACES);
    }
}
