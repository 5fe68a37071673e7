//! The shutdown signals, SIGTERM and SIGINT, taken synchronously: no handler
//! runs in an arbitrary thread; the main thread waits for them with
//! `sigwait`.
//!
//! Invariant: they are blocked in the main thread before any thread starts,
//! so every thread inherits the mask and a signal stays pending until
//! `wait` takes it. Once one has been taken, a second one ends the process
//! at once (the default action), shutdown or not.

use std::io;
use std::mem::MaybeUninit;

/// SIGTERM and SIGINT, blocked: the proof that `wait` will see them.
pub struct ShutdownSignals {
    set: libc::sigset_t,
}

impl ShutdownSignals {
    /// Blocks SIGTERM and SIGINT in the calling thread and so in every thread
    /// it starts afterwards. Call it before starting any thread.
    pub fn block() -> io::Result<ShutdownSignals> {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set; sigaddset and
        // pthread_sigmask only read and write it.
        let set = unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            libc::sigaddset(set.as_mut_ptr(), libc::SIGTERM);
            libc::sigaddset(set.as_mut_ptr(), libc::SIGINT);
            set.assume_init()
        };
        let signals = ShutdownSignals { set };
        signals.mask(libc::SIG_BLOCK)?;
        Ok(signals)
    }

    /// Waits until SIGTERM or SIGINT arrives and returns its name.
    pub fn wait(&self) -> &'static str {
        let mut signal = 0;
        loop {
            // SAFETY: the set was initialised in `block`; `signal` is ours.
            if unsafe { libc::sigwait(&self.set, &mut signal) } == 0 {
                return match signal {
                    libc::SIGINT => "SIGINT",
                    _ => "SIGTERM",
                };
            }
        }
    }

    /// From now on a second signal ends the process at once: the default
    /// action is restored and the signals unblocked in this thread, which the
    /// kernel then picks to deliver them to.
    pub fn release(&self) {
        for signal in [libc::SIGTERM, libc::SIGINT] {
            // SAFETY: restoring the default action installs no handler.
            unsafe { libc::signal(signal, libc::SIG_DFL) };
        }
        if let Err(error) = self.mask(libc::SIG_UNBLOCK) {
            log::warn!("cannot unblock the shutdown signals: {error}");
        }
    }

    fn mask(&self, how: libc::c_int) -> io::Result<()> {
        // SAFETY: the set was initialised; the old mask is not asked for.
        match unsafe { libc::pthread_sigmask(how, &self.set, std::ptr::null_mut()) } {
            0 => Ok(()),
            error => Err(io::Error::from_raw_os_error(error)),
        }
    }
}
