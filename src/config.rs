//! Server configuration: every flag, its default, and its `ASKGATE_<FLAG>`
//! environment variable, in one table.
//!
//! Precedence: command line, then environment, then the default. A value
//! that does not parse is an error naming the flag, never silently ignored.

use crate::public_url::{PublicUrl, normalize_origin};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// (flag, default, help). A default of "" marks a boolean switch.
const FLAGS: &[(&str, &str, &str)] = &[
    ("bind", "127.0.0.1:8787", "address to listen on"),
    ("log-level", "info", "error, warn, info, debug or trace"),
    (
        "data-dir",
        "./data",
        "directory of the journal that keeps prompts, answers and rules across restarts; none keeps them in memory only",
    ),
    (
        "keepalive-secs",
        "30",
        "seconds without a frame before a stream gets a keepalive",
    ),
    (
        "header-timeout-secs",
        "10",
        "socket receive timeout: slow request headers and idle connections are dropped after it",
    ),
    (
        "write-timeout-secs",
        "20",
        "a socket write blocked this long ends its stream",
    ),
    (
        "subscriber-buffer",
        "16",
        "frames a subscriber may fall behind before it is resynced",
    ),
    (
        "max-streams",
        "1024",
        "open streams and parked long-polls together",
    ),
    ("max-pending", "64", "pending prompts per session and kind"),
    (
        "max-sessions",
        "10000",
        "sessions at once; the idle one changed longest ago makes room",
    ),
    (
        "max-prompts",
        "10000",
        "pending prompts across all sessions",
    ),
    (
        "result-ttl",
        "600",
        "seconds an outcome is kept for its agent to collect",
    ),
    (
        "stream-lifetime-secs",
        "600-900",
        "the server ends a stream at a random point in this range",
    ),
    ("workers", "4", "threads answering ordinary requests"),
    (
        "allow-origin",
        "-",
        "comma-separated origins, besides the server's own, whose POSTs are accepted",
    ),
    (
        "public-url",
        "-",
        "the address the page is opened at through a reverse proxy (https://home.example/askgate): \
         its origin passes the Origin check, its host the Host check, its path is the base path",
    ),
    (
        "trusted-proxy",
        "-",
        "comma-separated proxy IP addresses whose X-Forwarded-Proto and X-Forwarded-Host are believed",
    ),
    (
        "insecure-no-auth",
        "",
        "allow binding a non-loopback address",
    ),
];

#[derive(Clone, Debug)]
pub struct Config {
    pub bind: String,
    /// Where the journal lives; `None` keeps the state in memory only.
    pub data_dir: Option<std::path::PathBuf>,
    pub log_level: log::LevelFilter,
    pub keepalive: Duration,
    pub header_timeout: Duration,
    pub write_timeout: Duration,
    pub subscriber_buffer: usize,
    pub max_streams: usize,
    pub max_pending: usize,
    pub max_sessions: usize,
    pub max_prompts: usize,
    pub result_ttl: Duration,
    pub stream_lifetime: (Duration, Duration),
    pub workers: usize,
    pub insecure_no_auth: bool,
    /// Origins (`scheme://host[:port]`) allowed to POST besides the server's own.
    pub allow_origins: Vec<String>,
    /// Request bodies larger than this are refused with 413.
    pub max_body: usize,
    /// askgate's external address behind a reverse proxy (`--public-url`).
    pub public_url: Option<PublicUrl>,
    /// Peers whose `X-Forwarded-Proto` and `X-Forwarded-Host` are believed.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for Config {
    fn default() -> Config {
        Config::parse(&[], |_| None).expect("the defaults parse")
    }
}

