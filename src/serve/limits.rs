//! What the process asks of the system: as many open files as it may have,
//! a glibc allocator that gives memory back, the code pages that activity
//! read in given back once quiet, and whether a waiting client is still
//! there.
//!
//! A stream holds up to two descriptors, and the usual soft limit of 1,024
//! would stop `--max-streams` short of its default; the hard limit is the
//! real ceiling. glibc keeps what a thread freed in that thread's arena (up
//! to eight per core), so a burst of large requests stays resident long
//! after its clients left; fewer arenas and a periodic trim bound that.

use std::io;

/// Arenas glibc may create; each thread shares one of these.
const MALLOC_ARENAS: i32 = 2;

/// Raises the soft limit on open files to the hard one; returns both, as
/// they are after the change.
pub fn raise_open_files() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(io::Error::last_os_error());
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    // rlim_t is not u64 on every target (32-bit ARM boards among them).
    #[allow(clippy::unnecessary_cast)]
    Ok((limit.rlim_cur as u64, limit.rlim_max as u64))
}

/// The connections to read at once when `--max-connections` is not given:
/// each holds two descriptors while it is read; 64 are kept for the rest.
pub fn connections_for(open_files: u64) -> usize {
    let spare = open_files.saturating_sub(64) / 2;
    usize::try_from(spare).unwrap_or(usize::MAX).clamp(16, 4096)
}

/// Whether the client of a connection has closed its side (or reset it),
/// without reading from it: its TCP state is no longer established.
///
/// Not `poll(POLLRDHUP)`: tiny_http shuts down the reading side of a
/// connection it stops reading (a parked request past the receive
/// timeout), and that polls exactly like a client that left, so every
/// long-poll and wait ended at the header timeout.
pub fn client_has_left(fd: std::os::unix::io::RawFd) -> bool {
    const TCP_ESTABLISHED: u8 = 1;
    // SAFETY: tcp_info is plain integers, for which zero is a value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut length = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `length` bytes into `info`; the
    // caller holds the unanswered request, which keeps the descriptor open.
    let read = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut length,
        )
    };
    read == 0 && length > 0 && info.tcpi_state != TCP_ESTABLISHED
}

/// Fewer malloc arenas (unless `MALLOC_ARENA_MAX` says otherwise).
pub fn bound_allocator() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes the allocator's settings.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

/// What an idle server never changes: connections accepted and the
/// state's version. (Threads start with one or the other.)
pub type Activity = [u64; 2];

/// When to trim the allocator: in the periods after anything happened
/// (`Activity` moved), for as long as what it left may still be ending
/// (a connection's thread outlives it by up to the receive timeout and
/// 5 s); never on a server that has been idle that long. Trimming runs
/// code (a thread started, `malloc_trim`) that an idle server need not
/// keep resident.
pub struct TrimPolicy {
    seen: Activity,
    quiet: u32,
    /// Quiet periods after activity that still trim.
    after: u32,
}

impl TrimPolicy {
    /// `start` is the activity when serving began; `every` the period,
    /// `lingers` how long after the last activity memory may still be
    /// freed.
    pub fn new(start: Activity, every: std::time::Duration, lingers: std::time::Duration) -> Self {
        let after = lingers.as_millis().div_ceil(every.as_millis().max(1)) + 1;
        let after = u32::try_from(after).unwrap_or(u32::MAX);
        TrimPolicy {
            seen: start,
            quiet: after,
            after,
        }
    }

    /// What this period trims, given the activity now.
    pub fn due(&mut self, now: Activity) -> Trim {
        match now == self.seen {
            true => self.quiet = self.quiet.saturating_add(1),
            false => (self.seen, self.quiet) = (now, 0),
        }
        match self.quiet {
            0 => Trim::Heap,
            quiet if quiet <= self.after => Trim::HeapAndCode,
            _ => Trim::Nothing,
        }
    }
}

