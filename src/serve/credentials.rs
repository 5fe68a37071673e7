//! Named credentials: several agents and several humans, each with a name
//! and a token of its own (docs/PROTOCOL.md §7), beside the two legacy
//! tokens, which keep the names `agent` and `human`.
//!
//! `DATA_DIR/credentials` holds one line per credential: name, role, the
//! SHA-256 of its token (hex) and when it was made (Unix seconds), written
//! whole by `askgate tokens add|revoke` (`private_file`); the token itself
//! is printed once and kept nowhere. A running server looks a token up by
//! its digest and reads the file again whenever it changed (a `stat` per
//! lookup, the read outside its cache's lock), so a revoke refuses the
//! next request; `add` and `revoke` take turns under `DATA_DIR/credentials.lock`.
//!
//! Invariants: names are `[a-z0-9._-]{1,32}` and unique, and never one of
//! `RESERVED`; digests are compared in constant time (`auth::same`); the
//! file is bounded (`MAX_CREDENTIALS` lines, `MAX_FILE_BYTES`), and one
//! that is damaged or too large names no one rather than half of it.

use crate::private_file;
use crate::serve::auth::{Role, random_hex, same};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// The file in a data directory that holds the named credentials.
pub const FILE: &str = "credentials";
/// The lock that `add` and `revoke` hold around their read-modify-write
/// (`private_file::lock`), so two at once both count.
const LOCK: &str = "credentials.lock";
/// Names kept for the legacy tokens and the tokenless local caller.
pub const RESERVED: [&str; 3] = ["agent", "human", "local"];
/// Credentials one data directory may hold.
pub const MAX_CREDENTIALS: usize = 256;
/// A larger file is refused whole.
const MAX_FILE_BYTES: u64 = 64 * 1024;
const MAX_NAME: usize = 32;

/// One named credential, as the file keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub name: String,
    pub role: Role,
    /// The hex SHA-256 of its token.
    pub digest: String,
    /// Unix seconds.
    pub created: u64,
}

/// Whether `name` may name a new credential; why not, when it may not.
pub fn check_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c);
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(allowed) {
        return Err(format!(
            "a name is 1 to {MAX_NAME} of a-z 0-9 . _ - (got {name:?})"
        ));
    }
    match RESERVED.contains(&name) {
        true => Err(format!(
            "{name:?} is reserved (the legacy tokens are \"agent\" and \"human\", a tokenless local caller is \"local\")"
        )),
        false => Ok(()),
    }
}

/// The hex SHA-256 of a token.
pub fn digest(token: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_line(line: &str) -> Option<Entry> {
    let mut fields = line.split_whitespace();
    let name = fields.next()?.to_string();
    let role = match fields.next()? {
        "agent" => Role::Agent,
        "human" => Role::Human,
        _ => return None,
    };
    let digest = fields.next().filter(|d| d.len() == 64)?.to_string();
    let created = fields.next()?.parse().ok()?;
    let valid = check_name(&name).is_ok() && fields.next().is_none();
    valid.then_some(Entry {
        name,
        role,
        digest,
        created,
    })
}

/// The entries of a file's text; `#` lines are comments.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let lines = text.lines().map(str::trim);
    let lines = lines.filter(|line| !line.is_empty() && !line.starts_with('#'));
    let entries: Vec<Entry> = lines
        .map(|line| parse_line(line).ok_or_else(|| format!("a damaged line: {line:?}")))
        .collect::<Result<_, _>>()?;
    match entries.len() > MAX_CREDENTIALS {
        true => Err(format!("more than {MAX_CREDENTIALS} credentials")),
        false => Ok(entries),
    }
}

fn render(entries: &[Entry]) -> String {
    let mut text =
        String::from("# name role sha256-of-token created (askgate tokens add|list|revoke)\n");
    for entry in entries {
        text.push_str(&format!(
            "{} {} {} {}\n",
            entry.name,
            entry.role.as_str(),
            entry.digest,
            entry.created
        ));
    }
    text
}

