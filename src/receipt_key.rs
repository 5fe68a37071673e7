//! The server's receipts key: an Ed25519 key (PKCS#8, hex) in the data
//! directory's `receipts.key` (mode 0600, made on first start), shared
//! through Redis with `--store redis://` (the first instance's), or made
//! for the run with `--data-dir none`.
//!
//! Invariants: a key once written is never replaced by the server (a
//! receipt handed out keeps verifying after a restart); a file that is not
//! a key refuses the start rather than being overwritten.

use crate::core::receipt::{self, Signer};
use crate::hub::Hub;
use crate::private_file;
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;
use std::fs;
use std::io;
use std::path::Path;

pub const KEY_FILE: &str = "receipts.key";

/// The key for a server: Redis's when the hub shares state through it,
/// else the data directory's, else one for this run.
pub fn open(hub: &Hub, data_dir: Option<&Path>) -> io::Result<Signer> {
    if let Some(kept) = hub.shared_receipts_key(&new_key_hex()?) {
        let kept = kept.map_err(|error| io::Error::other(format!("receipts key: {error}")))?;
        return parse(&kept)
            .ok_or_else(|| io::Error::other("the receipts key in redis is not a key"));
    }
    match data_dir {
        Some(dir) => in_dir(dir),
        None => ephemeral(),
    }
}

/// The key in `dir`, made there on first start.
pub fn in_dir(dir: &Path) -> io::Result<Signer> {
    let path = dir.join(KEY_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => parse(&text)
            .ok_or_else(|| io::Error::other(format!("{} is not a receipts key", path.display()))),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let text = new_key_hex()?;
            private_file::write(dir, KEY_FILE, &format!("{text}\n"))?;
            parse(&text).ok_or_else(|| io::Error::other("a new key did not parse"))
        }
        Err(error) => Err(error),
    }
}

/// The key in `dir`, only if it is there (`askgate receipts key`).
pub fn read(dir: &Path) -> io::Result<Signer> {
    let path = dir.join(KEY_FILE);
    let text = fs::read_to_string(&path)
        .map_err(|error| io::Error::new(error.kind(), format!("{}: {error}", path.display())))?;
    parse(&text)
        .ok_or_else(|| io::Error::other(format!("{} is not a receipts key", path.display())))
}

/// A key for this run only.
pub fn ephemeral() -> io::Result<Signer> {
    parse(&new_key_hex()?).ok_or_else(|| io::Error::other("a new key did not parse"))
}

fn new_key_hex() -> io::Result<String> {
    let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| io::Error::other("the OS gave no random bytes"))?;
    Ok(receipt::hex(document.as_ref()))
}

fn parse(text: &str) -> Option<Signer> {
    Signer::from_pkcs8(&receipt::from_hex(text.trim())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_is_made_once_and_kept_private() {
        let dir = std::env::temp_dir().join(format!("askgate-rk-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let first = in_dir(&dir).unwrap();
        let again = in_dir(&dir).unwrap();
        assert_eq!(first.public_key(), again.public_key());
        assert_eq!(read(&dir).unwrap().public_key(), first.public_key());
        let mode = fs::metadata(dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        fs::write(dir.join(KEY_FILE), "nonsense").unwrap();
        assert!(in_dir(&dir).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
