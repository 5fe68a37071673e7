//! The sinks and their delivery: where a notification goes, and the POST
//! that takes it there over `ureq`, with a timeout and a few retries.
//!
//! A notification is retried only when the sink certainly did not take it:
//! no connection could be made, or the sink answered 429, 502 or 503. A
//! timeout waiting for the answer, or any other status, is not retried,
//! since the sink may have shown it already. Nothing here logs a URL, a
//! body or a token: a webhook's URL may hold its own secret.

use super::capability::Capabilities;
use super::message::{self, Links};
use super::outbox::Job;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde_json::{Value, json};
use std::sync::Arc;
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
    /// A second ntfy topic for escalations only (`--notify-escalate-ntfy`).
    Escalation(Ntfy),
}

/// How a request goes: a JSON body POSTed, or a DELETE.
#[derive(Debug, PartialEq)]
enum Method {
    Post(String),
    Delete,
}

/// No `Debug`: it holds the sink's token.
struct Request<'a> {
    method: Method,
    url: String,
    token: Option<&'a str>,
}

/// What a delivery came to when it did not fail.
#[derive(Debug, PartialEq)]
pub enum Delivered {
    Sent,
    /// The job needs no request to this sink (a clear for a webhook
    /// summary's other prompts, say).
    Nothing,
}

#[derive(Debug, PartialEq)]
pub enum Failure {
    /// The notifier stopped during a retry's wait.
    Stopped,
    Failed(String),
}

/// ntfy's priority for an escalation (its highest).
const ESCALATED: u8 = 5;

impl Sink {
    pub fn name(&self) -> &'static str {
        match self {
            Sink::Ntfy(_) => "ntfy",
            Sink::Webhook(_) => "webhook",
            Sink::Escalation(_) => "ntfy-escalation",
        }
    }

    /// The request a job makes of this sink, if any.
    fn request(
        &self,
        job: &Job,
        links: &Links,
        actions: &[message::Action],
    ) -> Option<Request<'_>> {
        match self {
            Sink::Ntfy(ntfy) | Sink::Escalation(ntfy) => ntfy_request(ntfy, job, links, actions),
            Sink::Webhook(webhook) => Some(Request {
                method: Method::Post(webhook_body(job, links, actions).to_string()),
                url: webhook.url.clone(),
                token: webhook.token.as_deref(),
            }),
        }
    }
}

/// ntfy: a prompt published with its id as the sequence id (so an
/// escalation replaces it), and deleted by it once resolved
/// (`DELETE /<topic>/<sequence id>`, ntfy 2.16 and later).
fn ntfy_request<'a>(
    ntfy: &'a Ntfy,
    job: &Job,
    links: &Links,
    actions: &[message::Action],
) -> Option<Request<'a>> {
    let post = |body: Value| Request {
        method: Method::Post(body.to_string()),
        url: ntfy.server.clone(),
        token: ntfy.token.as_deref(),
    };
    let home = links.home();
    match job {
        Job::Prompt { prompt, escalated } => {
            let mut body = message::ntfy(prompt, &ntfy.topic, links, actions);
            body["sequence_id"] = json!(prompt.id);
            if *escalated {
                escalate(&mut body, ESCALATED);
            }
            Some(post(body))
        }
        Job::Summary {
            session_id,
            approvals,
            questions,
            seq,
            escalated,
        } => {
            let text = message::summary_text(session_id, *approvals, *questions);
            let mut body = message::ntfy_plain(&text, &ntfy.topic, &links.click(session_id));
            body["sequence_id"] = json!(seq);
            if *escalated {
                escalate(&mut body, ESCALATED);
            }
            Some(post(body))
        }
        Job::Resolved { clear, .. } => clear.as_ref().map(|seq| Request {
            method: Method::Delete,
            url: format!("{}/{}/{seq}", ntfy.server, ntfy.topic),
            token: ntfy.token.as_deref(),
        }),
        Job::Held {
            approvals,
            questions,
        } => {
            let text = message::held_text(*approvals, *questions);
            Some(post(message::ntfy_plain(&text, &ntfy.topic, &home)))
        }
        Job::Test => Some(post(message::ntfy_plain(
            &message::test_text(),
            &ntfy.topic,
            &home,
        ))),
    }
}

