//! The sinks and their delivery: where a notification goes, and the POST
//! that takes it there over `ureq`, with a timeout and a few retries.
//!
//! A notification is retried only when the sink certainly did not take it:
//! no connection could be made, or the sink answered 429, 502 or 503. A
//! timeout waiting for the answer, or any other status, is not retried,
//! since the sink may have shown it already. Nothing here logs a URL, a
//! body or a token: a webhook's URL may hold its own secret.

use super::SinkCounts;
use super::capability::Capabilities;
use super::message::{self, Links};
use crate::core::prompt::Prompt;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use ureq::Agent;

/// Attempts per notification, and the waits between them.
const BACKOFF: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(4)];

/// An ntfy topic: `https://ntfy.sh/mytopic` is the server `https://ntfy.sh`
/// and the topic `mytopic`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ntfy {
    pub server: String,
    pub topic: String,
    /// An ntfy access token (`tk_...`), sent as `Authorization: Bearer`.
    pub token: Option<String>,
}

/// A URL that takes askgate's webhook JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Webhook {
    pub url: String,
    /// Sent as `Authorization: Bearer` (Gotify takes its app token so).
    pub token: Option<String>,
}

impl Ntfy {
    pub fn parse(url: &str, token: Option<String>) -> Result<Ntfy, String> {
        let url = http_url(url)?;
        let (server, topic) = url.rsplit_once('/').ok_or("no topic")?;
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if server.ends_with('/')
            || topic.is_empty()
            || topic.len() > 64
            || !topic.chars().all(valid)
        {
            return Err("it must end with a topic: 1 to 64 of A-Z a-z 0-9 _ -".into());
        }
        Ok(Ntfy {
            server: server.to_string(),
            topic: topic.to_string(),
            token,
        })
    }
}

impl Webhook {
    pub fn parse(url: &str, token: Option<String>) -> Result<Webhook, String> {
        Ok(Webhook {
            url: http_url(url)?.to_string(),
            token,
        })
    }
}

/// An `http://` or `https://` URL with a host, without a trailing slash.
fn http_url(url: &str) -> Result<&str, String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("it must start with http:// or https://")?;
    match rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
        true => Err("it must name a host".into()),
        false => Ok(url),
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Sink {
    Ntfy(Ntfy),
    Webhook(Webhook),
}

impl Sink {
    pub fn name(&self) -> &'static str {
        match self {
            Sink::Ntfy(_) => "ntfy",
            Sink::Webhook(_) => "webhook",
        }
    }

    /// Where to POST, the body, and the bearer token.
    fn request(&self, prompt: &Prompt, links: &Links, actions: &[message::Action]) -> Request<'_> {
        match self {
            Sink::Ntfy(ntfy) => Request {
                url: &ntfy.server,
                body: message::ntfy(prompt, &ntfy.topic, links, actions).to_string(),
                token: ntfy.token.as_deref(),
            },
            Sink::Webhook(webhook) => Request {
                url: &webhook.url,
                body: message::webhook(prompt, links, actions).to_string(),
                token: webhook.token.as_deref(),
            },
        }
    }
}

struct Request<'a> {
    url: &'a str,
    body: String,
    token: Option<&'a str>,
}

/// What one attempt came to.
enum Attempt {
    Sent,
    /// The sink did not take it; worth another try.
    Retry(String),
    Failed(String),
}

/// One sink's delivery, owned by its thread.
pub struct Delivery {
    sink: Sink,
    agent: Agent,
    links: Links,
    /// `None` when notifications carry no buttons.
    capabilities: Option<Arc<Capabilities>>,
    counts: Arc<SinkCounts>,
}

impl Delivery {
    pub fn new(
        sink: Sink,
        links: Links,
        capabilities: Option<Arc<Capabilities>>,
        counts: Arc<SinkCounts>,
        timeout: Duration,
    ) -> Delivery {
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(crate::cli::api::system_roots())
            .build();
        let config = Agent::config_builder()
            .http_status_as_error(false)
            // Straight to the sink: its token goes nowhere else.
            .proxy(None)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .user_agent(concat!("askgate/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls);
        Delivery {
            sink,
            agent: config.build().new_agent(),
            links,
            capabilities,
            counts,
        }
    }

    /// Sends one notification, retrying while the sink did not take it,
    /// unless `stopped` closes meanwhile.
    pub fn deliver(&self, prompt: &Prompt, stopped: &Receiver<()>) {
        let actions = match &self.capabilities {
            Some(capabilities) => message::actions(prompt, &message::text(prompt), capabilities),
            None => Vec::new(),
        };
        let request = self.sink.request(prompt, &self.links, &actions);
        let name = self.sink.name();
        let mut waits = BACKOFF.iter();
        loop {
            let why = match self.attempt(&request) {
                Attempt::Sent => {
                    self.counts.sent.fetch_add(1, Ordering::Relaxed);
                    log::debug!("notified {name} of {}", prompt.id);
                    return;
                }
                Attempt::Retry(why) => match waits.next() {
                    Some(&wait) => {
                        log::info!(
                            "{name} did not take the notification of {}: {why}; again in {wait:?}",
                            prompt.id
                        );
                        match stopped.recv_timeout(wait) {
                            Err(RecvTimeoutError::Timeout) => continue,
                            _ => return,
                        }
                    }
                    None => why,
                },
                Attempt::Failed(why) => why,
            };
            self.counts.failed.fetch_add(1, Ordering::Relaxed);
            log::warn!("notifying {name} of {} failed: {why}", prompt.id);
            return;
        }
    }

    fn attempt(&self, request: &Request<'_>) -> Attempt {
        let mut post = self
            .agent
            .post(request.url)
            .header("Content-Type", "application/json");
        if let Some(token) = request.token {
            post = post.header("Authorization", format!("Bearer {token}"));
        }
        match post.send(request.body.as_bytes()) {
            Ok(response) => match response.status().as_u16() {
                200..=299 => Attempt::Sent,
                status @ (429 | 502 | 503) => Attempt::Retry(format!("status {status}")),
                status => Attempt::Failed(format!("status {status}")),
            },
            Err(error) if not_taken(&error) => Attempt::Retry(error.to_string()),
            Err(error) => Attempt::Failed(error.to_string()),
        }
    }
}

/// Errors after which the sink cannot have the notification: nothing was
/// sent to it.
fn not_taken(error: &ureq::Error) -> bool {
    use ureq::Timeout;
    match error {
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => true,
        ureq::Error::Timeout(Timeout::Resolve | Timeout::Connect) => true,
        ureq::Error::Io(error) => error.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ntfy_url_names_its_server_and_topic() {
        let ntfy = Ntfy::parse("https://ntfy.example/base/askgate_1/", None).unwrap();
        assert_eq!(
            (ntfy.server.as_str(), ntfy.topic.as_str()),
            ("https://ntfy.example/base", "askgate_1")
        );
        for bad in [
            "ntfy.sh/x",
            "https://ntfy.sh",
            "https://ntfy.sh/a b",
            "https:///x",
            "https://h/t?x",
        ] {
            assert!(Ntfy::parse(bad, None).is_err(), "{bad}");
        }
        assert!(Webhook::parse("http://127.0.0.1:9/hook", None).is_ok());
        assert!(Webhook::parse("ftp://x", None).is_err());
    }
}
