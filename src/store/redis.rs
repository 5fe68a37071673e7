//! The replicated log in Redis (or Valkey): opaque records, each tagged
//! with the version it follows (`base`) and the one it reaches, appended
//! by compare-and-append, plus a snapshot, a lease and a channel. Knows
//! nothing of prompts, like the journal.
//!
//! Keys (all under one prefix, `askgate:`):
//! - `version`: the version the log reaches (a string; absent is 0).
//! - `log`: a stream; the record reaching version V has the id `V-0` and
//!   the fields `b` (its base) and `r` (its bytes).
//! - `snapshot`: a hash of `version` and `state`, the state at that version;
//!   the log before the previous snapshot is trimmed when a newer one lands.
//! - `turn-until`: the writer that lost the last race, whose append goes
//!   next (a few milliseconds at most), and until when (`writer ms`); in
//!   Redis's memory only, never in its AOF. (Before, `turn`, with a TTL:
//!   a new name, so that during a rolling upgrade neither build reads the
//!   other's turn, which without a TTL an older build would take as held
//!   for ever; turns are fairness only, compare-and-append is the order.)
//! - `lease`: who decides the time-driven changes (expiry, retention), with
//!   a TTL its holder renews.
//! - `audit`: a stream of audit lines (the field `line`), and
//!   `audit-bytes`, the bytes of lines it holds, capped as `audit` says.
//! - `receipts_key`: the key that signs receipts, the same for every
//!   instance, set by the first to start.
//! - `notify_key`: the key of the notifications' capabilities, likewise.
//! - the channel `askgate:changes`: every appended record, as
//!   `base version bytes`, published by the same script that appends it.
//!
//! Invariants: a record is appended only when its base is the current
//! version, and the append, the new version and the publish happen in one
//! script, so every instance sees one total order. `Link` is the one
//! command connection, behind a mutex: holding it is holding the right to
//! append for this instance.

use super::resp::{self, Conn, Reply, Target};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long a connect, a command or a read may take before Redis counts
/// as unreachable.
pub const TIMEOUT: Duration = Duration::from_secs(2);

const PREFIX: &str = "askgate:";

/// Audit lines added by one script call at most.
const AUDIT_BATCH: usize = 256;
/// Audit lines the shared stream keeps (`askgate:audit`) at most.
const AUDIT_KEPT: usize = 100_000;
/// Bytes of audit lines the shared stream keeps at most: as much as an
/// instance's `audit.log` and `audit.log.1` together.
pub const AUDIT_MAX_BYTES: u64 = 16 << 20;

/// Adds the audit lines ARGV[3..] and trims the oldest until the stream
/// holds at most ARGV[1] lines and ARGV[2] bytes of lines; KEYS[2] counts
/// those bytes, measured once over the whole stream when it is missing (a
/// stream an older askgate wrote, or a counter someone deleted).
const AUDIT: &str = r"
local function size(entry)
  local total = 0
  for i = 2, #entry[2], 2 do total = total + #entry[2][i] end
  return total
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  local total, from = 0, '-'
  repeat
    local batch = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 1000)
    for _, entry in ipairs(batch) do total = total + size(entry) end
    if #batch > 0 then from = '(' .. batch[#batch][1] end
  until #batch < 1000
  redis.call('SET', KEYS[2], total)
end
local added = 0
for i = 3, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'line', ARGV[i])
  added = added + #ARGV[i]
end
local bytes = redis.call('INCRBY', KEYS[2], added)
local kept, cap = tonumber(ARGV[1]), tonumber(ARGV[2])
local count = redis.call('XLEN', KEYS[1])
while bytes > cap or count > kept do
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 100)
  if #oldest == 0 then
    redis.call('SET', KEYS[2], 0)
    return 0
  end
  for _, entry in ipairs(oldest) do
    if bytes <= cap and count <= kept then break end
    redis.call('XDEL', KEYS[1], entry[1])
    bytes = redis.call('DECRBY', KEYS[2], size(entry))
    count = count - 1
  end
