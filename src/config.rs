//! Server configuration: every flag, its default, and its `ASKGATE_<FLAG>`
//! environment variable, in one table.
//!
//! Precedence: command line, then environment, then the default. A value
//! that does not parse is an error naming the flag, never silently ignored.

use crate::notify::{
    self,
    desk::Timing,
    quiet::Quiet,
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
        "-",
        "directory of the journal that keeps prompts, answers and rules across restarts, and of the tokens; \
         none keeps them in memory only (- is $XDG_STATE_HOME/askgate, else ~/.local/state/askgate)",
    ),
    (
        "store",
        "journal",
        "where the state lives: journal (in --data-dir), or redis://[user:password@]host:port/db \
         (rediss:// for TLS; user and password percent-encoded), a log in Redis or Valkey shared \
         by every instance that names it",
    ),
    (
        "store-password-file",
        "-",
        "read the Redis password of --store redis:// from this file (instead of the URL)",
    ),
    (
        "store-ca-file",
        "-",
        "with --store rediss://, trust only the CAs in this PEM file for Redis's certificate \
         (- trusts the system's)",
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
        "auto",
        "open streams (per-kind and /api/events); auto: 1024, or what a memory cgroup's limit leaves for threads of about 40 KiB each",
    ),
    (
        "max-parked",
        "auto",
        "parked long-polls and agents' waits, apart from streams; auto: 1024, or a quarter of what a memory cgroup's limit leaves for threads",
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
    (
        "workers",
        "1",
        "no effect: each request is served on its connection's thread",
    ),
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
        "comma-separated proxy IP addresses whose X-Forwarded-Proto, -Host and -For (the client) are believed",
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
        "notify-ntfy-token-file",
        "-",
        "read the ntfy access token from this file",
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
        "notify-webhook-token-file",
        "-",
        "read the webhook's token from this file",
    ),
    (
        "notify-when",
        "unwatched",
        "unwatched: only when no page of askgate is visible; always: for every new prompt",
    ),
    (
        "notify-grace-secs",
        "20",
        "a page hidden this long ago still holds notifications back (the human may come back)",
    ),
    (
        "notify-escalate-after",
        "0",
        "seconds: notify again, at the highest priority, a prompt still unanswered this long after its notification (0: never)",
    ),
    (
        "notify-escalate-ntfy",
        "-",
        "an ntfy topic URL that escalations also go to (a second phone, say; the --notify-ntfy token is sent)",
    ),
    (
        "quiet-hours",
        "-",
        "HH:MM-HH:MM, local time (22:00-07:00): hold notifications meanwhile and send one summary at the end; prompts keep waiting",
    ),
    (
        "quiet-hours-allow-urgent",
        "",
        "an approval the agent submits with \"urgency\": \"high\" is notified during quiet hours",
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
        "run without tokens: anyone (any local process, any agent) who can reach the server can answer every prompt",
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
    /// `--workers`: accepted for compatibility, with no effect (requests
    /// are served on their connection's thread).
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
        let state_dir = default_data_dir(&env);
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
        Config::from_values(&values, state_dir)
    }

    fn from_values(
        values: &HashMap<&str, String>,
        state_dir: Option<std::path::PathBuf>,
    ) -> Result<Config, String> {
        let get = |name: &str| values[name].as_str();
        let config = Config {
            bind: get("bind").to_string(),
            data_dir: match get("data-dir").trim() {
                "" | "none" => None,
                "-" => state_dir,
                dir => Some(dir.into()),
            },
            redis: redis_target(get("store"), get("store-password-file"))?
                .map(|target| with_ca_file(target, get("store-ca-file")))
                .transpose()?,
            log_level: parse_flag("log-level", get("log-level"))?,
            keepalive: seconds("keepalive-secs", get("keepalive-secs"))?,
            header_timeout: seconds("header-timeout-secs", get("header-timeout-secs"))?,
            write_timeout: seconds("write-timeout-secs", get("write-timeout-secs"))?,
            subscriber_buffer: parse_flag("subscriber-buffer", get("subscriber-buffer"))?,
            max_streams: places("max-streams", get("max-streams"), (1, 1))?,
            max_parked: places("max-parked", get("max-parked"), (1, 4))?,
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
                token("agent-token", get("agent-token"), get("agent-token-file"))?,
                token("human-token", get("human-token"), get("human-token-file"))?,
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
        config.bind_addr()?;
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
    /// `localhost:PORT` means the IPv4 loopback; a bare `PORT` too. Anything
    /// else must be an IP address and port, and a refusal says so.
    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        let value = self.bind.trim();
        let loopback_port = value
            .strip_prefix("localhost:")
            .or_else(|| value.parse::<u16>().is_ok().then_some(value));
        let parsed = match loopback_port {
            Some(port) => port
                .parse::<u16>()
                .ok()
                .map(|port| SocketAddr::from(([127, 0, 0, 1], port))),
            None => value.parse().ok(),
        };
        parsed.ok_or_else(|| {
            format!(
                "invalid value for --bind: {value:?} (want an IP address and port: \
                 127.0.0.1:8787 for this machine only, 0.0.0.0:8787 for every IPv4 \
                 address, [::1]:8787 for IPv6 loopback; localhost:8787 means 127.0.0.1:8787)"
            )
        })
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
        text.push_str(
            "\nA prompt waits 900 s (15 minutes) for its answer unless the agent's submit says\n\
             otherwise (\"timeout_seconds\"; askgate clarify and approve: --timeout SECS).\n",
        );
        text
    }
}