/// The credentials of a data directory; none when it has no file.
pub fn read(dir: &Path) -> io::Result<Vec<Entry>> {
    let path = dir.join(FILE);
    if fs::symlink_metadata(&path).is_ok_and(|meta| meta.len() > MAX_FILE_BYTES) {
        return Err(io::Error::other(format!("{} is too large", path.display())));
    }
    let text = private_file::read(&path)?.unwrap_or_default();
    parse(&text).map_err(|why| io::Error::other(format!("{}: {why}", path.display())))
}

/// Adds a credential named `name` and returns its new token, which is
/// kept nowhere.
pub fn add(dir: &Path, role: Role, name: &str) -> io::Result<String> {
    check_name(name).map_err(io::Error::other)?;
    let _turn = private_file::lock(dir, LOCK)?;
    let mut entries = read(dir)?;
    if entries.iter().any(|entry| entry.name == name) {
        return Err(io::Error::other(format!(
            "a credential named {name:?} exists already (revoke it first)"
        )));
    }
    if entries.len() >= MAX_CREDENTIALS {
        return Err(io::Error::other(format!(
            "{MAX_CREDENTIALS} credentials at most; revoke one first"
        )));
    }
    let token = random_hex(24)?;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    entries.push(Entry {
        name: name.to_string(),
        role,
        digest: digest(&token),
        created,
    });
    private_file::write(dir, FILE, &render(&entries))?;
    Ok(token)
}

/// Removes the credential named `name`; an error when there is none.
pub fn revoke(dir: &Path, name: &str) -> io::Result<Entry> {
    let _turn = private_file::lock(dir, LOCK)?;
    let mut entries = read(dir)?;
    let at = entries.iter().position(|entry| entry.name == name);
    let Some(at) = at else {
        return Err(io::Error::other(format!("no credential named {name:?}")));
    };
    let removed = entries.remove(at);
    private_file::write(dir, FILE, &render(&entries))?;
    Ok(removed)
}

/// What identifies one version of the file: a write renames a new file
/// over it, so its inode changes, and its time and length with it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stamp {
    inode: u64,
    modified_ns: i128,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = fs::symlink_metadata(path).ok()?;
    Some(Stamp {
        inode: meta.ino(),
        modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        len: meta.len(),
    })
}

/// The named credentials as a running server sees them: read again
/// whenever the file changed.
pub struct Live {
    dir: PathBuf,
    cache: Mutex<(Option<Stamp>, Arc<Vec<Entry>>)>,
}

impl Live {
    pub fn new(dir: &Path) -> Live {
        Live {
            dir: dir.to_path_buf(),
            cache: Mutex::new((None, Arc::default())),
        }
    }

    /// Which version of the file is there now (one `lstat`).
    pub fn stamp(&self) -> Option<Stamp> {
        stamp(&self.dir.join(FILE))
    }

    /// The entries now, read again when the file changed since last time.
    /// The file is read with no lock held, so a slow disk stalls the
    /// lookups that need the new version, never one the cache answers.
    fn entries(&self) -> Arc<Vec<Entry>> {
        let now = self.stamp();
        {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            if now.is_some() && cache.0 == now {
                return cache.1.clone();
            }
        }
        let entries = Arc::new(match now {
            None => Vec::new(),
            Some(_) => read(&self.dir).unwrap_or_else(|error| {
                log::error!("named credentials ignored: {error}");
                Vec::new()
            }),
        });
        // Read after the stat, so at least as new as the stamp says.
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = (now, entries.clone());
        entries
    }

    /// The role and name of the credential whose token this is.
    pub fn find(&self, token: &str) -> Option<(Role, Arc<str>)> {
        let presented = digest(token);
        let entries = self.entries();
        let mut found = None;
        // Every entry compared, whichever matches.
        for entry in entries.iter() {
            if same(&presented, &entry.digest) {
                found = Some((entry.role, Arc::from(entry.name.as_str())));
            }
        }
        found
    }