/// What a period gives back.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Trim {
    Nothing,
    /// Something happened in the period: free memory only (code being run
    /// would only be read in again).
    Heap,
    /// A quiet period after activity: the code pages too.
    HeapAndCode,
}

/// Hands freed memory back to the system: the heaps' free pages, and the
/// stacks glibc keeps of threads that ended.
pub fn trim_allocator() {
    // SAFETY: malloc_trim only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
    release_cached_stacks();
}

/// Gives back the pages of our program's code and read-only data that work
/// since start read in: after a burst of streams, the hostile suite or a
/// compaction about a megabyte of them stayed resident, code that idle work
/// never runs again (BENCHMARKS.md, "code pages"). They stay in the page
/// cache, shared and reclaimable; whatever runs next reads its pages back
/// from there, a minor fault per 64 KiB. Writable segments (relocated
/// pointers, data) are left alone: dropping them would lose what was
/// written.
pub fn release_code_pages() {
    unsafe extern "C" fn main_program(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        _data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader passes a valid entry, whose program headers
        // are `dlpi_phnum` long.
        let info = unsafe { &*info };
        let headers = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum.into()) };
        // SAFETY: sysconf only reads a setting.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        for header in headers {
            if header.p_type != libc::PT_LOAD || header.p_flags & libc::PF_W != 0 {
                continue;
            }
            let start = (info.dlpi_addr + header.p_vaddr) as usize;
            let end = start + header.p_memsz as usize;
            let first = start.div_ceil(page) * page;
            let last = end / page * page;
            if last > first {
                // SAFETY: a read-only segment of a file mapping: the
                // kernel reads its pages back from the file when touched.
                unsafe {
                    libc::madvise(
                        first as *mut libc::c_void,
                        last - first,
                        libc::MADV_DONTNEED,
                    );
                }
            }
        }
        // The main program is the first object; the libraries stay.
        1
    }
    // SAFETY: the callback only reads what the loader passes it.
    unsafe {
        libc::dl_iterate_phdr(Some(main_program), std::ptr::null_mut());
    }
}

/// glibc keeps the stacks of ended threads for new ones, up to 40 MiB of
/// them (its `stack_cache_size`), each with the pages it touched still
/// resident: after 600 parked requests end, their 64 KiB stacks keep
/// 24 KiB each, 14 MiB in all, for as long as no new threads need them.
/// A thread whose stack alone is larger than the cache makes glibc free
/// every cached stack, its own included, when it ends; it touches only a
/// few pages of it.
fn release_cached_stacks() {
    const LARGER_THAN_THE_CACHE: usize = 41 << 20;
    let flush = std::thread::Builder::new()
        .name("askgate-trim".into())
        .stack_size(LARGER_THAN_THE_CACHE)
        .spawn(|| {});
    if let Ok(thread) = flush {
        let _ = thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_follow_activity_for_as_long_as_it_may_leave_memory() {
        let every = std::time::Duration::from_secs(10);
        let lingers = std::time::Duration::from_secs(25);
        let mut policy = TrimPolicy::new([0, 0], every, lingers);
        let idle: Vec<Trim> = (0..5).map(|_| policy.due([0, 0])).collect();
        assert_eq!(idle, [Trim::Nothing; 5], "an idle server never trims");
        // A connection came: that period trims the heap, the four after
        // (25 s and one more period) the code too, then no more.
        let after: Vec<Trim> = (0..7).map(|_| policy.due([1, 0])).collect();
        let code = Trim::HeapAndCode;
        assert_eq!(
            after,
            [
                Trim::Heap,
                code,
                code,
                code,
                code,
                Trim::Nothing,
                Trim::Nothing
            ]
        );
        assert_eq!(policy.due([1, 1]), Trim::Heap, "a change");
        // Replaying a journal at start counts as activity.
        let mut restored = TrimPolicy::new([0, 0], every, lingers);
        assert_eq!(restored.due([0, 12]), Trim::Heap);
    }
}
