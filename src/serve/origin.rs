//! Where a request was addressed: the `Host` check (DNS rebinding), the
//! `Origin` check (cross-site POSTs), whether the client spoke https, and
//! the hint every 403 of theirs carries.
//!
//! askgate's external origin and host come from configuration
//! (`--public-url`), never from a header alone. `X-Forwarded-Proto` and
//! `X-Forwarded-Host` are believed only from a `--trusted-proxy` peer, and
//! then only their last value, the one that proxy set (every line of a
//! header is one list, in order). So is `X-Forwarded-For`, which tells
//! clients apart: a value that is no address is a client of its own, never
//! one that shares the loopback's places or skips a limit. Origins compare with
//! their scheme: `http://x` is never `https://x`. Pure functions of the
//! configuration and the request.

use crate::config::Config;
use crate::error::{self, Error, Refusal, Result};
use crate::public_url::{host_name, normalize_origin, page_address};
use crate::serve::http::Request;
use std::net::IpAddr;

/// On a loopback bind the API answers only local host names and the public
/// URL's host, so a page whose name was rebound to 127.0.0.1 (DNS
/// rebinding) cannot use it. The port is ignored; a missing `Host` passes.
pub fn check_host(config: &Config, loopback: bool, request: &Request) -> Result<()> {
    let Some(host) = addressed_host(config, request).filter(|_| loopback) else {
        return Ok(());
    };
    let name = host_name(host).to_ascii_lowercase();
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    let local =
        name == "localhost" || name.ends_with(".localhost") || bare.parse::<IpAddr>().is_ok();
    let public = config
        .public_url
        .as_ref()
        .is_some_and(|url| url.host_name() == name);
    if local || public {
        return Ok(());
    }
    let mut expected = "localhost, *.localhost or an IP address".to_string();
    if let Some(url) = &config.public_url {
        expected = format!("{}, or {} from --public-url", expected, url.host_name());
    }
    let guess = page_guess(config, request, &guess_origin(config, request, &name, host));
    Err(Error::Forbidden(Refusal {
        message: format!("host not allowed: {}", error::quoted(host)),
        hint: public_url_hint(&guess),
        expected: format!("Host {expected}"),
    }))
}

/// A browser's POST must come from askgate's page: the public URL's origin,
/// the request's own (its host, with the scheme it was made with), or an
/// `--allow-origin`. Requests without an `Origin` (agents, scripts) pass.
pub fn check_origin(config: &Config, request: &Request) -> Result<()> {
    let Some(sent) = request.header("origin") else {
        return Ok(());
    };
    let origin = normalize_origin(sent);
    let own = own_origin(config, request);
    let public = config.public_url.as_ref().map(|url| url.origin());
    let allowed = origin.as_deref().is_some_and(|origin| {
        Some(origin) == own.as_deref()
            || Some(origin) == public
            || config.allow_origins.iter().any(|allowed| allowed == origin)
    });
    if allowed {
        return Ok(());
    }
    let hint = match &origin {
        Some(origin) => public_url_hint(&page_guess(config, request, origin)),
        None => format!(
            "a page whose Origin is {sent} (a sandboxed frame, a local file, a redirect) \
             cannot post to askgate: open askgate's own page"
        ),
    };
    let mut expected = vec![match own {
        Some(own) => format!("{own} (its own, from the Host it was sent to)"),
        None => "no own origin (no Host)".to_string(),
    }];
    expected.extend(public.map(|public| format!("{public} from --public-url")));
    if !config.allow_origins.is_empty() {
        expected.push(format!("--allow-origin {}", config.allow_origins.join(",")));
    }
    Err(Error::Forbidden(Refusal {
        message: format!(
            "origin not allowed: {}",
            error::quoted(sent.trim_end_matches('/'))
        ),
        hint,
        expected: format!("Origin {}", expected.join(" or ")),
    }))
}

