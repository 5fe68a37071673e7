//! The wider rules a human may grant on an action that is not a command
//! (docs/PROTOCOL.md §3.2): URLs under a prefix and files under a
//! directory, each read lexically and strictly.
//!
//! Nothing here resolves a name: a URL is compared by its scheme, host and
//! port (lowercase, the default port dropped) and a path on segment
//! boundaries; a file by its absolute path, or its path under the prompt's
//! cwd. Anything that could make a name mean more than it reads (a user
//! in the URL, `.` or `..` segments, `//`, percent-encoded `/`, `\` or
//! dots, a path that starts with `~`, a NUL) is refused: such a URL or file
//! is covered by no wider rule, so the human is asked. Symlinks are not
//! resolved: a directory rule is a name prefix.

/// A URL as a rule reads it: `scheme://host[:port]` (lowercase, no default
/// port) and its path (`/` when empty), without query or fragment.
#[derive(Debug, PartialEq, Eq)]
struct Url {
    origin: String,
    path: String,
}

/// `url` read for a rule; `None` when it is no plain http(s) URL or holds
/// a trick (a user, a bad host or port, a path that is not clean).
fn read_url(url: &str) -> Option<Url> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if url.contains(['\\', '@']) || url.chars().any(|c| c.is_control() || c == ' ') {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(end);
    let host_port = read_authority(authority, default_port)?;
    let path = match rest.find(['?', '#']) {
        Some(end) => &rest[..end],
        None => rest,
    };
    let path = if path.is_empty() { "/" } else { path };
    clean_url_path(path).then(|| Url {
        origin: format!("{scheme}://{host_port}"),
        path: path.to_string(),
    })
}

/// `host[:port]` lowercased, the default port dropped; a bracketed IPv6
/// host kept as written.
fn read_authority(authority: &str, default_port: u16) -> Option<String> {
    let authority = authority.to_ascii_lowercase();
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (address, after) = v6.split_once(']')?;
            let port = match after {
                "" => "",
                after => after.strip_prefix(':')?,
            };
            let ok = address
                .chars()
                .all(|c| c.is_ascii_hexdigit() || ":.".contains(c));
            (ok && !address.is_empty()).then_some(())?;
            (format!("[{address}]"), port)
        }
        None => {
            let (host, port) = authority.split_once(':').unwrap_or((&authority, ""));
            let ok = host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.".contains(c));
            (ok && !host.is_empty()).then_some(())?;
            (host.to_string(), port)
        }
    };
    if port.is_empty() {
        return Some(host);
    }
    let digits = port.len() <= 5 && port.chars().all(|c| c.is_ascii_digit());
    let port: u16 = port.parse().ok().filter(|&p| digits && p != 0)?;
    match port == default_port {
        true => Some(host),
        false => Some(format!("{host}:{port}")),
    }
}

/// A URL path with no empty segment but a last one, and no segment that
/// is (percent-decoded, before any `;`) `.` or `..` or holds `/` or `\`.
fn clean_url_path(path: &str) -> bool {
    let Some(segments) = path.strip_prefix('/') else {
        return false;
    };
    let segments: Vec<&str> = segments.split('/').collect();
    let last = segments.len() - 1;
    segments.iter().enumerate().all(|(at, segment)| {
        let Some(decoded) = percent_decode(segment) else {
            return false;
        };
        let base = decoded.split(|&b| b == b';').next().unwrap_or_default();
        let dots = base == b"." || base == b"..";
        let empty = segment.is_empty() && at != last;
        !dots && !empty && !decoded.iter().any(|&b| b == b'/' || b == b'\\' || b == 0)
    })
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = std::str::from_utf8(bytes.get(at + 1..at + 3)?).ok()?;
            decoded.push(u8::from_str_radix(hex, 16).ok()?);
            at += 3;
        } else {
            decoded.push(bytes[at]);
            at += 1;
        }
    }
    Some(decoded)
}

/// A URL prefix a human picked, normalized (`https://example.org/docs/`):
/// `None` unless it reads as a URL (`read_url`) without query or fragment.
pub fn url_prefix(text: &str) -> Option<String> {
    if text.contains(['?', '#']) {
        return None;
    }
    let url = read_url(text)?;
    Some(format!("{}{}", url.origin, url.path))
}

/// Whether `url` is under `prefix` (a normalized prefix): the same origin,
/// and the prefix's path is the URL's path or one of its leading segments.
pub fn url_under(prefix: &str, url: &str) -> bool {
    let (Some(prefix), Some(url)) = (read_url(prefix), read_url(url)) else {
        return false;
    };
    prefix.origin == url.origin && under(&prefix.path, &url.path)
}

/// `path` is `prefix`, or goes on from it at a `/`.
fn under(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'),
    }
}

/// An absolute path with no empty, `.` or `..` segment and no NUL; a
/// directory (`dir`) ends in `/`, a file does not.
fn clean_absolute(path: &str, dir: bool) -> bool {
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let rest = match dir {
        true => match rest.strip_suffix('/') {
            Some(rest) => rest,
            None if rest.is_empty() => rest,
            None => return false,
        },
        false => rest,
    };
    let bad = |segment: &str| segment.is_empty() || segment == "." || segment == "..";
    let clean = (rest.is_empty() && dir) || !rest.split('/').any(bad);
    clean && !path.contains('\0')
}

/// A directory a human picked: an absolute, clean path ending in `/`.
pub fn directory(text: &str) -> Option<String> {
    clean_absolute(text, true).then(|| text.to_string())
}