impl Config {
    /// Parses `--flag value` / `--flag=value` arguments over the environment
    /// (looked up through `env`, as `ASKGATE_FLAG_NAME`) over the defaults.
    pub fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let mut values: HashMap<&str, String> = HashMap::new();
        for &(name, default, _) in FLAGS {
            let variable = format!("ASKGATE_{}", name.to_uppercase().replace('-', "_"));
            values.insert(name, env(&variable).unwrap_or_else(|| default.to_string()));
        }
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let flag = arg
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument: {arg}"))?;
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (flag, None),
            };
            let &(name, default, _) = FLAGS
                .iter()
                .find(|(known, _, _)| *known == name)
                .ok_or_else(|| format!("unknown flag: --{name}"))?;
            let value = match (inline, default.is_empty()) {
                (Some(value), _) => value,
                (None, true) => "true".to_string(),
                (None, false) => args
                    .next()
                    .cloned()
                    .ok_or_else(|| format!("--{name} needs a value"))?,
            };
            values.insert(name, value);
        }
        Config::from_values(&values)
    }

    fn from_values(values: &HashMap<&str, String>) -> Result<Config, String> {
        let get = |name: &str| values[name].as_str();
        let config = Config {
            bind: get("bind").to_string(),
            data_dir: match get("data-dir").trim() {
                "" | "none" => None,
                dir => Some(dir.into()),
            },
            log_level: parse_flag("log-level", get("log-level"))?,
            keepalive: seconds("keepalive-secs", get("keepalive-secs"))?,
            header_timeout: seconds("header-timeout-secs", get("header-timeout-secs"))?,
            write_timeout: seconds("write-timeout-secs", get("write-timeout-secs"))?,
            subscriber_buffer: parse_flag("subscriber-buffer", get("subscriber-buffer"))?,
            max_streams: parse_flag("max-streams", get("max-streams"))?,
            max_pending: parse_flag("max-pending", get("max-pending"))?,
            max_sessions: parse_flag("max-sessions", get("max-sessions"))?,
            max_prompts: parse_flag("max-prompts", get("max-prompts"))?,
            result_ttl: seconds("result-ttl", get("result-ttl"))?,
            stream_lifetime: range("stream-lifetime-secs", get("stream-lifetime-secs"))?,
            workers: parse_flag::<usize>("workers", get("workers"))?.max(1),
            insecure_no_auth: parse_flag(
                "insecure-no-auth",
                default_false(get("insecure-no-auth")),
            )?,
            allow_origins: list(get("allow-origin"))
                .map(|origin| {
                    normalize_origin(origin).ok_or_else(|| {
                        format!("invalid value for --allow-origin: {origin:?} (want scheme://host[:port])")
                    })
                })
                .collect::<Result<_, _>>()?,
            max_body: 64 * 1024,
            public_url: match get("public-url").trim() {
                "" | "-" => None,
                url => Some(
                    PublicUrl::parse(url)
                        .map_err(|why| format!("invalid value for --public-url: {url:?}: {why}"))?,
                ),
            },
            trusted_proxies: list(get("trusted-proxy"))
                .map(|addr| parse_flag::<IpAddr>("trusted-proxy", addr).map(|ip| ip.to_canonical()))
                .collect::<Result<_, _>>()?,
        };
        for (name, timeout) in [
            ("keepalive-secs", config.keepalive),
            ("header-timeout-secs", config.header_timeout),
        ] {
            if timeout.is_zero() {
                return Err(format!("--{name} must be more than 0"));
            }
        }
        Ok(config)
    }

    /// The address to bind, refusing a non-loopback one without
    /// `--insecure-no-auth` (there is no token authentication yet).
    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        let addr: SocketAddr = parse_flag("bind", &self.bind)?;
        if !addr.ip().is_loopback() && !self.insecure_no_auth {
            return Err(format!(
                "refusing to bind {addr}: askgate has no authentication yet, so it only binds loopback \
                 addresses; pass --insecure-no-auth to bind {addr} anyway"
            ));
        }
        Ok(addr)
    }

    /// The path the page is served at behind a proxy, from `--public-url`:
    /// `/askgate/`, or `/` without one. Always starts and ends with `/`.
    pub fn base_path(&self) -> &str {
        self.public_url.as_ref().map_or("/", PublicUrl::base_path)
    }

    /// The usage text: every flag with its default.
    pub fn usage() -> String {
        let mut text =
            String::from("askgate serve [FLAGS]\n\nFlags (each also read from ASKGATE_<FLAG>):\n");
        for (name, default, help) in FLAGS {
            let default = if default.is_empty() {
                String::new()
            } else {
                format!(" (default {default})")
            };
            text.push_str(&format!("  --{name:<22} {help}{default}\n"));
        }
        text
    }
}