/// Whether the client's own request was https (a cookie's `Secure` flag
/// follows it): as a trusted proxy says in `X-Forwarded-Proto`, else when
/// `--public-url` is https and the request names its host, so it came
/// through the proxy serving that URL. askgate itself speaks plain http.
pub fn is_https(config: &Config, request: &Request) -> bool {
    if let Some(proto) = forwarded(config, request, "x-forwarded-proto") {
        return proto.eq_ignore_ascii_case("https");
    }
    let Some(public) = config.public_url.as_ref().filter(|url| url.is_https()) else {
        return false;
    };
    addressed_host(config, request)
        .is_some_and(|host| host_name(host).eq_ignore_ascii_case(public.host_name()))
}

/// The last value of a forwarded header, only from a trusted proxy;
/// `None` when empty.
fn forwarded<'a>(config: &Config, request: &'a Request, name: &str) -> Option<&'a str> {
    forwarded_last(config, request, name).filter(|value| !value.is_empty())
}

/// The last value of every line of a forwarded header, taken as one list
/// (docs/PROTOCOL.md §7): the one the trusted proxy added. Only from a
/// trusted proxy.
fn forwarded_last<'a>(config: &Config, request: &'a Request, name: &str) -> Option<&'a str> {
    let peer = request.peer?.ip().to_canonical();
    if !config.trusted_proxies.contains(&peer) {
        return None;
    }
    let last_line = request.headers_named(name).last()?;
    Some(last_line.rsplit(',').next().unwrap_or("").trim())
}

/// Bytes of an unparseable forwarded address kept as a client's name.
const MAX_UNPARSED: usize = 64;

/// A client told apart from others (docs/PROTOCOL.md §7): its address, or
/// the text a trusted proxy forwarded that is no address (cut to
/// `MAX_UNPARSED` bytes), which is then a client of its own.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Client {
    Address(IpAddr),
    Unparsed(String),
}

impl Client {
    fn unparsed(text: &str) -> Client {
        let mut end = text.len().min(MAX_UNPARSED);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Client::Unparsed(text[..end].to_string())
    }
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Client::Address(address) => write!(f, "{address}"),
            Client::Unparsed(text) => write!(f, "forwarded {text:?}"),
        }
    }
}

/// The client where it tells one from another: the last address of a
/// trusted proxy's `X-Forwarded-For` (or its text, when it is none), else
/// the peer's. `None` for loopback (the operator's own, or a proxy that
/// forwards no address).
pub fn client(config: &Config, request: &Request) -> Option<Client> {
    let address = match forwarded_last(config, request, "x-forwarded-for") {
        Some(value) => match value.parse::<IpAddr>() {
            Ok(address) => address,
            Err(_) => return Some(Client::unparsed(value)),
        },
        None => request.peer?.ip(),
    }
    .to_canonical();
    (!address.is_loopback()).then_some(Client::Address(address))
}

/// The host the client addressed: a trusted proxy's `X-Forwarded-Host`,
/// else `Host`.
fn addressed_host<'a>(config: &Config, request: &'a Request) -> Option<&'a str> {
    forwarded(config, request, "x-forwarded-host").or_else(|| request.header("host"))
}

/// The origin of a page served by the host this request was sent to.
fn own_origin(config: &Config, request: &Request) -> Option<String> {
    let host = addressed_host(config, request)?;
    let scheme = if is_https(config, request) {
        "https"
    } else {
        "http"
    };
    normalize_origin(&format!("{scheme}://{host}"))
}