/// The file an action names, as a rule reads it: `path` if absolute, else
/// under `cwd` (itself absolute and clean); `None` when either is not
/// clean (normalizing would change it) or the path starts with `~`.
fn file(path: &str, cwd: Option<&str>) -> Option<String> {
    let full = match path.starts_with('/') {
        true => path.to_string(),
        false if path.starts_with('~') => return None,
        false => {
            let cwd = cwd?;
            let cwd = cwd
                .strip_suffix('/')
                .filter(|c| !c.is_empty())
                .unwrap_or(cwd);
            match cwd {
                "/" => format!("/{path}"),
                cwd => format!("{cwd}/{path}"),
            }
        }
    };
    clean_absolute(&full, false).then_some(full)
}

/// Whether the file `path` (under `cwd`) is in `directory`, by name.
pub fn file_under(directory: &str, path: &str, cwd: Option<&str>) -> bool {
    let clean = clean_absolute(directory, true);
    clean && file(path, cwd).is_some_and(|file| file.starts_with(directory))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_prefix_covers_its_origin_and_path_segments_only() {
        let prefix = url_prefix("HTTPS://Example.org:443/docs").unwrap();
        assert_eq!(prefix, "https://example.org/docs");
        // (prefix, url, covered)
        let table = [
            (prefix.as_str(), "https://example.org/docs", true),
            (&prefix, "https://example.org/docs/a/b?q=1#x", true),
            (&prefix, "https://EXAMPLE.org:443/docs/a", true),
            (&prefix, "https://example.org/docs2", false),
            (&prefix, "https://example.org/doc", false),
            (&prefix, "http://example.org/docs/a", false),
            (&prefix, "https://example.org:8443/docs/a", false),
            (&prefix, "https://example.org.evil/docs/a", false),
            (&prefix, "https://example.org.evil.com/docs", false),
            (&prefix, "https://evil.org/docs", false),
            (&prefix, "https://example.org@evil.org/docs", false),
            (&prefix, "https://user:pw@example.org/docs", false),
            (&prefix, "https://example.org/docs/../admin", false),
            (&prefix, "https://example.org/docs/./a", false),
            (&prefix, "https://example.org/docs/%2e%2e/admin", false),
            (&prefix, "https://example.org/docs/%2E./admin", false),
            (&prefix, "https://example.org/docs/..;/admin", false),
            (&prefix, "https://example.org/docs%2f..%2fadmin", false),
            (&prefix, "https://example.org/docs/a%5c..%5cb", false),
            (&prefix, "https://example.org/docs\\..\\admin", false),
            (&prefix, "https://example.org/docs//a", false),
            (&prefix, "https://example.org/docs/%zz", false),
            (&prefix, "ftp://example.org/docs", false),
            (
                "https://example.org/docs/",
                "https://example.org/docs/a",
                true,
            ),
            (
                "https://example.org/docs/",
                "https://example.org/docs",
                false,
            ),
            ("https://example.org/", "https://example.org", true),
            (
                "https://example.org/",
                "https://example.org/any/thing",
                true,
            ),
            ("http://[::1]:8080/a", "http://[::1]:8080/a/b", true),
            ("http://[::1]:8080/a", "http://[::1]/a/b", false),
        ];
        for (prefix, url, covered) in table {
            assert_eq!(url_under(prefix, url), covered, "{prefix} on {url}");
        }
        for refused in [
            "https://example.org/docs?x=1",
            "https://example.org/#a",
            "https://u@example.org/",
            "https://example.org/a/../b",
            "https://exa%6dple.org/",
            "https://example.org:0/",
            "https://example.org:99999/",
            "https:///a",
            "file:///etc/",
            "example.org/docs",
        ] {
            assert_eq!(url_prefix(refused), None, "{refused}");
        }
    }

    #[test]
    fn a_directory_covers_clean_files_under_it_by_name() {
        // (directory, path, cwd, covered)
        let table = [
            ("/src/app/", "/src/app/main.rs", None, true),
            ("/src/app/", "/src/app/deep/er/x", None, true),
            ("/src/app/", "main.rs", Some("/src/app"), true),
            ("/src/app/", "main.rs", Some("/src/app/"), true),
            ("/src/app/", "lib/x.rs", Some("/src/app"), true),
            ("/src/", "app/x.rs", Some("/"), false),
            ("/", "x", Some("/"), true),
            ("/src/app/", "main.rs", None, false),
            ("/src/app/", "/src/app2/x", None, false),
            ("/src/app/", "/src/app", None, false),
            ("/src/app/", "/src/app/../../etc/passwd", None, false),
            ("/src/app/", "../x", Some("/src/app"), false),
            ("/src/app/", "/src/app/./x", None, false),
            ("/src/app/", "./x", Some("/src/app"), false),
            ("/src/app/", "/src/app//x", None, false),
            ("/src/app/", "/src/app/x/", None, false),
            ("/src/app/", "/src/app/x\0y", None, false),
            ("/src/app/", "~/x", Some("/src/app"), false),
            ("/src/app/", "x", Some("/src/app/../.."), false),
            ("/src/app/", "x", Some("src/app"), false),
            ("/src/../app/", "/src/../app/x", None, false),
            ("/src/app", "/src/app/x", None, false),
        ];
        for (dir, path, cwd, covered) in table {
            assert_eq!(
                file_under(dir, path, cwd),
                covered,
                "{dir} on {path} in {cwd:?}"
            );
        }
        for refused in ["src/", "/src", "/a//b/", "/a/./", "/a/../", ""] {
            assert_eq!(directory(refused), None, "{refused:?}");
        }
        assert_eq!(directory("/src/app/").as_deref(), Some("/src/app/"));
    }
}
