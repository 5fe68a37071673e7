//! Where the system keeps its CA bundle: the files an outgoing TLS
//! connection (the CLI's and the notifiers' https, `cli/api.rs`; Redis's
//! `rediss://`, `store/tls.rs`) tries for its roots when no CA file is
//! given, `SSL_CERT_FILE` first. Written once, here, so both look alike.

/// The bundle's usual places: Debian, Fedora, openSUSE, RHEL, Alpine and
/// macOS.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The files to try, in order: `SSL_CERT_FILE`, then the usual places;
/// the first that holds a certificate wins.
pub fn bundle_paths() -> impl Iterator<Item = String> {
    let variable = std::env::var("SSL_CERT_FILE").into_iter();
    variable.chain(SYSTEM_BUNDLES.iter().map(|path| path.to_string()))
}
