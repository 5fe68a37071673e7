//! `askgate mcp`: an MCP server on stdin and stdout (JSON-RPC 2.0, one
//! message per line) whose tools, `ask_human`, `request_approval` and
//! Claude Code's `permission_prompt`, ask through an askgate server as the
//! agent (docs/PROTOCOL.md §5.3).
//!
//! Invariants: stdout carries JSON-RPC messages only, each written whole on
//! one line under one lock (calls and their progress share it); logs go to
//! stderr. Each `tools/call` waits on a thread of its own, so calls overlap
//! and the reader never blocks on the server. A call that carries a
//! progress token is sent `notifications/progress` while it waits, and
//! none once its result is sent. A `notifications/cancelled` for a call cancels its prompt on the
//! server, and that call answers nothing. When stdin ends, every prompt
//! still waiting is cancelled, and every thread joined, before the process
//! exits.

use crate::cli::api::{Client, Submitted};
use crate::cli::client::Connection;
use crate::cli::permission::{self, PERMISSION_PROMPT};
use crate::cli::receipt;
use crate::cli::tools::{self, Refusal, Submit};
use crate::core::kind::Kind;
use crate::core::validate;
use crate::hooks::{Settings, ToolCall};
use crossbeam_channel::{RecvTimeoutError, Sender};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const MCP_USAGE: &str = "askgate mcp [--session S] [--server URL] [--retry-secs N] [--ca-file PATH] [--progress-secs N] \
    [--timeout SECS] [--on-timeout deny|ask] [--on-error deny|ask] [--allow-tools A,B,...] [--verify-key KEY]   \
    (an MCP server on stdin/stdout with the tools ask_human, request_approval and permission_prompt; \
    --session or ASKGATE_SESSION, default mcp-<pid>; --progress-secs or ASKGATE_MCP_PROGRESS_SECS, default 20, \
    how often a waiting call with a progress token is told of progress; the other flags are the hooks' \
    (docs/agents.md), for permission_prompt, which with --verify-key (ASKGATE_VERIFY_KEY, from askgate receipts key) \
    allows only on a signed receipt for the call that runs)";

/// The longest message read; a prompt's whole body is at most 64 KiB.
const MAX_LINE: u64 = 1 << 20;
/// Calls waiting at once; beyond, a call is refused at once.
const MAX_CALLS: usize = 128;
/// How often a waiting call with a progress token is told of progress:
/// within the 30 s to 60 s a client's timer waits by default.
const PROGRESS_SECS: u64 = 20;

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;

pub fn main(args: &[String]) -> ExitCode {
    let env = |name: &str| std::env::var(name).ok();
    let Options {
        connection,
        settings,
        session_id,
        progress_every,
    } = match parse(args, env) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("askgate mcp: {message}\nusage: {MCP_USAGE}");
            return ExitCode::from(2);
        }
    };
    let client = match connection.client(env("ASKGATE_TOKEN")) {
        Ok(client) => client,
        Err(message) => {
            eprintln!("askgate mcp: {message}");
            return ExitCode::from(2);
        }
    };
    crate::logger::init(log::LevelFilter::Info);
    log::info!("asking {} in session {session_id}", client.base());
    let cwd = std::env::current_dir().map(|dir| dir.to_string_lossy().into_owned());
    let shared = Shared {
        client,
        session_id,
        settings,
        cwd: cwd.unwrap_or_default(),
        progress_every,
        retry: connection.retry,
        out: Mutex::new(Box::new(std::io::stdout())),
        version: Mutex::new(tools::PROTOCOL_VERSIONS[0]),
        calls: Mutex::default(),
    };
    Mcp::new(shared).serve(std::io::stdin().lock());
    ExitCode::SUCCESS
}

/// The command line, read.
#[derive(Debug)]
struct Options {
    connection: Connection,
    /// How `permission_prompt` asks, the session named.
    settings: Settings,
    session_id: String,
    progress_every: Duration,
}

fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Options, String> {
    let mut connection = Connection::from_env(&env);
    let mut settings = Settings::from_env(&env)?;
    let seconds = |text: String| match text.parse::<u64>() {
        Ok(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
        _ => Err(format!("--progress-secs: invalid seconds: {text}")),
    };
    let mut progress_every = match env("ASKGATE_MCP_PROGRESS_SECS") {
        Some(text) => seconds(text).map_err(|why| format!("ASKGATE_MCP_PROGRESS_SECS: {why}"))?,
        None => Duration::from_secs(PROGRESS_SECS),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or(format!("{flag} needs a value"))
        };
        if flag == "--progress-secs" {
            progress_every = seconds(value()?)?;
        } else if !flag.starts_with("--") {
            return Err(format!("unexpected argument: {arg}"));
        } else if !connection.take(flag, &mut value)? {
            settings.set(flag, value()?)?;
        }
    }
    let session_id =
        (settings.session.clone()).unwrap_or_else(|| format!("mcp-{}", std::process::id()));
    validate::session_id(&session_id).map_err(|error| format!("--session: {error}"))?;
    settings.session = Some(session_id.clone());
    Ok(Options {
        connection,
        settings,
        session_id,
        progress_every,
    })
}

/// What the reader and the call threads share.
struct Shared {
    client: Client,
    session_id: String,
    /// How `permission_prompt` asks, as the hooks do.
    settings: Settings,
    /// The directory this runs in: the agent's project.
    cwd: String,
    progress_every: Duration,
    retry: Duration,
    out: Mutex<Box<dyn Write + Send>>,
    /// The revision `initialize` agreed on.
    version: Mutex<&'static str>,
    /// The calls waiting, by their request id as JSON text.
    calls: Mutex<HashMap<String, Arc<Call>>>,
}

/// One `tools/call` in flight.
#[derive(Default)]
struct Call {
    state: Mutex<CallState>,
}

#[derive(Default)]
struct CallState {
    /// Its prompt once submitted: what a cancellation cancels.
    prompt: Option<(Kind, String)>,
    cancelled: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Writes one message on one line; a client that has gone away is not
    /// an error worth more than a log line.
    fn send(&self, message: &Value) {
        let mut out = lock(&self.out);
        if let Err(error) = writeln!(out, "{message}").and_then(|()| out.flush()) {
            log::warn!("cannot write to stdout: {error}");
        }
    }

    fn reply(&self, id: &Value, result: Value) {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "result": result}));
    }

    fn error(&self, id: &Value, code: i64, message: &str) {
        let error = json!({"code": code, "message": message});
        self.send(&json!({"jsonrpc": "2.0", "id": id, "error": error}));
    }

    fn version(&self) -> &'static str {
        *lock(&self.version)
    }

    /// Cancels a prompt on the server and logs how that went.
    fn cancel_prompt(&self, kind: Kind, id: &str) {
        match self.client.cancel(kind, &self.session_id, id) {
            Ok(true) => log::info!("cancelled {} {id}", kind.as_str()),
            Ok(false) => log::info!("{} {id} had already ended", kind.as_str()),
            Err(error) => log::warn!("cannot cancel {} {id}: {error}", kind.as_str()),
        }
    }
}

/// The reader: messages in, calls started and cancelled.
struct Mcp {
    shared: Arc<Shared>,
    /// Call and cancel threads, joined once they end and at the end.
    threads: Vec<JoinHandle<()>>,
}

/// One line of input.
enum Line {
    Message(String),
    TooLong,
    End,
}

fn read_line(input: &mut impl BufRead) -> std::io::Result<Line> {
    let mut bytes = Vec::new();
    input
        .by_ref()
        .take(MAX_LINE + 1)
        .read_until(b'\n', &mut bytes)?;
    if bytes.is_empty() {
        return Ok(Line::End);
    }
    if bytes.len() as u64 > MAX_LINE && bytes.last() != Some(&b'\n') {
        // Skip the rest of the line; the next one is read afresh.
        let mut rest = Vec::new();
        while input.by_ref().take(MAX_LINE).read_until(b'\n', &mut rest)? > 0
            && rest.last() != Some(&b'\n')
        {
            rest.clear();
        }
        return Ok(Line::TooLong);
    }
    Ok(Line::Message(String::from_utf8_lossy(&bytes).into_owned()))
}

impl Mcp {
    fn new(shared: Shared) -> Mcp {
        Mcp {
            shared: Arc::new(shared),
            threads: Vec::new(),
        }
    }

    fn serve(mut self, mut input: impl BufRead) {
        loop {
            match read_line(&mut input) {
                Ok(Line::Message(text)) if text.trim().is_empty() => {}
                Ok(Line::Message(text)) => self.handle(&text),
                Ok(Line::TooLong) => {
                    self.shared
                        .error(&Value::Null, PARSE_ERROR, "a message longer than 1 MiB")
                }
                Ok(Line::End) => break,
                Err(error) => {
                    log::warn!("cannot read stdin: {error}");
                    break;
                }
            }
            self.join_finished();
        }
        self.finish();
    }

