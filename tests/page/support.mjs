// support.mjs: what every page test shares.
//
// It starts a real askgate server (target/debug/askgate, or $ASKGATE_BIN) on
// port 0 with a fresh data directory and stops it afterwards; launches
// Debian's Chromium headless through playwright-core; plays the agent side
// with plain fetch against the agent API (docs/PROTOCOL.md §5); reads /metrics. Nothing
// here sleeps to wait for something: waits are polls with deadlines.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const artifactsDir = path.join(repoRoot, 'artifacts');

const LISTENING = /askgate listening on (http:\/\/127\.0\.0\.1:\d+)/;
const START_TIMEOUT_MS = 15000;

// Starts `askgate serve` on 127.0.0.1:0 with `args` added; resolves once it
// prints its address.
export async function startServer(args = []) {
  const bin = process.env.ASKGATE_BIN || path.join(repoRoot, 'target', 'debug', 'askgate');
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: run \`cargo build\` first`);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'askgate-page-'));
  // In memory and open (--insecure-no-auth) unless `args` say otherwise:
  // tokens given win over it, `--insecure-no-auth=false` is the shipped
  // default, `--data-dir DIR` keeps state. The default data directory is
  // kept out of the real home all the same.
  const child = spawn(bin, ['serve', '--bind', '127.0.0.1:0', '--data-dir', 'none', '--insecure-no-auth', ...args], {
    cwd: dataDir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      XDG_STATE_HOME: path.join(dataDir, 'state'),
      ASKGATE_LOG_LEVEL: process.env.ASKGATE_LOG_LEVEL || 'warn',
    },
  });
  const output = [];
  child.stderr.on('data', (chunk) => output.push(String(chunk)));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`askgate did not start within ${START_TIMEOUT_MS} ms:\n${output.join('')}`)), START_TIMEOUT_MS);
    const lines = readline.createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      output.push(`${line}\n`);
      const match = LISTENING.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`askgate exited (${code ?? signal}) before listening:\n${output.join('')}`));
    });
  });
  child.stdout.resume();
  const flag = (name) => {
    const at = args.indexOf(name);
    return at >= 0 ? args[at + 1] : undefined;
  };
  return {
    url,
    output,
    dataDir,
    agent: createAgent(url, { agent: flag('--agent-token'), human: flag('--human-token') }),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

// `extraArgs` go to Chromium after the usual ones (for example
// `--host-resolver-rules=MAP askgate.test 127.0.0.1`).
export async function launchBrowser(extraArgs = []) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      ...extraArgs,
    ],
  });
}

async function call(base, method, route, body, token) {
  const init = { method, headers: { Accept: 'application/json' } };
  if (token) init.headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(base + route, init);
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${route} -> ${response.status} ${text}`);
  return JSON.parse(text);
}

// The agent side of docs/PROTOCOL.md §5, and /metrics; with `tokens`, it
// sends the agent's token (and the human's for /metrics).
export function createAgent(base, tokens = {}) {
  const query = (params) => new URLSearchParams(params).toString();

  async function waitFor(kind, session_id, id, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = Math.ceil((deadline - Date.now()) / 1000);
      if (left <= 0) return { status: 'pending' };
      const params = { session_id, [`${kind}_id`]: id, timeout: String(Math.min(left, 60)) };
      const outcome = await call(base, 'GET', `/api/${kind}/wait?${query(params)}`, undefined, tokens.agent);
      if (outcome.status === 'pending') continue;
      // The signed receipt (docs/PROTOCOL.md §10) is not the page's to check.
      delete outcome.receipt;
      return outcome;
    }
  }

  return {
    submitClarify: (body) => call(base, 'POST', '/api/clarify/submit', body, tokens.agent),
    submitApproval: (body) => call(base, 'POST', '/api/approval/submit', body, tokens.agent),
    cancelClarify: (body) => call(base, 'POST', '/api/clarify/cancel', body, tokens.agent),
    waitClarify: (session_id, clarify_id, timeoutMs = 10000) => waitFor('clarify', session_id, clarify_id, timeoutMs),
    waitApproval: (session_id, approval_id, timeoutMs = 10000) => waitFor('approval', session_id, approval_id, timeoutMs),

    // {askgate_streams_open: N, askgate_longpolls_parked: N, ...}
    async metrics() {
      const headers = tokens.human ? { Authorization: `Bearer ${tokens.human}` } : {};
      const response = await fetch(`${base}/metrics`, { headers });
      const text = await response.text();
      const values = {};
      for (const line of text.split('\n')) {
        const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
        if (match && !match[2]) values[match[1]] = Number(match[3]);
      }
      return values;
    },
  };
}

// Samples /metrics every `everyMs` until stopped; `max(name)` is the largest
// value seen.
export function sampleMetrics(agent, everyMs = 50) {
  const maxima = {};
  let running = true;
  let failure = null;
  const loop = (async () => {
    while (running) {
      try {
        const values = await agent.metrics();
        for (const [name, value] of Object.entries(values)) maxima[name] = Math.max(maxima[name] ?? -Infinity, value);
      } catch (error) {
        failure = error;
      }
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    max: (name) => maxima[name],
    async stop() {
      running = false;
      await loop;
      if (failure) throw failure;
    },
  };
}

// Opens the page and waits until its connection indicator reads `state`.
export async function openPage(context, url, { state = 'live', hash = '', timeout = 5000 } = {}) {
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.problems = problems;
  await page.goto(url + '/' + hash);
  await waitConnection(page, state, timeout);
  return page;
}

export async function waitConnection(page, state, timeout) {
  await page.waitForFunction((wanted) => document.querySelector('#connection')?.dataset.state === wanted, state, { timeout });
}

// Waits until the element matched by `selector` is visible and its text
// contains `text`.
export async function waitText(page, selector, text, timeout) {
  await page.waitForFunction(
    ([css, wanted]) => {
      const element = document.querySelector(css);
      return Boolean(element && element.checkVisibility() && element.textContent.includes(wanted));
    },
    [selector, text],
    { timeout, polling: 'raf' },
  );
}

// Waits until the card matched by `selector` is shown and armed: its
// answering buttons take input (app.js arms a card for a second after it
// shows a new prompt).
export async function waitArmed(page, selector, timeout = 5000) {
  await page.waitForFunction(
    (css) => {
      const card = document.querySelector(css);
      return Boolean(card && !card.hidden && !card.hasAttribute('data-arming'));
    },
    selector,
    { timeout, polling: 'raf' },
  );
}

export function ensureArtifactsDir() {
  fs.mkdirSync(artifactsDir, { recursive: true });
  return artifactsDir;
}

// Starts a server (with `args`) and a browser before the file's tests and
// stops both after them; `env.server` and `env.browser` hold them.
export function serverAndBrowser(args = []) {
  const env = {};
  before(async () => {
    env.server = await startServer(args);
    env.browser = await launchBrowser();
  });
  after(async () => {
    await env.browser?.close();
    await env.server?.stop();
  });
  return env;
}
