//! What the process asks of the system: as many open files as it may have,
//! a glibc allocator that gives memory back, and whether a waiting client
//! is still there.
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

/// Hands freed memory back to the system: the heaps' free pages, and the
/// stacks glibc keeps of threads that ended.
pub fn trim_allocator() {
    // SAFETY: malloc_trim only releases free memory.
    unsafe {
        libc::malloc_trim(0);
    }
    release_cached_stacks();
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