end
return bytes
";

/// Compare-and-append of one record or several (a group commit: one
/// script call, one fsync), with turns: a writer that lost the race (the
/// log moved past its first base) is named in KEYS[3] for ARGV[5] ms,
/// during which the others' appends are refused as if the log had moved,
/// so that an instance whose writers follow each other at once cannot
/// starve the others (ARGV[4] names the writer). ARGV[6..] are the records,
/// three arguments each (base, version, bytes), each following the one
/// before (checked before anything is written: a script is not undone):
/// each is its own stream entry and its own message, as if appended
/// alone, so readers see one entry per operation. The turn is not
/// written to the AOF nor to replicas (`redis.set_repl`), and ends at the
/// time it holds (Redis's `TIME`), not by a TTL, whose expiry Redis would
/// write as a `DEL`: it lives a few milliseconds, and an append that lost
/// then costs Redis no fsync of its own (with `appendfsync always`, every
/// reply of a turn of Redis's loop that wrote anything waits for one).
const APPEND: &str = r"
local current = redis.call('GET', KEYS[1]) or '0'
local kept = redis.call('GET', KEYS[3])
local clock = redis.call('TIME')
local now = clock[1] * 1000 + math.floor(clock[2] / 1000)
local turn = nil
if kept then
  local space = string.find(kept, ' ', 1, true)
  local ends = space and tonumber(string.sub(kept, space + 1))
  -- Ended, or further ahead than a turn lasts (Redis's clock stepped back).
  if ends and ends > now and ends <= now + ARGV[5] then
    turn = string.sub(kept, 1, space - 1)
  end
end
if current ~= ARGV[6] or (turn and turn ~= ARGV[4]) then
  if current ~= ARGV[6] and not turn then
    redis.set_repl(redis.REPL_NONE)
    redis.call('SET', KEYS[3], ARGV[4] .. ' ' .. (now + ARGV[5]))
  end
  return {0, current, redis.call('XRANGE', KEYS[2], ARGV[2], '+', 'COUNT', ARGV[3])}
end
local last = current
for i = 6, #ARGV, 3 do
  if ARGV[i] ~= last then return redis.error_reply('askgate: records that do not follow') end
  last = ARGV[i + 1]
end
if kept then
  redis.set_repl(redis.REPL_NONE)
  redis.call('DEL', KEYS[3])
  redis.set_repl(redis.REPL_ALL)
end
for i = 6, #ARGV, 3 do
  redis.call('XADD', KEYS[2], ARGV[i + 1] .. '-0', 'b', ARGV[i], 'r', ARGV[i + 2])
  redis.call('PUBLISH', ARGV[1], ARGV[i] .. ' ' .. ARGV[i + 1] .. ' ' .. ARGV[i + 2])
end
redis.call('SET', KEYS[1], last)
return {1, last}
";

const TAIL: &str = r"
local current = redis.call('GET', KEYS[1]) or '0'
return {current, redis.call('XRANGE', KEYS[2], ARGV[1], '+', 'COUNT', ARGV[2])}
";

const PUT_SNAPSHOT: &str = r"
local previous = redis.call('HGET', KEYS[1], 'version') or '0'
if tonumber(ARGV[1]) <= tonumber(previous) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'state', ARGV[2])
redis.call('XTRIM', KEYS[2], 'MINID', previous .. '-0')
return 1
";

const LEASE: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
";

/// One record of the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The version the log was at before this record.
    pub base: u64,
    /// The version the log reaches with it.
    pub version: u64,
    pub bytes: Vec<u8>,
}

/// Why an append did not happen, as far as this instance can tell.
#[derive(Debug)]
pub enum AppendError {
    /// Redis could not be reached, or refused the script: not appended.
    NotMade(io::Error),
    /// The connection failed after the script was sent and Redis cannot be
    /// reached to look: appended only if Redis took it before it went away.
    Unknown(io::Error),
}

