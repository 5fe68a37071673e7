//! The server's receipts key: an Ed25519 key (PKCS#8, hex) in the data
//! directory's `receipts.key` (mode 0600, made on first start), shared
//! through Redis with `--store redis://` (the first instance's), or made
//! for the run with `--data-dir none`; kept as `server_key.rs` keeps keys.
//!
//! Invariants: a key once written is never replaced by the server (a
//! receipt handed out keeps verifying after a restart); a file that is not
//! a key refuses the start rather than being overwritten.

use crate::core::receipt::{self, Signer};
use crate::hub::Hub;
use crate::server_key::{self, Kept};
use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;
use std::io;
use std::path::Path;

pub const KEY_FILE: &str = "receipts.key";

/// Where the receipts key is kept (`server_key.rs`).
const KEPT: Kept = Kept {
    file: KEY_FILE,
    shared_as: "receipts_key",
    what: "receipts key",
    make: new_key_hex,
    valid: |text| parse(text).is_some(),
};

/// The key for a server: Redis's when the hub shares state through it,
/// else the data directory's, else one for this run.
pub fn open(hub: &Hub, data_dir: Option<&Path>) -> io::Result<Signer> {
    signer(&server_key::open(hub, data_dir, &KEPT)?)
}

/// The key in `dir`, made there on first start.
pub fn in_dir(dir: &Path) -> io::Result<Signer> {
    signer(&server_key::in_dir(dir, &KEPT)?)
}

/// The key in `dir`, only if it is there (`askgate receipts key`).
pub fn read(dir: &Path) -> io::Result<Signer> {
    signer(&server_key::read(dir, &KEPT)?)
}

/// A key for this run only.
pub fn ephemeral() -> io::Result<Signer> {
    signer(&new_key_hex()?)
}

fn new_key_hex() -> io::Result<String> {
    let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map_err(|_| io::Error::other("the OS gave no random bytes"))?;
    Ok(receipt::hex(document.as_ref()))
}

fn parse(text: &str) -> Option<Signer> {
    Signer::from_pkcs8(&receipt::from_hex(text.trim())?)
}

/// A text `server_key` checked.
fn signer(text: &str) -> io::Result<Signer> {
    parse(text).ok_or_else(|| io::Error::other("the receipts key does not parse"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
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