/// The default data directory: `$XDG_STATE_HOME/askgate`, else
/// `$HOME/.local/state/askgate`, out of any working directory an agent
/// works in; `None` (memory only) when neither is set.
pub fn default_data_dir(env: &impl Fn(&str) -> Option<String>) -> Option<std::path::PathBuf> {
    let absolute = |name: &str| {
        env(name)
            .map(std::path::PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    match absolute("XDG_STATE_HOME") {
        Some(state) => Some(state.join("askgate")),
        None => absolute("HOME").map(|home| home.join(".local/state/askgate")),
    }
}

/// The `--notify-*` flags.
fn notify_settings<'a>(get: &impl Fn(&str) -> &'a str) -> Result<notify::Settings, String> {
    let given = |name: &str| Some(get(name).trim()).filter(|v| !v.is_empty() && *v != "-");
    let ntfy_token = secret(
        "notify-ntfy-token",
        get("notify-ntfy-token"),
        get("notify-ntfy-token-file"),
    )?;
    let webhook_token = secret(
        "notify-webhook-token",
        get("notify-webhook-token"),
        get("notify-webhook-token-file"),
    )?;
    fn invalid(name: &'static str) -> impl Fn(String) -> String {
        move |why| format!("invalid value for --{name}: {why}")
    }
    Ok(notify::Settings {
        ntfy: given("notify-ntfy")
            .map(|url| Ntfy::parse(url, ntfy_token.clone()))
            .transpose()
            .map_err(invalid("notify-ntfy"))?,
        webhook: given("notify-webhook")
            .map(|url| Webhook::parse(url, webhook_token))
            .transpose()
            .map_err(invalid("notify-webhook"))?,
        escalate_ntfy: given("notify-escalate-ntfy")
            .map(|url| Ntfy::parse(url, ntfy_token.clone()))
            .transpose()
            .map_err(invalid("notify-escalate-ntfy"))?,
        timing: Timing {
            always: match get("notify-when").trim() {
                "unwatched" => false,
                "always" => true,
                other => {
                    return Err(format!(
                        "invalid value for --notify-when: {other:?} (want unwatched or always)"
                    ));
                }
            },
            grace: seconds("notify-grace-secs", get("notify-grace-secs"))?,
            escalate_after: Some(seconds(
                "notify-escalate-after",
                get("notify-escalate-after"),
            )?)
            .filter(|after| !after.is_zero()),
            quiet: given("quiet-hours")
                .map(Quiet::parse)
                .transpose()
                .map_err(invalid("quiet-hours"))?,
            allow_urgent: parse_flag::<bool>(
                "quiet-hours-allow-urgent",
                default_false(get("quiet-hours-allow-urgent")),
            )?,
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

/// `--store`: the journal, or a `redis://` target with its password from
/// the URL or from `--store-password-file`. An error never shows the
/// password (docs/PROTOCOL.md §8).
fn redis_target(
    url: &str,
    password_file: &str,
) -> Result<Option<crate::store::resp::Target>, String> {
    use crate::store::resp::{Target, without_password};
    let mut target = match url.trim() {
        "" | "journal" => return Ok(None),
        url => Target::parse(url).map_err(|why| {
            let shown = without_password(url);
            format!("invalid value for --store: {shown:?}: {why} (journal or redis://host:port/db)")
        })?,
    };
    let in_file = secret("store-password", "-", password_file)?;
    let in_url = target
        .password
        .as_deref()
        .filter(|password| !password.is_empty());
    match (in_url, in_file) {
        (_, None) => {}
        (None, password) => target.password = password,
        (Some(_), Some(_)) => {
            return Err(
                "give the Redis password in --store or --store-password-file, not both".into(),
            );
        }
    }
    Ok(Some(target))
}

/// `--store-ca-file`: the CAs Redis's certificate is checked against; only
/// with `rediss://`.
fn with_ca_file(
    mut target: crate::store::resp::Target,
    ca_file: &str,
) -> Result<crate::store::resp::Target, String> {
    match (ca_file.trim(), target.tls) {
        ("-" | "", _) => {}
        (_, false) => return Err("--store-ca-file needs --store rediss://".into()),
        (path, true) => target.ca_file = Some(path.into()),
    }
    Ok(target)
}

/// A secret given as a value or in a file (`--NAME` or `--NAME-file`; "-"
/// for neither), trimmed. A file keeps it out of the process's arguments
/// and environment.
fn secret(name: &str, value: &str, file: &str) -> Result<Option<String>, String> {
    let value = match (value.trim(), file.trim()) {
        ("-" | "", "-" | "") => return Ok(None),
        (value, "-" | "") => value.to_string(),
        ("-" | "", file) => std::fs::read_to_string(file)
            .map_err(|error| format!("cannot read --{name}-file {file}: {error}"))?,
        _ => return Err(format!("give --{name} or --{name}-file, not both")),
    };
    let value = value.trim().to_string();
    match value.is_empty() {
        true => Err(format!("--{name}-file {file} is empty")),
        false => Ok(Some(value)),
    }
}

/// A token given as a value or in a file ("-" for neither).
fn token(name: &str, value: &str, file: &str) -> Result<Option<String>, String> {
    let Some(value) = secret(name, value, file)? else {
        return Ok(None);
    };
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

/// A number of places, or `auto`: sized from the memory cgroup's limit
/// (`cgroup.rs`), `share` of it.
fn places(name: &str, value: &str, share: (u64, u64)) -> Result<usize, String> {
    match value.trim() {
        "auto" => Ok(crate::cgroup::places(crate::cgroup::memory_limit(), share)),
        value => parse_flag(name, value),
    }
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
    fn bind_takes_an_address_and_port_or_localhost_and_says_what_it_wants() {
        let bound = |value: &str| parse(&["--bind", value], &[]).map(|c| c.bind_addr().unwrap());
        for (value, expected) in [
            ("127.0.0.1:8787", "127.0.0.1:8787"),
            ("localhost:9000", "127.0.0.1:9000"),
            ("9001", "127.0.0.1:9001"),
            ("0.0.0.0:8787", "0.0.0.0:8787"),
            ("[::1]:8787", "[::1]:8787"),
        ] {
            assert_eq!(bound(value).unwrap().to_string(), expected, "{value}");
        }
        for value in [
            "localhost",
            "example.org:80",
            "127.0.0.1",
            "localhost:99999",
            "",
        ] {
            let error = bound(value).unwrap_err();
            assert!(
                error.contains("127.0.0.1:8787") && error.contains("--bind"),
                "{value}: {error}"
            );
        }
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
                "invalid value for --store: \"redis:/host\": want redis://host:port/db or rediss://",
            ),
            (
                vec!["--store", "redis://h:99999/0"],
                "invalid value for --store: \"redis://h:99999/0\": not a port",
            ),
            (
                vec!["--store", "redis://user:secret@h:99999/0"],
                "invalid value for --store: \"redis://user:***@h:99999/0\": not a port: (not shown: the URL has credentials)",
            ),
        ];
        for (args, expected) in cases {
            let error = parse(&args, &[]).unwrap_err();
            assert!(error.starts_with(expected), "{args:?}: {error}");
        }
    }

    #[test]
    fn the_data_directory_defaults_to_the_users_state_directory() {
        let dir = |env: &[(&str, &str)]| parse(&[], env).unwrap().data_dir;
        let home = ("HOME", "/home/u");
        assert_eq!(dir(&[home]), Some("/home/u/.local/state/askgate".into()));
        let state = ("XDG_STATE_HOME", "/var/state");
        assert_eq!(dir(&[home, state]), Some("/var/state/askgate".into()));
        let relative = ("XDG_STATE_HOME", "state");
        assert_eq!(
            dir(&[home, relative]),
            Some("/home/u/.local/state/askgate".into()),
            "a relative XDG_STATE_HOME is ignored"
        );
        assert_eq!(dir(&[]), None, "nowhere to keep it: memory only");
        let given = parse(&["--data-dir", "/d"], &[home]).unwrap();
        assert_eq!(given.data_dir, Some("/d".into()));
        assert_eq!(parse(&["--data-dir=none"], &[home]).unwrap().data_dir, None);
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

    #[test]
    fn every_secret_may_come_from_a_file() {
        let dir = std::env::temp_dir().join(format!("askgate-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let (ntfy, webhook, redis) = (
            file("ntfy", "tk_from_a_file\n"),
            file("webhook", "hook-secret\n"),
            file("redis", "redis-secret\n"),
        );
        let config = parse(
            &[
                "--notify-ntfy",
                "https://ntfy.example/topic",
                "--notify-ntfy-token-file",
                &ntfy,
                "--notify-webhook",
                "https://hooks.example/in",
                "--notify-webhook-token-file",
                &webhook,
                "--store",
                "redis://me:@10.0.0.5:6380/2",
                "--store-password-file",
                &redis,
            ],
            &[],
        )
        .unwrap();
        let ntfy_token = config.notify.ntfy.as_ref().unwrap().token.clone();
        let webhook_token = config.notify.webhook.as_ref().unwrap().token.clone();
        assert_eq!(ntfy_token.as_deref(), Some("tk_from_a_file"));
        assert_eq!(webhook_token.as_deref(), Some("hook-secret"));
        let target = config.redis.unwrap();
        assert_eq!(
            (target.user.as_deref(), target.password.as_deref()),
            (Some("me"), Some("redis-secret"))
        );
        let refused = [
            vec![
                "--notify-ntfy-token",
                "tk_x",
                "--notify-ntfy-token-file",
                &ntfy,
            ],
            vec![
                "--store",
                "redis://:inline@h",
                "--store-password-file",
                &redis,
            ],
            vec!["--notify-webhook-token-file", "/nonexistent/askgate-secret"],
        ];
        for args in refused {
            assert!(parse(&args, &[]).is_err(), "{args:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