impl From<AppendError> for io::Error {
    fn from(error: AppendError) -> io::Error {
        match error {
            AppendError::NotMade(error) | AppendError::Unknown(error) => error,
        }
    }
}

/// How one attempt failed: Redis answered (with an error), or the
/// connection failed on the way.
enum Failure {
    Answered(io::Error),
    Lost(io::Error),
}

impl Failure {
    fn not_made(self) -> AppendError {
        match self {
            Failure::Answered(error) | Failure::Lost(error) => AppendError::NotMade(error),
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum Appended {
    Done,
    /// The log is not at the base asked for; it is at `version`, and
    /// `missed` holds the first records after the base (when there are any).
    Behind {
        version: u64,
        missed: Vec<Record>,
    },
}

/// The records after a version, and the version the log reaches.
#[derive(Debug)]
pub struct Tail {
    pub version: u64,
    pub records: Vec<Record>,
}

pub struct RedisLog {
    target: Target,
    /// This log's writer, as a turn names it (`APPEND`).
    writer: String,
    conn: Mutex<Option<Conn>>,
    up: AtomicBool,
    /// Why Redis was last unreachable, for `/healthz` and the log.
    last_error: Mutex<String>,
}

impl RedisLog {
    pub fn new(target: Target) -> RedisLog {
        static LOGS: AtomicU64 = AtomicU64::new(0);
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        RedisLog {
            writer: format!(
                "{}-{}-{}",
                std::process::id(),
                since_epoch.as_nanos(),
                LOGS.fetch_add(1, Ordering::Relaxed)
            ),
            target,
            conn: Mutex::new(None),
            up: AtomicBool::new(false),
            last_error: Mutex::new(String::new()),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The command connection, for this instance's appends and reads.
    pub fn link(&self) -> Link<'_> {
        Link {
            conn: self.conn.lock().unwrap_or_else(PoisonError::into_inner),
            log: self,
        }
    }

    /// Whether the last command (or subscription) reached Redis, and if
    /// not, why.
    pub fn status(&self) -> Result<(), String> {
        match self.up.load(Ordering::Acquire) {
            true => Ok(()),
            false => Err(self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()),
        }
    }

    fn mark(&self, result: &io::Result<Reply>) {
        match result {
            Ok(_) => {
                if !self.up.swap(true, Ordering::AcqRel) {
                    log::info!("redis {} reached", self.target);
                }
            }
            Err(error) => self.down(error),
        }
    }

    pub fn down(&self, error: &io::Error) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error.to_string();
        if self.up.swap(false, Ordering::AcqRel) {
            log::warn!("redis {} unreachable: {error}", self.target);
        }
    }

    /// A connection subscribed to the channel of appended records.
    pub fn follow(&self) -> io::Result<Follower> {
        let mut conn = Conn::connect(&self.target, TIMEOUT)?;
        let channel = format!("{PREFIX}changes");
        resp::ok(conn.call(&[b"SUBSCRIBE", channel.as_bytes()])?)?;
        Ok(Follower { conn })
    }
}

/// How long a writer that lost the race has the next turn (`APPEND`).
const TURN: Duration = Duration::from_millis(5);

/// Records an append that lost the race brings back, so that the instance
/// can catch up without another round trip.
const MISSED: usize = 64;

fn behind(version: u64) -> Appended {
    Appended::Behind {
        version,
        missed: Vec::new(),
    }
}

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

pub struct Link<'a> {
    conn: MutexGuard<'a, Option<Conn>>,
    log: &'a RedisLog,
}

impl Link<'_> {
    /// One command, connecting first when there is no connection; an I/O
    /// error drops the connection and an error reply is an error too.
    fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        let result = self.call_once(args);
        self.log.mark(&result);
        result.and_then(resp::ok)
    }

