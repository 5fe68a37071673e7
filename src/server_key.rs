//! A server's secret key, kept as hex text: shared through Redis with
//! `--store redis://` (the first instance's, set if absent, so every
//! instance signs and checks with the same one), else in a file of the
//! data directory (mode 0600, made on first start), else made for the run.
//! The receipts key (`receipt_key.rs`) and the notifications' key
//! (`notify/capability.rs`) are both kept this way.
//!
//! Invariants: a key once kept is never replaced by the server (what was
//! signed with it keeps verifying after a restart, on every instance); a
//! file or a Redis value that is not a key refuses the start rather than
//! being overwritten; files are read and written as `private_file` does,
//! never through a symlink.

use crate::hub::Hub;
use crate::private_file;
use std::io;
use std::path::Path;

/// Where one key is kept and what it is.
pub struct Kept {
    /// Its file in the data directory.
    pub file: &'static str,
    /// Its name in Redis (`store/redis.rs` lists them).
    pub shared_as: &'static str,
    /// What errors call it.
    pub what: &'static str,
    /// A new key, hex, from the OS's random source.
    pub make: fn() -> io::Result<String>,
    /// Whether a text read back is such a key.
    pub valid: fn(&str) -> bool,
}

/// The key for a server: Redis's when the hub shares state through it,
/// else the data directory's, else one for this run.
pub fn open(hub: &Hub, data_dir: Option<&Path>, kept: &Kept) -> io::Result<String> {
    if let Some(shared) = hub.shared_key(kept.shared_as, &(kept.make)()?) {
        let shared = shared.map_err(|error| io::Error::other(format!("{}: {error}", kept.what)))?;
        return checked(kept, shared.trim(), || {
            format!("the {} in redis", kept.what)
        });
    }
    match data_dir {
        Some(dir) => in_dir(dir, kept),
        None => (kept.make)(),
    }
}

/// The key in `dir`, made there on first start.
pub fn in_dir(dir: &Path, kept: &Kept) -> io::Result<String> {
    let path = dir.join(kept.file);
    match private_file::read(&path)? {
        Some(text) => checked(kept, text.trim(), || path.display().to_string()),
        None => {
            let text = (kept.make)()?;
            private_file::write(dir, kept.file, &format!("{text}\n"))?;
            Ok(text)
        }
    }
}

/// The key in `dir`, only if it is there (the commands that read it).
pub fn read(dir: &Path, kept: &Kept) -> io::Result<String> {
    let path = dir.join(kept.file);
    let missing = || {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{}: no such file", path.display()),
        )
    };
    let text = private_file::read(&path)
        .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", path.display())))?
        .ok_or_else(missing)?;
    checked(kept, text.trim(), || path.display().to_string())
}

fn checked(kept: &Kept, text: &str, place: impl Fn() -> String) -> io::Result<String> {
    match (kept.valid)(text) {
        true => Ok(text.to_string()),
        false => Err(io::Error::other(format!(
            "{} is not a {}",
            place(),
            kept.what
        ))),
    }
}
