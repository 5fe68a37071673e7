//! TLS to Redis (`rediss://`): a rustls client over the `TcpStream`, the
//! server's certificate checked against `--store-ca-file` alone when one
//! is given, else the system's bundle, else the Mozilla roots built in
//! (webpki-roots); the name checked (and sent as SNI) is the URL's host.
//!
//! rustls with ring and webpki-roots are already in the tree through ureq,
//! so TLS adds no crate.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A TLS client on `socket` for `host`; the handshake happens on the first
/// read or write, within the socket's timeouts.
pub fn wrap(socket: TcpStream, host: &str, ca_file: Option<&Path>) -> io::Result<TlsStream> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| invalid(format!("{host:?} is not a name TLS can check")))?;
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|error| invalid(error.to_string()))?
            .with_root_certificates(roots(ca_file)?)
            .with_no_client_auth();
    let connection =
        ClientConnection::new(Arc::new(config), name).map_err(|e| invalid(e.to_string()))?;
    Ok(StreamOwned::new(connection, socket))
}

/// The CA file's certificates alone, or the system's, or the built-in ones.
fn roots(ca_file: Option<&Path>) -> io::Result<RootCertStore> {
    if let Some(path) = ca_file {
        return store(&certificates(path)?);
    }
    let system = crate::system_ca::bundle_paths()
        .filter_map(|path| certificates(Path::new(&path)).ok())
        .find_map(|certificates| store(&certificates).ok());
    Ok(system.unwrap_or_else(|| RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }))
}

fn store(certificates: &[CertificateDer<'static>]) -> io::Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certificates.iter().cloned());
    match added {
        0 => Err(invalid("no usable CA certificate".into())),
        _ => Ok(store),
    }
}

/// Every certificate of a PEM file; one at least.
fn certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let shown = path.display();
    let pem = std::fs::read(path)
        .map_err(|error| io::Error::new(error.kind(), format!("CA file {shown}: {error}")))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(format!("CA file {shown}: {error}")))?;
    match certificates.is_empty() {
        true => Err(invalid(format!("CA file {shown}: no certificate in it"))),
        false => Ok(certificates),
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
