// The shared pieces of the agent tests: askgate as a subprocess with both
// tokens, the human answering through askgate's HTTP API as the page does,
// a temporary HOME and work directory, and where the agents are installed
// (tests/agents/install.sh). Nothing sleeps to wait: every wait is a
// long-poll or a child's exit, under a deadline.

import { spawn } from 'node:child_process';
import { mkdtempSync, existsSync, rmSync } from 'node:fs';
import { tmpdir, homedir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { createHash } from 'node:crypto';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ASKGATE = join(ROOT, 'target', 'debug', 'askgate');
export const AGENT_TOKEN = 'agents-test-agent-token-0123456789';
export const HUMAN_TOKEN = 'agents-test-human-token-0123456789';

const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
export const AGENTS_DIR = process.env.ASKGATE_AGENTS_DIR || join(cache, 'askgate-agents');

/// The agent's binary (`where` in AGENTS_DIR: npm's bin directory, unless
/// said), or null with why (a skip, unless CI requires it).
export function agentBin(name, where = join('node_modules', '.bin', name)) {
  const bin = join(AGENTS_DIR, where);
  if (existsSync(bin)) return { bin };
  const why = `${name} is not installed in ${AGENTS_DIR} (sh tests/agents/install.sh)`;
  if (process.env.ASKGATE_REQUIRE_AGENTS) throw new Error(`ASKGATE_REQUIRE_AGENTS is set: ${why}`);
  return { skip: why };
}

export function tempDir(name) {
  const dir = mkdtempSync(join(tmpdir(), `askgate-${name}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/// askgate serve on a loopback port, with both tokens; its url once it listens.
export async function startAskgate(extra = []) {
  const child = spawn(ASKGATE, ['serve', '--bind', '127.0.0.1:0', '--data-dir', 'none',
    '--agent-token', AGENT_TOKEN, '--human-token', HUMAN_TOKEN, ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  const lines = createInterface({ input: child.stdout });
  const url = await new Promise((resolve, reject) => {
    lines.once('line', (line) => resolve(line.replace('askgate listening on ', '').trim()));
    child.once('exit', (code) => reject(new Error(`askgate exited ${code}: ${stderr}`)));
  });
  return { url, stop: () => child.kill('SIGTERM'), stderr: () => stderr };
}

async function asHuman(url, path, body) {
  const headers = { Authorization: `Bearer ${HUMAN_TOKEN}` };
  const init = body === undefined ? { headers } : {
    method: 'POST', headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  };
  const reply = await fetch(url + path, init);
  const text = await reply.text();
  if (reply.status !== 200) throw new Error(`${path}: ${reply.status} ${text}`);
  return JSON.parse(text);
}

/// The askgate session of an agent session, as the hooks name it
/// (src/hooks/mod.rs `session_name`): the work directory's name and the
/// first 6 hex digits of the SHA-256 of the agent's session id.
export function sessionName(cwd, agentSession) {
  const dir = cwd.replace(/\/+$/, '').split('/').pop().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 48);
  const short = createHash('sha256').update(agentSession).digest('hex').slice(0, 6);
  return `${dir}-${short}`;
}

/// Waits (long-polls, as the page falls back to) until the session has an
/// approval pending; its head.
export async function pendingApproval(url, sessionId, deadlineMs = 60000) {
  const end = Date.now() + deadlineMs;
  let since = 0;
  while (Date.now() < end) {
    const poll = await asHuman(url, `/api/approval/pending?session_id=${sessionId}&since=${since}&wait=30`);
    if (poll.pending) return poll.pending;
    since = poll.version;
  }
  throw new Error(`no approval in ${sessionId} within the deadline`);
}

/// The human answers an approval, as the page does.
export async function answer(url, head, choice, extra = {}) {
  return asHuman(url, '/api/approval/respond',
    { session_id: head.session_id, approval_id: head.approval_id, choice, ...extra });
}

export async function history(url, sessionId) {
  return (await asHuman(url, `/api/history?session_id=${sessionId}`)).history;
}

/// Runs a command to its end (killed after the deadline): code, stdout, stderr.
export function run(bin, args, options, deadlineMs = 120000) {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    const timer = setTimeout(() => child.kill('SIGKILL'), deadlineMs);
    child.on('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }); });
  });
}

/// Waits, on the page's own stream (`GET /api/events`, every session), for
/// the first approval pending anywhere; its head. For agents that name
/// their sessions themselves.
export async function nextApproval(url, deadlineMs = 60000) {
  const response = await fetch(`${url}/api/events`, {
    headers: { Authorization: `Bearer ${HUMAN_TOKEN}`, Accept: 'text/event-stream' },
    signal: AbortSignal.timeout(deadlineMs),
  });
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = frame.match(/^event: (.*)$/m)?.[1];
      const data = frame.match(/^data: (.*)$/m)?.[1];
      if (event === 'approval' && data) {
        const { pending } = JSON.parse(data);
        if (pending) {
          response.body.cancel().catch(() => {});
          return pending;
        }
      }
    }
  }
  throw new Error('the stream ended before an approval came');
}
