//! Origins and the public URL as plain values: `scheme://host[:port]`
//! parsed and compared the way browsers serialize them.
//!
//! An origin is normalized once (scheme and host lowercase, a default port
//! dropped), so two spellings of one origin compare equal and `http://x`
//! never equals `https://x`. `PublicUrl` is askgate's external address as
//! configured (`--public-url`): its origin, its host name and its base path,
//! which always starts and ends with `/`. Nothing here reads a header.

use std::fmt;

/// Where the page is opened, as the operator configured it.
#[derive(Clone, Debug, PartialEq)]
pub struct PublicUrl {
    /// `https://home.example` or `http://127.0.0.1:8443`: normalized.
    origin: String,
    /// The host name alone, lowercase, IPv6 in brackets: `home.example`.
    host_name: String,
    /// `/askgate/`, or `/` at the root.
    base_path: String,
}

impl PublicUrl {
    /// Parses `http(s)://host[:port][/path]`: no user, query or fragment.
    pub fn parse(text: &str) -> Result<PublicUrl, String> {
        let text = text.trim();
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("it must start with http:// or https://")?;
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, "/"),
        };
        let origin = normalize_origin(&format!("{scheme}://{authority}"))
            .ok_or("it must be http:// or https:// and a host, with an optional port")?;
        if path.contains(['?', '#', '\\']) || path.split('/').any(|segment| segment == "..") {
            return Err("its path may have no query, fragment, backslash or ..".into());
        }
        if !path.chars().all(|c| c.is_ascii_graphic()) {
            return Err("its path must be printable ASCII (percent-encode the rest)".into());
        }
        let host_name = host_name(origin.split_once("://").map_or("", |(_, a)| a)).to_string();
        let base_path = format!("{}/", path.trim_end_matches('/'));
        Ok(PublicUrl {
            origin,
            host_name,
            base_path,
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn host_name(&self) -> &str {
        &self.host_name
    }

    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    pub fn is_https(&self) -> bool {
        self.origin.starts_with("https://")
    }
}

/// The URL as it would be written on the command line, without a trailing
/// slash: `https://home.example/askgate`.
impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&page_address(&self.origin, &self.base_path))
    }
}

/// `origin` and `path` as an address for `--public-url`: no trailing slash.
pub fn page_address(origin: &str, path: &str) -> String {
    format!("{origin}{}", path.trim_end_matches('/'))
}

/// `scheme://host[:port]` with scheme and host lowercase and a default port
/// (80 for http, 443 for https) dropped; `None` unless the scheme is http or
/// https and the host is a name, an IPv4 address or a bracketed IPv6 one.
/// A trailing `/` is allowed, as some clients send one.
pub fn normalize_origin(text: &str) -> Option<String> {
    let text = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, authority) = text.split_once("://")?;
    let default_port = match scheme {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    let (host, port) = split_authority(authority)?;
    let valid_host = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    };
    if !valid_host {
        return None;
    }
    match port {
        None => Some(format!("{scheme}://{host}")),
        Some(port) if port == default_port => Some(format!("{scheme}://{host}")),
        Some(port) => {
            let port: u16 = port.parse().ok().filter(|&port| port > 0)?;
            Some(format!("{scheme}://{host}:{port}"))
        }
    }
}

/// The host name of a `Host` header or authority, without its port; IPv6
/// keeps its brackets. Lowercase is the caller's business.
pub fn host_name(authority: &str) -> &str {
    split_authority(authority).map_or(authority, |(host, _)| host)
}

/// `host[:port]` into its parts; `None` for a malformed bracket.
fn split_authority(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, rest) = authority.split_at(close + 1);
        return match rest {
            "" => Some((host, None)),
            _ => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    Some(match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_normalize_as_browsers_send_them() {
        let cases = [
            ("https://Home.Example", Some("https://home.example")),
            ("https://home.example:443", Some("https://home.example")),
            ("http://home.example:80/", Some("http://home.example")),
            ("http://home.example:443", Some("http://home.example:443")),
            ("https://127.0.0.1:8443", Some("https://127.0.0.1:8443")),
            ("http://[::1]:8787", Some("http://[::1]:8787")),
            ("http://[::1]", Some("http://[::1]")),
            ("null", None),
            ("home.example", None),
            ("ftp://home.example", None),
            ("https://", None),
            ("https://home.example:0", None),
            ("https://home.example:99999", None),
            ("https://home.example:x", None),
            ("https://user@home.example", None),
            ("https://home.example/path", None),
            ("https://[::1", None),
            ("https://[zz]:1", None),
        ];
        for (text, expected) in cases {
            assert_eq!(normalize_origin(text).as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn public_urls_give_origin_host_and_base_path() {
        let cases = [
            (
                "https://home.example/askgate",
                ("https://home.example", "home.example", "/askgate/"),
            ),
            (
                "https://HOME.example:443/askgate/",
                ("https://home.example", "home.example", "/askgate/"),
            ),
            (
                "http://127.0.0.1:8443",
                ("http://127.0.0.1:8443", "127.0.0.1", "/"),
            ),
            (
                "https://[::1]:9/a/b//",
                ("https://[::1]:9", "[::1]", "/a/b/"),
            ),
        ];
        for (text, (origin, host, base)) in cases {
            let url = PublicUrl::parse(text).unwrap();
            assert_eq!(
                (url.origin(), url.host_name(), url.base_path()),
                (origin, host, base),
                "{text}"
            );
        }
        assert_eq!(
            PublicUrl::parse("https://home.example/askgate/")
                .unwrap()
                .to_string(),
            "https://home.example/askgate"
        );
        for bad in [
            "home.example/askgate",
            "ftp://home.example",
            "https://home.example/a?b",
            "https://home.example/a#b",
            "https://home.example/a/../b",
            "https://home.example/a b",
            "https://user:pw@home.example/",
            "https://",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
