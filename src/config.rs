//! Server configuration: every flag, its default, and its `ASKGATE_<FLAG>`
//! environment variable, in one table.
//!
//! Precedence: command line, then environment, then the default. A value
//! that does not parse is an error naming the flag, never silently ignored.

use crate::notify::{
    self,
    sink::{Ntfy, Webhook},
};
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
        "store",
        "journal",
        "where the state lives: journal (in --data-dir), or redis://host:port/db, a log in Redis \
         or Valkey shared by every instance that names it",
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
        "open streams (per-kind and /api/events)",
    ),
    (
        "max-parked",
        "1024",
        "parked long-polls and agents' waits, apart from streams",
    ),
    (
        "max-connections",
        "auto",
        "connections read at once; one more gets a 503 at once (auto: half the open-file limit less 64, at most 4096)",
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
        "max-state-bytes",
        "64M",
        "memory budget for pending prompts (a session may hold an eighth), and half again for kept outcomes, an eighth for rules; K, M and G suffixes",
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
        "agent-token",
        "-",
        "the agents' bearer token (submit, wait, cancel); with --human-token, turns authentication on",
    ),
    (
        "human-token",
        "-",
        "the human's token (sign in to the page, answer, manage rules)",
    ),
    (
        "agent-token-file",
        "-",
        "read the agents' token from this file",
    ),
    (
        "human-token-file",
        "-",
        "read the human's token from this file",
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
        "notify-ntfy",
        "-",
        "on a new prompt, publish to this ntfy topic (https://ntfy.sh/TOPIC), with buttons that answer it",
    ),
    (
        "notify-ntfy-token",
        "-",
        "the ntfy access token to publish with (Authorization: Bearer)",
    ),
    (
        "notify-webhook",
        "-",
        "on a new prompt, POST askgate's webhook JSON to this URL (Gotify, Home Assistant, your own)",
    ),
    (
        "notify-webhook-token",
        "-",
        "a token the webhook is sent with (Authorization: Bearer)",
    ),
    (
        "notify-when",
        "unwatched",
        "unwatched: only when no page watches the prompt's queue; always: for every new prompt",
    ),
    (
        "notify-no-actions",
        "",
        "send notifications without buttons that answer (for a topic others can read)",
    ),
    (
        "notify-timeout-secs",
        "5",
        "each attempt to deliver a notification gives up after this long",
    ),
    (
        "deny-reasons",
        "-",
        "reasons a human can give a deny with one tap, separated by ;: \"not now;use the make target\"",
    ),
    (
        "insecure-no-auth",
        "",
        "allow binding a non-loopback address without tokens: anyone who can reach it can answer",
    ),
];