/// A notification sent again because nobody answered: the highest
/// priority of its scale, and a title that says so.
fn escalate(body: &mut Value, priority: u8) {
    body["priority"] = json!(priority);
    let title = body["title"].as_str().unwrap_or_default();
    body["title"] = json!(format!("Still waiting: {title}"));
}

/// The webhook's JSON of a job; priorities on Gotify's scale (0-10).
fn webhook_body(job: &Job, links: &Links, actions: &[message::Action]) -> Value {
    let home = links.home();
    match job {
        Job::Prompt { prompt, escalated } => {
            let mut body = message::webhook(prompt, links, actions);
            let priority = body["priority"].as_u64().unwrap_or(3) as u8;
            body["priority"] = json!(message::gotify_priority(priority));
            body["escalated"] = json!(escalated);
            if *escalated {
                escalate(&mut body, message::gotify_priority(ESCALATED));
            }
            body
        }
        Job::Summary {
            session_id,
            approvals,
            questions,
            seq,
            escalated,
        } => {
            let text = message::summary_text(session_id, *approvals, *questions);
            let mut body = message::webhook_plain("summary", &text, &links.click(session_id));
            body["escalated"] = json!(escalated);
            if *escalated {
                escalate(&mut body, message::gotify_priority(ESCALATED));
            }
            body["session_id"] = json!(session_id);
            body["approvals"] = json!(approvals);
            body["questions"] = json!(questions);
            body["notification"] = json!(seq);
            body
        }
        Job::Resolved {
            session_id,
            kind,
            id,
            status,
            ..
        } => message::webhook_resolved(session_id, *kind, id, status),
        Job::Held {
            approvals,
            questions,
        } => {
            let text = message::held_text(*approvals, *questions);
            let mut body = message::webhook_plain("held", &text, &home);
            body["approvals"] = json!(approvals);
            body["questions"] = json!(questions);
            body
        }
        Job::Test => message::webhook_plain("test", &message::test_text(), &home),
    }
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
}

impl Delivery {
    pub fn new(
        sink: Sink,
        links: Links,
        capabilities: Option<Arc<Capabilities>>,
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
        }
    }

    pub fn name(&self) -> &'static str {
        self.sink.name()
    }

    /// Sends one job, retrying while the sink did not take it, unless
    /// `stopped` closes meanwhile.
    pub fn deliver(&self, job: &Job, stopped: &Receiver<()>) -> Result<Delivered, Failure> {
        let actions = match (&self.capabilities, job) {
            (Some(capabilities), Job::Prompt { prompt, .. }) => {
                message::actions(prompt, &message::text(prompt), capabilities)
            }
            _ => Vec::new(),
        };
        let Some(request) = self.sink.request(job, &self.links, &actions) else {
            return Ok(Delivered::Nothing);
        };
        let name = self.sink.name();
        let mut waits = BACKOFF.iter();
        loop {
            match self.attempt(&request) {
                Attempt::Sent => {
                    log::debug!("{name} took a notification");
                    return Ok(Delivered::Sent);
                }
                Attempt::Retry(why) => match waits.next() {
                    Some(&wait) => {
                        log::info!("{name} did not take a notification: {why}; again in {wait:?}");
                        match stopped.recv_timeout(wait) {
                            Err(RecvTimeoutError::Timeout) => continue,
                            _ => return Err(Failure::Stopped),
                        }
                    }
                    None => return Err(Failure::Failed(why)),
                },
                Attempt::Failed(why) => return Err(Failure::Failed(why)),
            }
        }
    }

    fn attempt(&self, request: &Request<'_>) -> Attempt {
        let bearer = request.token.map(|token| format!("Bearer {token}"));
        let sent = match &request.method {
            Method::Post(body) => {
                let mut post = self
                    .agent
                    .post(&request.url)
                    .header("Content-Type", "application/json");
                if let Some(bearer) = &bearer {
                    post = post.header("Authorization", bearer);
                }
                post.send(body.as_bytes())
            }
            Method::Delete => {
                let mut delete = self.agent.delete(&request.url);
                if let Some(bearer) = &bearer {
                    delete = delete.header("Authorization", bearer);
                }
                delete.call()
            }
        };
        match sent {
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