    fn handle(&mut self, text: &str) {
        let message: Value = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(error) => {
                return self
                    .shared
                    .error(&Value::Null, PARSE_ERROR, &format!("not JSON: {error}"));
            }
        };
        let Some(message) = message.as_object() else {
            return self.shared.error(
                &Value::Null,
                INVALID_REQUEST,
                "a message is one JSON-RPC object (batches are not supported)",
            );
        };
        let params = message.get("params").cloned().unwrap_or(Value::Null);
        match (
            message.get("method").and_then(Value::as_str),
            message.get("id"),
        ) {
            (Some(method), None) => self.notification(method, &params),
            (Some(method), Some(id)) if id.is_string() || id.is_i64() || id.is_u64() => {
                self.request(method, id, &params)
            }
            (Some(_), Some(_)) => self.shared.error(
                &Value::Null,
                INVALID_REQUEST,
                "a request id is a string or an integer",
            ),
            // A response: this server sends no requests, so it expects none.
            (None, _) if message.contains_key("result") || message.contains_key("error") => {}
            (None, id) => self.shared.error(
                id.unwrap_or(&Value::Null),
                INVALID_REQUEST,
                "a request needs a method",
            ),
        }
    }

    fn request(&mut self, method: &str, id: &Value, params: &Value) {
        let shared = &self.shared;
        match method {
            "initialize" => {
                let requested = params["protocolVersion"].as_str();
                let version = tools::negotiate(requested);
                *lock(&shared.version) = version;
                log::info!(
                    "{} asked for MCP {}, speaking {version}",
                    params["clientInfo"]["name"].as_str().unwrap_or("a client"),
                    requested.unwrap_or("(none)")
                );
                shared.reply(id, initialize_result(version));
            }
            "ping" => shared.reply(id, json!({})),
            "tools/list" => shared.reply(id, tools::list(shared.version())),
            "tools/call" => self.call(id, params),
            other => shared.error(id, METHOD_NOT_FOUND, &format!("method not found: {other}")),
        }
    }

    fn notification(&mut self, method: &str, params: &Value) {
        match method {
            "notifications/cancelled" => match params.get("requestId") {
                Some(id) => self.cancel(id, params["reason"].as_str().unwrap_or("no reason")),
                None => log::warn!("a cancellation without a requestId"),
            },
            "notifications/initialized" => log::info!("the client is ready"),
            _ => {}
        }
    }

    /// Starts a `tools/call` on a thread of its own.
    fn call(&mut self, id: &Value, params: &Value) {
        let shared = &self.shared;
        let Some(name) = params["name"].as_str() else {
            return shared.error(id, INVALID_PARAMS, "tools/call needs params.name");
        };
        let arguments = match params.get("arguments") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(arguments)) => arguments.clone(),
            Some(_) => {
                return shared.error(id, INVALID_PARAMS, "params.arguments must be an object");
            }
        };
        let (submit, finish) = match name {
            PERMISSION_PROMPT => {
                match permission::plan(&arguments, &shared.settings, &shared.cwd) {
                    permission::Plan::Answer(result) => return shared.reply(id, result),
                    permission::Plan::Ask { submit, call } => {
                        (submit, Finish::Permission(Box::new(call)))
                    }
                }
            }
            _ => match tools::submit(name, &arguments, &shared.session_id) {
                Ok(submit) => (submit, Finish::Tool),
                Err(refusal) => return refuse(shared, id, refusal),
            },
        };
        let progress_token = match &params["_meta"]["progressToken"] {
            token @ (Value::String(_) | Value::Number(_)) => Some(token.clone()),
            _ => None,
        };
        let key = id.to_string();
        let call = Arc::new(Call::default());
        {
            let mut calls = lock(&shared.calls);
            if calls.contains_key(&key) {
                drop(calls);
                return shared.error(
                    id,
                    INVALID_REQUEST,
                    &format!("request {key} is already in flight"),
                );
            }
            if calls.len() >= MAX_CALLS {
                drop(calls);
                let message = format!("too many calls waiting at once (limit {MAX_CALLS})");
                return shared.reply(id, tools::text_result(&message, true));
            }
            calls.insert(key.clone(), call.clone());
        }
        let shared = self.shared.clone();
        let id = id.clone();
        self.spawn("askgate-mcp-call", move || {
            let progress = progress_token.map(|token| Progress::start(shared.clone(), token));
            run_call(&shared, &call, &id, submit, finish, progress)
        });
    }

    /// A `notifications/cancelled`: the call stops waiting, its prompt is
    /// cancelled on the server, and it answers nothing. Unknown or finished
    /// calls are ignored, as the specification asks.
    fn cancel(&mut self, request_id: &Value, reason: &str) {
        let key = request_id.to_string();
        let Some(call) = lock(&self.shared.calls).get(&key).cloned() else {
            log::info!("a cancellation of {key}, which is not waiting");
            return;
        };
        log::info!("the client cancelled {key} ({reason})");
        self.cancel_call(&call);
    }

    fn cancel_call(&mut self, call: &Call) {
        let prompt = {
            let mut state = lock(&call.state);
            state.cancelled = true;
            state.prompt.clone()
        };
        // Not yet submitted: the call cancels its prompt itself once it has one.
        if let Some((kind, id)) = prompt {
            let shared = self.shared.clone();
            self.spawn("askgate-mcp-cancel", move || {
                shared.cancel_prompt(kind, &id)
            });
        }
    }

    fn spawn(&mut self, name: &str, work: impl FnOnce() + Send + 'static) {
        match std::thread::Builder::new().name(name.into()).spawn(work) {
            Ok(thread) => self.threads.push(thread),
            Err(error) => log::error!("cannot start a thread: {error}"),
        }
    }

    fn join_finished(&mut self) {
        let (finished, running) = std::mem::take(&mut self.threads)
            .into_iter()
            .partition(|thread| thread.is_finished());
        self.threads = running;
        for thread in finished {
            let _ = thread.join();
        }
    }

    /// stdin has ended: the client is gone, so nobody will read an answer.
    /// Every prompt still waiting is cancelled, then every thread joined.
    fn finish(mut self) {
        let waiting: Vec<Arc<Call>> = lock(&self.shared.calls).values().cloned().collect();
        if !waiting.is_empty() {
            log::info!(
                "stdin ended; cancelling {} waiting prompt(s)",
                waiting.len()
            );
        }
        for call in waiting {
            self.cancel_call(&call);
        }
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn initialize_result(version: &str) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "askgate", "version": env!("CARGO_PKG_VERSION")},
        "instructions": "ask_human asks the human a question and returns the answer; request_approval asks \
            them to approve a command before you run it. Both wait until the human answers in the askgate page. \
            permission_prompt is Claude Code's --permission-prompt-tool, not for the model to call.",
    })
}