    fn call_once(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        if self.conn.is_none() {
            *self.conn = Some(Conn::connect(&self.log.target, TIMEOUT)?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let result = conn.call(args);
        if result.is_err() {
            *self.conn = None;
        }
        result
    }

    fn script(&mut self, body: &str, keys: &[&str], args: &[&[u8]]) -> io::Result<Reply> {
        let count = keys.len().to_string();
        let mut all: Vec<&[u8]> = vec![b"EVAL", body.as_bytes(), count.as_bytes()];
        all.extend(keys.iter().map(|k| k.as_bytes()));
        all.extend_from_slice(args);
        self.call(&all)
    }

    /// Appends the records, each following the one before, if the log is
    /// at the first one's base: all of them in one script call, or none.
    /// When the connection fails mid-command (Redis restarted since it was
    /// last used, or went away), connects again and looks: the first
    /// record is there (`Done`: the script is atomic), the log is still at
    /// its base (tried once more), or it moved (`Behind`). Only when Redis
    /// cannot be reached then is the outcome `Unknown`.
    pub fn append(&mut self, records: &[Record]) -> Result<Appended, AppendError> {
        let Some(first) = records.first() else {
            return Ok(Appended::Done);
        };
        if self.conn.is_none() {
            self.connect().map_err(AppendError::NotMade)?;
        }
        let lost = match self.try_append(records) {
            Err(Failure::Lost(error)) => error,
            result => return result.map_err(Failure::not_made),
        };
        let tail = self
            .tail(first.base, 1)
            .map_err(|_| AppendError::Unknown(lost))?;
        match tail.records.first() {
            Some(record) if record.base == first.base && record.version == first.version => {
                match record.bytes == first.bytes {
                    true => Ok(Appended::Done),
                    false => Ok(behind(tail.version)),
                }
            }
            _ if tail.version == first.base => {
                self.try_append(records).map_err(|failure| match failure {
                    Failure::Lost(error) => AppendError::Unknown(error),
                    Failure::Answered(error) => AppendError::NotMade(error),
                })
            }
            _ => Ok(behind(tail.version)),
        }
    }

    fn connect(&mut self) -> io::Result<()> {
        let connected = Conn::connect(&self.log.target, TIMEOUT);
        match connected {
            Ok(conn) => *self.conn = Some(conn),
            Err(error) => {
                self.log.down(&error);
                return Err(error);
            }
        }
        Ok(())
    }

    fn try_append(&mut self, records: &[Record]) -> Result<Appended, Failure> {
        let base = records.first().map_or(0, |record| record.base);
        let channel = key("changes");
        let (start, count) = (format!("{}-0", base + 1), MISSED.to_string());
        let turn = TURN.as_millis().to_string();
        let numbers: Vec<(String, String)> = records
            .iter()
            .map(|record| (record.base.to_string(), record.version.to_string()))
            .collect();
        let mut args: Vec<&[u8]> = vec![
            channel.as_bytes(),
            start.as_bytes(),
            count.as_bytes(),
            self.log.writer.as_bytes(),
            turn.as_bytes(),
        ];
        for (record, (base, version)) in records.iter().zip(&numbers) {
            args.extend([base.as_bytes(), version.as_bytes(), &record.bytes[..]]);
        }
        let keys = [key("version"), key("log"), key("turn-until")];
        let mut all: Vec<&[u8]> = vec![b"EVAL", APPEND.as_bytes(), b"3"];
        all.extend(keys.iter().map(|k| k.as_bytes()));
        all.extend_from_slice(&args);
        let result = self.call_once(&all);
        self.log.mark(&result);
        let reply = resp::ok(result.map_err(Failure::Lost)?).map_err(Failure::Answered)?;
        let items = reply
            .as_array()
            .ok_or_else(|| Failure::Answered(unexpected("append")))?;
        let current = items.get(1).and_then(Reply::as_u64);
        let missed = items.get(2).and_then(Reply::as_array).unwrap_or_default();
        let missed = missed.iter().map(entry).collect::<Option<Vec<_>>>();
        match (items.first(), current, missed) {
            (Some(Reply::Int(1)), _, _) => Ok(Appended::Done),
            (Some(Reply::Int(0)), Some(version), Some(missed)) => {
                Ok(Appended::Behind { version, missed })
            }
            _ => Err(Failure::Answered(unexpected("append"))),
        }
    }

    /// Waits, as long as a turn lasts at most (`XREAD BLOCK`, no polling),
    /// for the log to move past version `after`: the first records after
    /// it, or none when it did not move meanwhile. For a writer that
    /// another's turn held back: once that writer appends, this one has
    /// what it missed without asking again.
    pub fn wait_past(&mut self, after: u64) -> io::Result<Vec<Record>> {
        let (log, from) = (key("log"), format!("{after}-0"));
        let (count, block) = (MISSED.to_string(), TURN.as_millis().to_string());
        let reply = self.call(&[
            b"XREAD",
            b"COUNT",
            count.as_bytes(),
            b"BLOCK",
            block.as_bytes(),
            b"STREAMS",
            log.as_bytes(),
            from.as_bytes(),
        ])?;
        let streams = match &reply {
            Reply::Nil => return Ok(Vec::new()),
            reply => reply.as_array().ok_or_else(|| unexpected("xread"))?,
        };
        let entries = match streams {
            [] => return Ok(Vec::new()),
            [stream] => match stream.as_array() {
                Some([_name, entries]) => entries.as_array(),
                _ => None,
            },
            _ => None,
        };
        let entries = entries.ok_or_else(|| unexpected("xread"))?;
        let records = entries.iter().map(entry).collect::<Option<Vec<_>>>();
        records.ok_or_else(|| unexpected("a log entry"))
    }

    /// At most `count` records after version `after`, oldest first.
    pub fn tail(&mut self, after: u64, count: usize) -> io::Result<Tail> {
        let start = format!("{}-0", after + 1);
        let count = count.to_string();
        let args: [&[u8]; 2] = [start.as_bytes(), count.as_bytes()];
        let reply = self.script(TAIL, &[&key("version"), &key("log")], &args)?;
        let items = reply.as_array().ok_or_else(|| unexpected("tail"))?;
        let version = items.first().and_then(Reply::as_u64);
        let entries = items.get(1).and_then(Reply::as_array);
        let (Some(version), Some(entries)) = (version, entries) else {
            return Err(unexpected("tail"));
        };
        let records = entries.iter().map(entry).collect::<Option<Vec<_>>>();
        let records = records.ok_or_else(|| unexpected("a log entry"))?;
        Ok(Tail { version, records })
    }

    /// The latest snapshot: its version and bytes.
    pub fn snapshot(&mut self) -> io::Result<Option<(u64, Vec<u8>)>> {
        let snapshot = key("snapshot");
        let reply = self.call(&[b"HMGET", snapshot.as_bytes(), b"version", b"state"])?;
        let items = reply.as_array().ok_or_else(|| unexpected("snapshot"))?;
        match items {
            [Reply::Nil, ..] | [] => Ok(None),
            [version, state] => {
                let version = version.as_u64().ok_or_else(|| unexpected("snapshot"))?;
                let state = state.as_bytes().ok_or_else(|| unexpected("snapshot"))?;
                Ok(Some((version, state.to_vec())))
            }
            _ => Err(unexpected("snapshot")),
        }
    }

    /// Stores a snapshot unless a newer one is there, and trims the log
    /// before the snapshot it replaces. Whether it was stored.
    pub fn put_snapshot(&mut self, version: u64, bytes: &[u8]) -> io::Result<bool> {
        let version = version.to_string();
        let args: [&[u8]; 2] = [version.as_bytes(), bytes];
        let reply = self.script(PUT_SNAPSHOT, &[&key("snapshot"), &key("log")], &args)?;
        Ok(reply == Reply::Int(1))
    }

    /// Adds an operation's audit lines to the shared audit stream, which
    /// keeps the newest `AUDIT_KEPT` lines and `max_bytes` bytes of lines
    /// at most (`AUDIT_MAX_BYTES` for a server), each instance's own file
    /// beside it.
    pub fn audit(&mut self, lines: &[String], max_bytes: u64) -> io::Result<()> {
        let keys = [key("audit"), key("audit-bytes")];
        let keys = [keys[0].as_str(), keys[1].as_str()];
        let (kept, cap) = (AUDIT_KEPT.to_string(), max_bytes.to_string());
        for batch in lines.chunks(AUDIT_BATCH) {
            let mut args: Vec<&[u8]> = vec![kept.as_bytes(), cap.as_bytes()];
            args.extend(batch.iter().map(|line| line.as_bytes()));
            self.script(AUDIT, &keys, &args)?;
        }
        Ok(())
    }

    /// The value kept under `name`: `value`, set now if there was none
    /// (`SET NX`), else the one set first (for a secret every instance
    /// shares, such as the receipts key).
    pub fn set_if_absent(&mut self, name: &str, value: &[u8]) -> io::Result<Vec<u8>> {
        let name = key(name);
        self.call(&[b"SET", name.as_bytes(), value, b"NX"])?;
        let reply = self.call(&[b"GET", name.as_bytes()])?;
        reply
            .as_bytes()
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::Error::other(format!("{name} vanished")))
    }

    /// Takes the lease, or renews it, for `ttl`; false while another holds it.
    pub fn hold_lease(&mut self, holder: &str, ttl: Duration) -> io::Result<bool> {
        let ttl = ttl.as_millis().to_string();
        let args: [&[u8]; 2] = [holder.as_bytes(), ttl.as_bytes()];
        let reply = self.script(LEASE, &[&key("lease")], &args)?;
        Ok(reply == Reply::Int(1))
    }
}

/// `[id, [field, value, ...]]` from XRANGE as a record.
fn entry(entry: &Reply) -> Option<Record> {
    let [id, fields] = entry.as_array()? else {
        return None;
    };
    let id = std::str::from_utf8(id.as_bytes()?).ok()?;
    let version = id.split_once('-')?.0.parse().ok()?;
    let (mut base, mut bytes) = (None, None);
    for pair in fields.as_array()?.chunks(2) {
        match (pair[0].as_bytes()?, pair.get(1)) {
            (b"b", Some(value)) => base = value.as_u64(),
            (b"r", Some(value)) => bytes = value.as_bytes().map(<[u8]>::to_vec),
            _ => {}
        }
    }
    Some(Record {
        base: base?,
        version,
        bytes: bytes?,
    })
}

fn unexpected(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected reply from redis to {what}"),
    )
}

/// A connection subscribed to the channel: the records as they are appended.
pub struct Follower {
    conn: Conn,
}

impl Follower {
    /// The next record published, or `None` when none came within `timeout`.
    pub fn next(&mut self, timeout: Duration) -> io::Result<Option<Record>> {
        let Some(reply) = self.conn.poll(timeout)? else {
            return Ok(None);
        };
        let message = match reply.as_array() {
            Some([kind, _channel, payload]) if kind.as_bytes() == Some(b"message") => payload,
            _ => return Ok(None),
        };
        let parsed = message.as_bytes().and_then(|payload| {
            let mut parts = payload.splitn(3, |&b| b == b' ');
            let number = |part: Option<&[u8]>| std::str::from_utf8(part?).ok()?.parse().ok();
            Some(Record {
                base: number(parts.next())?,
                version: number(parts.next())?,
                bytes: parts.next()?.to_vec(),
            })
        });
        parsed
            .map(Some)
            .ok_or_else(|| unexpected("a published record"))
    }
}