/// The items of a comma-separated flag; `-` (the default) or "" is none.
fn list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty() && *item != "-")
}

fn default_false(value: &str) -> &str {
    if value.is_empty() { "false" } else { value }
}

fn parse_flag<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("invalid value for --{name}: {value:?}"))
}

fn seconds(name: &str, value: &str) -> Result<Duration, String> {
    let secs: f64 = parse_flag(name, value)?;
    if !secs.is_finite() || !(0.0..=31_536_000.0).contains(&secs) {
        return Err(format!("invalid value for --{name}: {value:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `A-B` or a single `A`, in seconds.
fn range(name: &str, value: &str) -> Result<(Duration, Duration), String> {
    let (low, high) = value.split_once('-').unwrap_or((value, value));
    let (low, high) = (seconds(name, low)?, seconds(name, high)?);
    if low > high || low.is_zero() {
        return Err(format!(
            "invalid value for --{name}: {value:?} (want LOW-HIGH seconds, LOW > 0)"
        ));
    }
    Ok((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Config, String> {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        Config::parse(&args, |name| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn command_line_beats_environment_beats_default() {
        let config = parse(
            &["--keepalive-secs", "5"],
            &[
                ("ASKGATE_KEEPALIVE_SECS", "7"),
                ("ASKGATE_MAX_STREAMS", "3"),
            ],
        )
        .unwrap();
        assert_eq!(
            (config.keepalive, config.max_streams),
            (Duration::from_secs(5), 3)
        );
        assert_eq!(config.bind, "127.0.0.1:8787");
        let config = parse(&["--stream-lifetime-secs=1-2", "--insecure-no-auth"], &[]).unwrap();
        assert_eq!(
            config.stream_lifetime,
            (Duration::from_secs(1), Duration::from_secs(2))
        );
        assert!(config.insecure_no_auth);
    }

    #[test]
    fn bad_values_name_their_flag() {
        let cases = [
            (
                vec!["--keepalive-secs", "x"],
                "invalid value for --keepalive-secs",
            ),
            (vec!["--nope"], "unknown flag: --nope"),
            (vec!["--bind"], "--bind needs a value"),
            (vec!["stray"], "unexpected argument: stray"),
            (
                vec!["--stream-lifetime-secs", "9-3"],
                "invalid value for --stream-lifetime-secs",
            ),
            (
                vec!["--allow-origin", "https://a.example,null"],
                "invalid value for --allow-origin: \"null\"",
            ),
            (
                vec!["--header-timeout-secs", "0"],
                "--header-timeout-secs must be more than 0",
            ),
        ];
        for (args, expected) in cases {
            let error = parse(&args, &[]).unwrap_err();
            assert!(error.starts_with(expected), "{args:?}: {error}");
        }
    }

    #[test]
    fn non_loopback_bind_needs_the_insecure_flag() {
        assert!(
            parse(&["--bind", "0.0.0.0:1"], &[])
                .unwrap()
                .bind_addr()
                .is_err()
        );
        assert!(
            parse(&["--bind", "0.0.0.0:1", "--insecure-no-auth"], &[])
                .unwrap()
                .bind_addr()
                .is_ok()
        );
        assert!(
            parse(&["--bind", "[::1]:0"], &[])
                .unwrap()
                .bind_addr()
                .is_ok()
        );
    }
}