/// A call refused before anything is asked.
fn refuse(shared: &Shared, id: &Value, refusal: Refusal) {
    match refusal {
        Refusal::UnknownTool(name) => {
            shared.error(id, INVALID_PARAMS, &format!("unknown tool: {name}"))
        }
        Refusal::Arguments(message) => shared.reply(id, tools::text_result(&message, true)),
    }
}

/// How a call's outcome becomes its result.
enum Finish {
    /// `ask_human` and `request_approval`: `tools::outcome`.
    Tool,
    /// `permission_prompt`: the verdict on this tool call.
    Permission(Box<ToolCall>),
}

/// A call's thread: submit, wait, answer (unless cancelled). Its progress
/// ends before its result is sent.
fn run_call(
    shared: &Shared,
    call: &Call,
    id: &Value,
    submit: Submit,
    finish: Finish,
    progress: Option<Progress>,
) {
    let kind = submit.kind;
    let outcome = ask(shared, call, &submit);
    drop(progress);
    lock(&shared.calls).remove(&id.to_string());
    if lock(&call.state).cancelled {
        return;
    }
    let now = receipt::now();
    let result = match (finish, outcome) {
        (_, Ok(None)) => return,
        (Finish::Tool, Ok(Some((outcome, _)))) => tools::outcome(kind, &outcome, shared.version()),
        (Finish::Tool, Err(message)) => tools::text_result(&message, true),
        (Finish::Permission(tool_call), Ok(Some((outcome, prompt_id)))) => {
            let waited = Ok((&outcome, prompt_id.as_str()));
            permission::outcome(&shared.settings, &tool_call, &submit.body, waited, now)
        }
        (Finish::Permission(tool_call), Err(message)) => {
            let body = &submit.body;
            permission::outcome(&shared.settings, &tool_call, body, Err(&message), now)
        }
    };
    shared.reply(id, result);
}

