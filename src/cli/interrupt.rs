//! A prompt that ends with its asker: while `askgate clarify`, `approve`
//! or `hook` waits, SIGTERM, SIGINT and SIGHUP cancel its prompt on the
//! server (the page shows it cancelled) before the process exits, instead
//! of leaving it pending until it expires.
//!
//! The handler only writes the signal's number to a pipe (async-signal
//! safe); a named thread reads it, cancels the prompt if it is known, lets
//! the caller say its last word and exits. A signal that comes before the
//! submit has answered is acted on as soon as it has. Dropping the guard
//! restores the default actions and joins the thread.

use crate::cli::api::{Client, Submitted};
use crate::core::kind::Kind;
use serde_json::Value;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

const SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// The pipe's write end, for the handler.
static PIPE: AtomicI32 = AtomicI32::new(-1);

/// What the process says and exits with when a signal ends its wait.
pub type LastWord = Box<dyn Fn(i32) -> u8 + Send + Sync>;

/// The prompt being waited on, and a signal that came before it was known.
#[derive(Default)]
struct Waiting {
    prompt: Option<(Kind, String, String)>,
    signal: Option<i32>,
}

fn lock(waiting: &Mutex<Waiting>) -> MutexGuard<'_, Waiting> {
    waiting
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Submits `body` and waits for its outcome (the wait's final body) and
/// the prompt's id, with its prompt cancelled if a signal ends the process
/// first.
pub fn ask(
    client: Arc<Client>,
    kind: Kind,
    session_id: &str,
    body: &Value,
    retry: Duration,
    last_word: LastWord,
) -> Result<(Value, String), String> {
    let waiting = Arc::new(Mutex::new(Waiting::default()));
    let last_word = Arc::new(last_word);
    let _guard = Guard::install(client.clone(), waiting.clone(), last_word.clone());
    let submitted = client.submit(kind, body)?;
    let id = submitted.id(kind);
    if let Submitted::Settled(outcome) = submitted {
        return Ok((outcome, id));
    }
    let early = {
        let mut state = lock(&waiting);
        state.prompt = Some((kind, session_id.to_string(), id.clone()));
        state.signal
    };
    if let Some(signal) = early {
        end(&client, &waiting, &last_word, signal);
    }
    let outcome = client.wait(kind, session_id, &id, retry, &|| false)?;
    lock(&waiting).prompt = None;
    let outcome = outcome.ok_or_else(|| "the wait was abandoned".to_string())?;
    Ok((outcome, id))
}

/// Cancels the prompt, if one is known, and exits with the last word.
fn end(client: &Client, waiting: &Mutex<Waiting>, last_word: &LastWord, signal: i32) {
    let prompt = lock(waiting).prompt.take();
    if let Some((kind, session_id, id)) = prompt
        && let Err(error) = client.cancel(kind, &session_id, &id)
    {
        eprintln!("askgate: cannot cancel {} {id}: {error}", kind.as_str());
    }
    std::process::exit(i32::from(last_word(signal)));
}

/// The handlers and the thread that acts on them, while it lives.
struct Guard {
    write: libc::c_int,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Guard {
    fn install(
        client: Arc<Client>,
        waiting: Arc<Mutex<Waiting>>,
        last_word: Arc<LastWord>,
    ) -> Option<Guard> {
        let mut fds = [0; 2];
        // SAFETY: `pipe2` writes two descriptors into the array it is given.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            eprintln!(
                "askgate: cannot watch for signals: {}",
                std::io::Error::last_os_error()
            );
            return None;
        }
        let [read, write] = fds;
        let thread = std::thread::Builder::new()
            .name("askgate-signals".into())
            .spawn(move || watch(read, &client, &waiting, &last_word))
            .ok()?;
        PIPE.store(write, Ordering::SeqCst);
        set_handlers(on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t);
        Some(Guard {
            write,
            thread: Some(thread),
        })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        set_handlers(libc::SIG_DFL);
        PIPE.store(-1, Ordering::SeqCst);
        // SAFETY: the descriptor is ours; closing it ends the thread's read.
        unsafe { libc::close(self.write) };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: each signal read from the pipe ends the wait; the end of
/// the pipe ends the thread.
fn watch(read: libc::c_int, client: &Client, waiting: &Mutex<Waiting>, last_word: &LastWord) {
    let mut byte = 0u8;
    loop {
        // SAFETY: reads at most one byte into `byte`.
        let got = unsafe { libc::read(read, (&mut byte as *mut u8).cast(), 1) };
        if got == 1 {
            let signal = i32::from(byte);
            let known = {
                let mut state = lock(waiting);
                state.signal = Some(signal);
                state.prompt.is_some()
            };
            if known {
                end(client, waiting, last_word, signal);
            }
            continue;
        }
        if got < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break;
    }
    // SAFETY: the read end is this thread's alone.
    unsafe { libc::close(read) };
}

fn set_handlers(handler: libc::sighandler_t) {
    for signal in SIGNALS {
        // SAFETY: a zeroed sigaction with an empty mask and SA_RESTART, so
        // the waiting thread's calls go on; the handler is async-signal safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

extern "C" fn on_signal(signal: libc::c_int) {
    let fd = PIPE.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = signal as u8;
        // SAFETY: `write` is async-signal-safe; one byte from the stack.
        unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
    }
}