#[derive(Clone, Debug)]
pub struct Config {
    pub bind: String,
    /// Where the journal lives; `None` keeps the state in memory only.
    pub data_dir: Option<std::path::PathBuf>,
    /// `--store redis://...`: the state in Redis, shared with other
    /// instances, instead of the journal.
    pub redis: Option<crate::store::resp::Target>,
    pub log_level: log::LevelFilter,
    pub keepalive: Duration,
    pub header_timeout: Duration,
    pub write_timeout: Duration,
    pub subscriber_buffer: usize,
    pub max_streams: usize,
    pub max_parked: usize,
    /// `None` for the default worked out from the open-file limit.
    pub max_connections: Option<usize>,
    pub max_pending: usize,
    pub max_sessions: usize,
    pub max_prompts: usize,
    pub max_state_bytes: usize,
    pub result_ttl: Duration,
    pub stream_lifetime: (Duration, Duration),
    pub workers: usize,
    pub insecure_no_auth: bool,
    /// Tokens given by flag, environment or file: (agent, human).
    pub tokens: (Option<String>, Option<String>),
    /// Origins (`scheme://host[:port]`) allowed to POST besides the server's own.
    pub allow_origins: Vec<String>,
    /// Request bodies larger than this are refused with 413.
    pub max_body: usize,
    /// askgate's external address behind a reverse proxy (`--public-url`).
    pub public_url: Option<PublicUrl>,
    /// Peers whose `X-Forwarded-Proto` and `X-Forwarded-Host` are believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Where and when new prompts are notified (`--notify-*`).
    pub notify: notify::Settings,
    /// One-tap reasons for a deny, shown on the card (`--deny-reasons`).
    pub deny_reasons: Vec<String>,
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
            redis: match get("store").trim() {
                "" | "journal" => None,
                url => Some(crate::store::resp::Target::parse(url).map_err(|why| {
                    format!("invalid value for --store: {url:?}: {why} (journal or redis://host:port/db)")
                })?),
            },
            log_level: parse_flag("log-level", get("log-level"))?,
            keepalive: seconds("keepalive-secs", get("keepalive-secs"))?,
            header_timeout: seconds("header-timeout-secs", get("header-timeout-secs"))?,
            write_timeout: seconds("write-timeout-secs", get("write-timeout-secs"))?,
            subscriber_buffer: parse_flag("subscriber-buffer", get("subscriber-buffer"))?,
            max_streams: parse_flag("max-streams", get("max-streams"))?,
            max_parked: parse_flag("max-parked", get("max-parked"))?,
            max_connections: match get("max-connections").trim() {
                "auto" => None,
                value => Some(parse_flag("max-connections", value)?),
            },
            max_pending: parse_flag("max-pending", get("max-pending"))?,
            max_sessions: parse_flag("max-sessions", get("max-sessions"))?,
            max_prompts: parse_flag("max-prompts", get("max-prompts"))?,
            max_state_bytes: bytes("max-state-bytes", get("max-state-bytes"))?,
            result_ttl: seconds("result-ttl", get("result-ttl"))?,
            stream_lifetime: range("stream-lifetime-secs", get("stream-lifetime-secs"))?,
            workers: parse_flag::<usize>("workers", get("workers"))?.max(1),
            tokens: (
                token(get("agent-token"), get("agent-token-file"))?,
                token(get("human-token"), get("human-token-file"))?,
            ),
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
            deny_reasons: deny_reasons(get("deny-reasons"))?,
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
            notify: notify_settings(&get)?,
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
    /// `--insecure-no-auth` (the tokens are checked when the server starts).
    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        parse_flag("bind", &self.bind)
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

/// The `--notify-*` flags.
fn notify_settings<'a>(get: &impl Fn(&str) -> &'a str) -> Result<notify::Settings, String> {
    let given = |name: &str| Some(get(name).trim()).filter(|v| !v.is_empty() && *v != "-");
    let token = |name: &str| given(name).map(str::to_string);
    fn invalid(name: &'static str) -> impl Fn(String) -> String {
        move |why| format!("invalid value for --{name}: {why}")
    }
    Ok(notify::Settings {
        ntfy: given("notify-ntfy")
            .map(|url| Ntfy::parse(url, token("notify-ntfy-token")))
            .transpose()
            .map_err(invalid("notify-ntfy"))?,
        webhook: given("notify-webhook")
            .map(|url| Webhook::parse(url, token("notify-webhook-token")))
            .transpose()
            .map_err(invalid("notify-webhook"))?,
        always: match get("notify-when").trim() {
            "unwatched" => false,
            "always" => true,
            other => {
                return Err(format!(
                    "invalid value for --notify-when: {other:?} (want unwatched or always)"
                ));
            }
        },
        actions: !parse_flag::<bool>("notify-no-actions", default_false(get("notify-no-actions")))?,
        timeout: seconds("notify-timeout-secs", get("notify-timeout-secs"))?
            .max(Duration::from_millis(100)),
    })
}

/// The items of a comma-separated flag; `-` (the default) or "" is none.
/// `--deny-reasons`: at most 16 reasons separated by `;`, each one line of
/// at most 256 bytes.
fn deny_reasons(value: &str) -> Result<Vec<String>, String> {
    let reasons: Vec<String> = value
        .split(';')
        .map(str::trim)
        .filter(|reason| !reason.is_empty() && *reason != "-")
        .map(str::to_string)
        .collect();
    let valid = |r: &String| r.len() <= 256 && !r.chars().any(char::is_control);
    match reasons.len() <= 16 && reasons.iter().all(valid) {
        true => Ok(reasons),
        false => Err(format!(
            "invalid value for --deny-reasons: {value:?} (at most 16 reasons separated by ;, each one line of at most 256 bytes)"
        )),
    }
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty() && *item != "-")
}