    /// Whether a credential of this role and name exists now.
    pub fn has(&self, role: Role, name: &str) -> bool {
        self.digest_of(role, name).is_some()
    }

    /// The token digest of the credential of this role and name now: a
    /// credential revoked and added again under its name has a new one.
    pub fn digest_of(&self, role: Role, name: &str) -> Option<String> {
        let entries = self.entries();
        let entry = entries
            .iter()
            .find(|entry| entry.role == role && entry.name == name);
        entry.map(|entry| entry.digest.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("askgate-creds-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn names_are_checked() {
        for good in ["build-bot", "a", "anna.k_2", &"x".repeat(32)] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Anna",
            "a b",
            "agent",
            "human",
            "local",
            &"x".repeat(33),
            "é",
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn added_tokens_are_found_and_revoked_ones_are_not_at_once() {
        let dir = temp_dir("live");
        let live = Live::new(&dir);
        assert_eq!(live.find("nope"), None, "no file names no one");
        let bot = add(&dir, Role::Agent, "build-bot").unwrap();
        let anna = add(&dir, Role::Human, "anna").unwrap();
        assert!(add(&dir, Role::Agent, "anna").is_err(), "names are unique");
        assert_eq!(live.find(&bot), Some((Role::Agent, Arc::from("build-bot"))));
        assert_eq!(live.find(&anna), Some((Role::Human, Arc::from("anna"))));
        assert!(live.has(Role::Human, "anna") && !live.has(Role::Agent, "anna"));
        let text = fs::read_to_string(dir.join(FILE)).unwrap();
        assert!(
            !text.contains(&bot) && text.contains(&digest(&bot)),
            "{text}"
        );
        revoke(&dir, "build-bot").unwrap();
        assert_eq!(live.find(&bot), None, "a revoke counts for the next lookup");
        assert!(revoke(&dir, "build-bot").is_err());
        fs::write(dir.join(FILE), "anna human zz 1\n").unwrap();
        assert_eq!(live.find(&anna), None, "a damaged file names no one");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A read of the file that does not end (a FIFO with a writer that
    /// writes nothing: a disk that stalls) holds up only itself: a lookup
    /// of the next version of the file is answered meanwhile.
    #[test]
    fn a_stalled_read_of_the_file_holds_up_no_other_lookup() {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = temp_dir("stalled");
        let live = Arc::new(Live::new(&dir));
        let bot = add(&dir, Role::Agent, "build-bot").unwrap();
        let (path, kept, fifo) = (dir.join(FILE), dir.join("kept"), dir.join("fifo"));
        fs::rename(&path, &kept).unwrap();
        let name = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        fs::hard_link(&fifo, &path).unwrap();
        let stalled = {
            let live = live.clone();
            std::thread::spawn(move || live.find("a token of no one"))
        };
        // Once the lookup has the FIFO open, a writer may open it too
        // (before, ENXIO); holding it open, writing nothing, stalls the read.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let writer = loop {
            let open = fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo);
            match open {
                Ok(writer) => break writer,
                Err(_) if std::time::Instant::now() < deadline => std::thread::yield_now(),
                Err(error) => panic!("the lookup never opened the FIFO: {error}"),
            }
        };
        fs::rename(&kept, &path).unwrap();
        let (found, answer) = crossbeam_channel::bounded(1);
        let meanwhile = {
            let live = live.clone();
            std::thread::spawn(move || found.send(live.find(&bot)))
        };
        let answered = answer.recv_timeout(std::time::Duration::from_secs(30));
        drop(writer);
        assert_eq!(stalled.join().unwrap(), None);
        meanwhile.join().unwrap().ok();
        assert_eq!(
            answered.ok(),
            Some(Some((Role::Agent, Arc::from("build-bot")))),
            "a lookup waited for a stalled read of another version"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