/// The origin the client's page seems to have on a refused `host`: that of
/// its `Origin` or `Referer` when they name the same host, else one built
/// from the host.
fn guess_origin(config: &Config, request: &Request, name: &str, host: &str) -> String {
    let referer = request.header("referer").and_then(split_referer);
    let candidates = [request.header("origin"), referer.map(|(origin, _)| origin)];
    let same_host = candidates
        .into_iter()
        .flatten()
        .filter_map(normalize_origin)
        .find(|origin| {
            let authority = origin.split_once("://").map_or("", |(_, a)| a);
            host_name(authority) == name
        });
    same_host.unwrap_or_else(|| {
        let scheme = if is_https(config, request) {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{host}")
    })
}

/// The address of the client's page on `origin`: the folder of its
/// `Referer` when that is on `origin`, else `origin` and the base path.
fn page_guess(config: &Config, request: &Request, origin: &str) -> String {
    let folder = request
        .header("referer")
        .and_then(split_referer)
        .filter(|(referer_origin, _)| normalize_origin(referer_origin).as_deref() == Some(origin))
        .map(|(_, path)| &path[..path.rfind('/').map_or(0, |slash| slash + 1)]);
    page_address(origin, folder.unwrap_or(config.base_path()))
}

/// `https://host:port/a/b?q` into `https://host:port` and `/a/b`.
fn split_referer(referer: &str) -> Option<(&str, &str)> {
    let scheme_end = referer.find("://")? + 3;
    let path_start = referer[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(referer.len(), |at| scheme_end + at);
    let (origin, rest) = referer.split_at(path_start);
    let path = rest.split(['?', '#']).next().unwrap_or("");
    Some((origin, if path.is_empty() { "/" } else { path }))
}

/// What to change, quoting at most a little of what the request sent.
fn public_url_hint(guess: &str) -> String {
    let guess = error::quoted(guess);
    format!("if askgate's page is at {guess}, start askgate with --public-url {guess}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::http::Method;

    fn config(flags: &[&str]) -> Config {
        let args: Vec<String> = flags.iter().map(|flag| flag.to_string()).collect();
        Config::parse(&args, |_| None).expect("valid flags")
    }

    /// A POST from `peer` with these headers.
    fn request(peer: &str, headers: &[(&str, &str)]) -> Request {
        let mut request = Request::fake(Method::Post, "/api/clarify/submit", "{}");
        request.peer = Some(peer.parse().expect("a socket address"));
        for (name, value) in headers {
            request
                .headers
                .push((name.to_ascii_lowercase(), value.to_string()));
        }
        request
    }

    /// `Ok(())` or the refusal's message and hint.
    fn outcome(result: Result<()>) -> std::result::Result<(), (String, String)> {
        result.map_err(|error| match error {
            Error::Forbidden(refusal) => (refusal.message, refusal.hint),
            other => panic!("not a 403: {other:?}"),
        })
    }

    fn hint(page: &str) -> String {
        public_url_hint(page)
    }

    const PROXY: &str = "127.0.0.1:40000";
    const PUBLIC: &[&str] = &["--public-url", "https://home.example/askgate"];

    #[test]
    fn the_public_host_passes_the_host_check_and_others_get_a_hint() {
        let public = config(PUBLIC);
        let plain = config(&[]);
        let refused =
            |host: &str, page: &str| Err((format!("host not allowed: {host}"), hint(page)));
        #[rustfmt::skip]
        let cases = [
            (&public, vec![("Host", "home.example")], Ok(())),
            (&public, vec![("Host", "HOME.example:8443")], Ok(())),
            (&public, vec![("Host", "127.0.0.1:8787")], Ok(())),
            (&public, vec![("Host", "[::1]:8787")], Ok(())),
            (&public, vec![("Host", "app.localhost")], Ok(())),
            (&public, vec![], Ok(())),
            (&public, vec![("Host", "home.example.evil")], refused("home.example.evil", "http://home.example.evil/askgate")),
            (&plain, vec![("Host", "home.example")], refused("home.example", "http://home.example")),
            // The page's address comes from its Referer or Origin on that host.
            (&plain, vec![("Host", "home.example"), ("Referer", "https://home.example/askgate/?x=1")],
                refused("home.example", "https://home.example/askgate")),
            (&plain, vec![("Host", "home.example:8443"), ("Origin", "https://home.example:8443")],
                refused("home.example:8443", "https://home.example:8443")),
            (&plain, vec![("Host", "home.example"), ("Referer", "https://other.example/askgate/")],
                refused("home.example", "http://home.example")),
        ];
        for (config, headers, expected) in cases {
            let got = outcome(check_host(config, true, &request(PROXY, &headers)));
            assert_eq!(got, expected, "{headers:?}");
            let anywhere = outcome(check_host(config, false, &request(PROXY, &headers)));
            assert_eq!(anywhere, Ok(()), "a non-loopback bind: {headers:?}");
        }
    }

    #[test]
    fn the_public_origin_passes_with_its_scheme_and_port() {
        let public = config(PUBLIC);
        let refused =
            |origin: &str, page: &str| Err((format!("origin not allowed: {origin}"), hint(page)));
        #[rustfmt::skip]
        let cases = [
            // nginx's `proxy_set_header Host $host` drops the port; its default sends the upstream's.
            (vec![("Host", "home.example"), ("Origin", "https://home.example")], Ok(())),
            (vec![("Host", "127.0.0.1:8787"), ("Origin", "https://home.example")], Ok(())),
            (vec![("Host", "127.0.0.1:8787"), ("Origin", "https://HOME.example:443/")], Ok(())),
            (vec![("Host", "127.0.0.1:8787"), ("Origin", "http://127.0.0.1:8787")], Ok(())),
            (vec![("Host", "home.example"), ("Origin", "http://home.example")],
                refused("http://home.example", "http://home.example/askgate")),
            (vec![("Host", "home.example"), ("Origin", "https://home.example:8443")],
                refused("https://home.example:8443", "https://home.example:8443/askgate")),
            (vec![("Host", "127.0.0.1:8787"), ("Origin", "https://askgate.example"), ("Referer", "https://askgate.example/ag/index.html")],
                refused("https://askgate.example", "https://askgate.example/ag")),
        ];
        for (headers, expected) in cases {
            let got = outcome(check_origin(&public, &request(PROXY, &headers)));
            assert_eq!(got, expected, "{headers:?}");
        }
    }

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_proxy() {
        let trusting = config(&["--trusted-proxy", "127.0.0.1, ::1"]);
        let forwarded = [
            ("Host", "127.0.0.1:8787"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "home.example:8443"),
            ("Origin", "https://home.example:8443"),
        ];
        for peer in [PROXY, "[::1]:40000", "[::ffff:127.0.0.1]:40000"] {
            let request = request(peer, &forwarded);
            assert!(is_https(&trusting, &request), "{peer}");
            assert_eq!(outcome(check_origin(&trusting, &request)), Ok(()), "{peer}");
            let refused = outcome(check_host(&trusting, true, &request));
            assert_eq!(
                refused.map_err(|(message, _)| message),
                Err("host not allowed: home.example:8443".into())
            );
        }
        let untrusted = request("127.0.0.2:40000", &forwarded);
        assert!(!is_https(&trusting, &untrusted));
        assert_eq!(outcome(check_host(&trusting, true, &untrusted)), Ok(()));
        assert_eq!(
            outcome(check_origin(&trusting, &untrusted)),
            Err((
                "origin not allowed: https://home.example:8443".into(),
                hint("https://home.example:8443")
            ))
        );
        // Only the last value counts: the one the trusted proxy set.
        let appended = request(
            PROXY,
            &[("Host", "localhost"), ("X-Forwarded-Proto", "https, http")],
        );
        assert!(!is_https(&trusting, &appended));
    }

    #[test]
    fn the_client_is_the_last_forwarded_value_of_every_line_and_text_is_a_client_too() {
        let trusting = config(&["--trusted-proxy", "127.0.0.1"]);
        let address = |text: &str| Some(Client::Address(text.parse().unwrap()));
        let unparsed = |text: &str| Some(Client::Unparsed(text.into()));
        let long = "x".repeat(200);
        #[rustfmt::skip]
        let cases = [
            (PROXY, vec![], None),
            (PROXY, vec![("X-Forwarded-For", "192.0.2.7")], address("192.0.2.7")),
            (PROXY, vec![("X-Forwarded-For", "203.0.113.9, 192.0.2.7")], address("192.0.2.7")),
            // Several lines are one list, in order: the proxy's is the last.
            (PROXY, vec![("X-Forwarded-For", "192.0.2.7"), ("X-Forwarded-For", "198.51.100.3")], address("198.51.100.3")),
            (PROXY, vec![("X-Forwarded-For", "192.0.2.7, 198.51.100.3"), ("X-Forwarded-For", "unknown")], unparsed("unknown")),
            (PROXY, vec![("X-Forwarded-For", "192.0.2.7,")], unparsed("")),
            (PROXY, vec![("X-Forwarded-For", &long)], unparsed(&long[..MAX_UNPARSED])),
            (PROXY, vec![("X-Forwarded-For", "::ffff:192.0.2.7")], address("192.0.2.7")),
            (PROXY, vec![("X-Forwarded-For", "127.0.0.1")], None),
            ("192.0.2.50:40000", vec![("X-Forwarded-For", "192.0.2.7")], address("192.0.2.50")),
            ("127.0.0.2:40000", vec![("X-Forwarded-For", "garbage")], None),
        ];
        for (peer, headers, expected) in cases {
            assert_eq!(
                client(&trusting, &request(peer, &headers)),
                expected,
                "{peer} {headers:?}"
            );
        }
    }

    #[test]
    fn https_is_what_a_trusted_proxy_says_or_the_public_url_for_its_host() {
        let public = config(PUBLIC);
        let trusting = config(&[
            "--public-url",
            "https://home.example/askgate",
            "--trusted-proxy",
            "127.0.0.1",
        ]);
        let plain_public = config(&["--public-url", "http://home.example/askgate"]);
        let cases = [
            (config(&[]), vec![("Host", "home.example")], false),
            (public.clone(), vec![("Host", "home.example")], true),
            (public.clone(), vec![("Host", "Home.Example:8443")], true),
            (public.clone(), vec![("Host", "127.0.0.1:8787")], false),
            (public.clone(), vec![], false),
            (plain_public, vec![("Host", "home.example")], false),
            (
                public.clone(),
                vec![("Host", "home.example"), ("X-Forwarded-Proto", "http")],
                true,
            ),
            (
                trusting.clone(),
                vec![("Host", "home.example"), ("X-Forwarded-Proto", "http")],
                false,
            ),
            (
                trusting.clone(),
                vec![("Host", "127.0.0.1"), ("X-Forwarded-Proto", "HTTPS")],
                true,
            ),
            (
                trusting,
                vec![("Host", "127.0.0.1"), ("X-Forwarded-Host", "home.example")],
                true,
            ),
        ];
        for (config, headers, expected) in cases {
            assert_eq!(
                is_https(&config, &request(PROXY, &headers)),
                expected,
                "{headers:?}"
            );
        }
    }

    #[test]
    fn the_base_path_comes_from_the_public_url() {
        assert_eq!(config(&[]).base_path(), "/");
        assert_eq!(config(PUBLIC).base_path(), "/askgate/");
        assert_eq!(
            config(&["--public-url", "https://h.example/"]).base_path(),
            "/"
        );
        let error =
            Config::parse(&["--public-url".into(), "home.example".into()], |_| None).unwrap_err();
        assert!(
            error.starts_with("invalid value for --public-url"),
            "{error}"
        );
        let error =
            Config::parse(&["--trusted-proxy".into(), "10.0.0.0/8".into()], |_| None).unwrap_err();
        assert!(
            error.starts_with("invalid value for --trusted-proxy"),
            "{error}"
        );
        let from_env = Config::parse(&[], |name| {
            (name == "ASKGATE_PUBLIC_URL").then(|| "https://e.example/x".into())
        });
        assert_eq!(from_env.unwrap().base_path(), "/x/");
    }
}