fn default_false(value: &str) -> &str {
    if value.is_empty() { "false" } else { value }
}

/// A size in bytes, with an optional K, M or G (binary) suffix.
fn bytes(name: &str, value: &str) -> Result<usize, String> {
    let value = value.trim();
    let (digits, shift) = match value.char_indices().last() {
        Some((at, 'K' | 'k')) => (&value[..at], 10),
        Some((at, 'M' | 'm')) => (&value[..at], 20),
        Some((at, 'G' | 'g')) => (&value[..at], 30),
        _ => (value, 0),
    };
    let number: usize = parse_flag(name, digits)?;
    number
        .checked_mul(1 << shift)
        .filter(|&total| total >= 64 * 1024)
        .ok_or_else(|| format!("--{name} must be between 64K and what this machine can address"))
}

/// A token given as a value or in a file ("-" for neither).
fn token(value: &str, file: &str) -> Result<Option<String>, String> {
    let value = match (value.trim(), file.trim()) {
        ("-" | "", "-" | "") => return Ok(None),
        (value, "-" | "") => value.to_string(),
        ("-" | "", file) => std::fs::read_to_string(file)
            .map_err(|error| format!("cannot read the token file {file}: {error}"))?,
        _ => return Err("give a token or a token file, not both".into()),
    };
    let value = value.trim().to_string();
    match value.len() >= 16 {
        true => Ok(Some(value)),
        false => Err("a token must be at least 16 characters".into()),
    }
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
        assert_eq!(config.redis, None, "the journal by default");
        assert_eq!(config.deny_reasons, Vec::<String>::new());
        let config = parse(&[], &[("ASKGATE_DENY_REASONS", "not now; ask me first ;")]).unwrap();
        assert_eq!(config.deny_reasons, ["not now", "ask me first"]);
        let config = parse(&[], &[("ASKGATE_STORE", "redis://10.0.0.5:6380/2")]).unwrap();
        let target = config.redis.unwrap();
        assert_eq!(
            (target.host.as_str(), target.port, target.db),
            ("10.0.0.5", 6380, 2)
        );
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
                vec!["--deny-reasons", "a\u{1b}[2J;b"],
                "invalid value for --deny-reasons",
            ),
            (
                vec!["--notify-when", "sometimes"],
                "invalid value for --notify-when",
            ),
            (
                vec!["--notify-ntfy", "https://ntfy.sh"],
                "invalid value for --notify-ntfy",
            ),
            (
                vec!["--header-timeout-secs", "0"],
                "--header-timeout-secs must be more than 0",
            ),
            (
                vec!["--store", "redis:/host"],
                "invalid value for --store: \"redis:/host\": want redis://host:port/db",
            ),
            (
                vec!["--store", "redis://h:99999/0"],
                "invalid value for --store: \"redis://h:99999/0\": not a port",
            ),
        ];
        for (args, expected) in cases {
            let error = parse(&args, &[]).unwrap_err();
            assert!(error.starts_with(expected), "{args:?}: {error}");
        }
    }

    #[test]
    fn tokens_come_from_a_value_or_a_file() {
        let file = std::env::temp_dir().join(format!("askgate-token-{}", std::process::id()));
        std::fs::write(&file, "from-the-file-0123456789\n").unwrap();
        let file = file.display().to_string();
        let config = parse(
            &[
                "--agent-token",
                "agent-0123456789abcdef",
                "--human-token-file",
                &file,
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            config.tokens,
            (
                Some("agent-0123456789abcdef".into()),
                Some("from-the-file-0123456789".into())
            )
        );
        let env = parse(&[], &[("ASKGATE_HUMAN_TOKEN", "human-0123456789abcdef")]).unwrap();
        assert_eq!(env.tokens, (None, Some("human-0123456789abcdef".into())));
        assert!(
            parse(&["--agent-token", "short"], &[]).is_err(),
            "a short token is refused"
        );
        let both = parse(
            &[
                "--agent-token",
                "agent-0123456789abcdef",
                "--agent-token-file",
                &file,
            ],
            &[],
        );
        assert!(both.is_err(), "a value and a file at once is refused");
        std::fs::remove_file(&file).unwrap();
    }
}