/// The progress of one waiting call: a thread that sends
/// `notifications/progress` every `progress_every` (progress 1, 2, 3...,
/// and how long the human has been waited for), until dropped; the drop
/// joins it, so no notification follows the call's result.
struct Progress {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    fn start(shared: Arc<Shared>, token: Value) -> Progress {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let every = shared.progress_every;
        let started = Instant::now();
        let tick = move || {
            let mut count: u64 = 0;
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                count += 1;
                let waited = started.elapsed().as_secs();
                shared.send(&progress_notification(&token, count, waited));
            }
        };
        let thread = std::thread::Builder::new()
            .name("askgate-mcp-progress".into())
            .spawn(tick);
        if let Err(error) = &thread {
            log::error!("cannot start a thread: {error}");
        }
        Progress {
            stop: Some(stop),
            thread: thread.ok(),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn progress_notification(token: &Value, count: u64, waited_secs: u64) -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {
        "progressToken": token,
        "progress": count,
        "message": format!("waiting for the human ({waited_secs} s)"),
    }})
}

/// Submits the prompt and waits for its outcome, with the prompt's id;
/// `None` when cancelled.
fn ask(shared: &Shared, call: &Call, submit: &Submit) -> Result<Option<(Value, String)>, String> {
    let kind = submit.kind;
    let submitted = shared.client.submit(kind, &submit.body)?;
    let prompt_id = submitted.id(kind);
    if let Submitted::Settled(outcome) = submitted {
        return Ok(Some((outcome, prompt_id)));
    }
    log::info!("asked {} {prompt_id}", kind.as_str());
    let cancelled = {
        let mut state = lock(&call.state);
        state.prompt = Some((kind, prompt_id.clone()));
        state.cancelled
    };
    if cancelled {
        shared.cancel_prompt(kind, &prompt_id);
        return Ok(None);
    }
    let abandoned = || lock(&call.state).cancelled;
    let outcome = shared.client.wait(
        kind,
        &shared.session_id,
        &prompt_id,
        shared.retry,
        &abandoned,
    )?;
    Ok(outcome.map(|outcome| (outcome, prompt_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn flags_and_the_environment() {
        let env = |name: &str| match name {
            "ASKGATE_SESSION" => Some("from-env".to_string()),
            "ASKGATE_URL" => Some("http://h:1".to_string()),
            _ => None,
        };
        let options = parse(&[], env).unwrap();
        assert_eq!(
            (
                options.connection.server.as_str(),
                options.session_id.as_str()
            ),
            ("http://h:1", "from-env")
        );
        assert_eq!(options.settings.session.as_deref(), Some("from-env"));
        assert_eq!(options.progress_every, Duration::from_secs(PROGRESS_SECS));
        let flags = args(&[
            "--session=s1",
            "--server",
            "http://x:2",
            "--retry-secs",
            "5",
        ]);
        let options = parse(&flags, env).unwrap();
        assert_eq!(
            (
                options.connection.server.as_str(),
                options.session_id.as_str()
            ),
            ("http://x:2", "s1")
        );
        assert_eq!(options.connection.retry.as_secs(), 5);
        let options = parse(&[], |_| None).unwrap();
        assert_eq!(options.session_id, format!("mcp-{}", std::process::id()));
        assert_eq!(options.settings.session, Some(options.session_id));
        // The hooks' flags, for permission_prompt, and the progress period.
        let flags = args(&[
            "--timeout",
            "90",
            "--allow-tools=Read",
            "--progress-secs",
            "2",
        ]);
        let progress = |name: &str| (name == "ASKGATE_MCP_PROGRESS_SECS").then(|| "7".to_string());
        let options = parse(&flags, progress).unwrap();
        assert_eq!(options.settings.timeout_seconds, 90);
        assert_eq!(options.settings.allow_tools, Some(vec!["Read".to_string()]));
        assert_eq!(options.progress_every, Duration::from_secs(2));
        let options = parse(&[], progress).unwrap();
        assert_eq!(options.progress_every, Duration::from_secs(7));
        for bad in [
            &["--session", "a b"][..],
            &["--choice", "x"],
            &["extra"],
            &["--server"],
            &["--progress-secs", "0"],
            &["--timeout", "soon"],
        ] {
            assert!(parse(&args(bad), |_| None).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lines_are_read_whole_and_overlong_ones_skipped() {
        let long = "x".repeat(MAX_LINE as usize + 10);
        let text = format!("{{\"a\":1}}\n{long}\n\nlast");
        let mut input = std::io::Cursor::new(text.into_bytes());
        let mut lines = Vec::new();
        loop {
            match read_line(&mut input).unwrap() {
                Line::Message(text) => lines.push(text),
                Line::TooLong => lines.push("too long".into()),
                Line::End => break,
            }
        }
        assert_eq!(lines, ["{\"a\":1}\n", "too long", "\n", "last"]);
    }
}
