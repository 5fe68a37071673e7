//! Files and directories only their owner may use: the data directory, and
//! in it the tokens, the notification key, the journal and the audit log.
//!
//! Invariants: a data directory that its group or everyone may write to is
//! refused (anyone who can write there can plant a file or a symlink that
//! askgate would then read or write); files are created new (`O_EXCL`),
//! mode 0600, and never opened through a symlink (`O_NOFOLLOW`), so a
//! symlink planted in the directory is never followed; a file is written
//! whole through a temporary file, synced, then renamed into place.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` and its missing parents (mode 0700), and refuses one its
/// group or everyone may write to, naming it and the fix.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode & 0o022 == 0 {
        return Ok(());
    }
    let shown = dir.display();
    Err(io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!(
            "data directory {shown} can be written by {} (mode {mode:04o}), who could plant files \
             or symlinks in it; make it yours alone with: chmod 700 {shown}",
            match mode & 0o002 {
                0 => "its group",
                _ => "everyone",
            }
        ),
    ))
}

/// Options that open an existing file, never through a symlink.
pub fn no_follow() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    options
}

/// Creates `path` anew (mode 0600, read and write): fails if anything is
/// there, a symlink included.
pub fn create_new(path: &Path) -> io::Result<File> {
    no_follow()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Removes `path` (a symlink itself, never what it points to), if it is there.
pub fn remove_if_exists(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(error),
    }
}

/// Writes `text` to `dir/name` (creating `dir`), mode 0600, whole or not at
/// all: through a new temporary file, synced, then renamed over the old one.
pub fn write(dir: &Path, name: &str, text: &str) -> io::Result<()> {
    private_dir(dir)?;
    let temporary = dir.join(format!("{name}.tmp"));
    remove_if_exists(&temporary)?;
    let mut file = create_new(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    fs::rename(&temporary, dir.join(name))
}

/// A file that carries a lock: opened to read and write, created mode
/// 0600 and never through a symlink, its contents kept.
pub fn lock_file(path: &Path) -> io::Result<File> {
    no_follow()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
}

/// An exclusive lock on `dir/name` (created mode 0600 with `dir`, never
/// through a symlink), held until the returned file is dropped; waits for
/// another holder to let go. Around a read-modify-write of a file that is
/// replaced by renaming (so the file itself cannot carry the lock), it
/// makes writers across processes take turns. An flock: it dies with the
/// process that held it.
pub fn lock(dir: &Path, name: &str) -> io::Result<File> {
    private_dir(dir)?;
    let file = lock_file(&dir.join(name))?;
    loop {
        // SAFETY: flock only reads the descriptor, which `file` keeps open.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(file);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// The text of `path`, never read through a symlink; `None` when missing.
pub fn read(path: &Path) -> io::Result<Option<String>> {
    let mut file = match no_follow().read(true).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("askgate-private-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_directory_others_may_write_to_is_refused_naming_the_fix() {
        let dir = temp_dir("shared");
        private_dir(&dir).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "made for its owner alone");
        for (mode, who) in [
            (0o770, "its group"),
            (0o757, "everyone"),
            (0o1777, "everyone"),
        ] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
            let message = private_dir(&dir).unwrap_err().to_string();
            let fix = format!("chmod 700 {}", dir.display());
            assert!(message.contains(who) && message.contains(&fix), "{message}");
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
        private_dir(&dir).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_planted_symlink_is_never_followed() {
        let dir = temp_dir("symlink");
        private_dir(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, "keep me").unwrap();
        symlink(&victim, dir.join("tokens.tmp")).unwrap();
        symlink(&victim, dir.join("tokens")).unwrap();
        assert!(read(&dir.join("tokens")).is_err(), "not read through it");
        write(&dir, "tokens", "secret").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me");
        assert_eq!(
            read(&dir.join("tokens")).unwrap().as_deref(),
            Some("secret")
        );
        symlink(&victim, dir.join("new")).unwrap();
        assert!(create_new(&dir.join("new")).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
