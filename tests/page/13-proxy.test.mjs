// Behind a real reverse proxy: nginx and Caddy, each with TLS from a CA the
// test makes with openssl, serve askgate at https://home.askgate.test:PORT/
// askgate/ (Chromium alone resolves that name, to 127.0.0.1) with the
// configuration docs/deploy.md shows, and askgate runs with --public-url
// for that address. The proxies pass the name on in Host, so only
// --public-url gets the page past the Host check. Through each proxy, in
// Chromium: /askgate
// redirects to /askgate/; the page goes live; a clarify submitted through
// the agent API appears and a click answers it; `askgate approve --server
// https://.../askgate --ca-file CA` waits through the proxy and exits 0
// when the page allows it; a frame crosses the proxy in under 100 ms (the
// median of a few submits, printed); the CLI uses 127.0.0.1, which it can
// resolve. Without --public-url, at https://127.0.0.1:PORT/askgate/, an
// answer is refused (Origin) and the page shows the server's hint. A proxy that is not
// installed is skipped, and the output says so and why.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { PROXIES, freePort, makeCertificates, which } from './proxies.mjs';
import { launchBrowser, repoRoot, startServer, waitConnection, waitText } from './support.mjs';

const NAME = 'home.askgate.test';
const LATENCY_TRIES = 7;
const LATENCY_LIMIT_MS = 100;

let browser;
let tls;

// Without openssl there is no certificate, so no proxy test can run.
const noOpenssl = which('openssl') ? false : 'openssl is not installed (apt-get install openssl)';

before(async () => {
  if (!noOpenssl) tls = makeCertificates([NAME]);
  browser = await launchBrowser([`--host-resolver-rules=MAP ${NAME} 127.0.0.1`]);
});
after(async () => {
  await browser?.close();
  if (tls) fs.rmSync(tls.dir, { recursive: true, force: true });
});

// The two tokens every server here runs with: behind a proxy on the LAN,
// askgate is not open.
const AGENT_TOKEN = 'agent-token-behind-the-proxy';
const HUMAN_TOKEN = 'human-token-behind-the-proxy';
const TOKENS = ['--agent-token', AGENT_TOKEN, '--human-token', HUMAN_TOKEN];

// Signs the page in with the human's token, through the proxy; the cookie
// is Secure, since the page was reached over https.
async function signIn(page) {
  await page.locator('#login').waitFor({ state: 'visible', timeout: 10000 });
  await page.locator('#login-token').fill(HUMAN_TOKEN);
  await page.locator('#login-token').press('Enter');
  await page.locator('#login').waitFor({ state: 'hidden', timeout: 5000 });
  const cookies = await page.context().cookies();
  const session = cookies.find((cookie) => cookie.name === 'askgate_session');
  assert.ok(session?.secure, 'the sign-in cookie is Secure over https');
  assert.equal(session.path, '/askgate/', 'and scoped to the base path');
}

// askgate with `flags` behind `proxy` on a free port, its page opened at
// `host`: {server, proxy, base, direct} (`direct`: the same through
// 127.0.0.1). `flags` may use the page's address through `{base}`.
// A proxy that exits before listening (the port found free was taken
// meanwhile, by a second test run beside this one) is tried on another.
async function startBehind(proxy, host, flags) {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const base = `https://${host}:${port}/askgate`;
    const server = await startServer([...TOKENS, ...flags.map((flag) => flag.replace('{base}', base))]);
    try {
      const running = await proxy.start(port, new URL(server.url).host, tls, [NAME]);
      return { server, proxy: running, base, direct: `https://127.0.0.1:${port}/askgate` };
    } catch (error) {
      await server.stop();
      if (attempt === 5 || !/exited .* before listening/.test(error.message)) throw error;
    }
  }
}

async function stopAll({ server, proxy }) {
  await proxy.stop();
  await server.stop();
}

// Opens `url` in a fresh context that accepts the test CA's certificate,
// signs in, and waits until the page is live.
async function openLive(url) {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (error) => page.problems.push(`pageerror: ${error.message}`));
  page.on('console', (message) => message.type() === 'error' && page.problems.push(`console: ${message.text()}`));
  await page.goto(url);
  await signIn(page);
  await waitConnection(page, 'live', 10000);
  // The requests refused before signing in (401) are expected.
  page.problems.length = 0;
  return page;
}

// Runs `askgate approve` against `base` with the test CA; resolves to
// {code, stdout, stderr} when it exits.
function approveThroughProxy(base, session_id, command) {
  const bin = process.env.ASKGATE_BIN || path.join(repoRoot, 'target', 'debug', 'askgate');
  const args = ['approve', '--server', base, '--ca-file', tls.ca, '--session', session_id, '--command', command, '--timeout', '60'];
  const env = { ...process.env, ASKGATE_TOKEN: AGENT_TOKEN };
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const out = { stdout: '', stderr: '' };
  child.stdout.on('data', (chunk) => (out.stdout += chunk));
  child.stderr.on('data', (chunk) => (out.stderr += chunk));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code: code ?? signal, ...out })));
  return {
    exited,
    stop() {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGTERM');
    },
  };
}

// In the page: an EventSource on api/events (through the proxy) and
// `tries` submits from the page; for each, the milliseconds from sending
// the submit to its frame arriving.
async function frameLatencies(page, session_id, tries) {
  return page.evaluate(
    async ({ session_id, tries, token }) => {
      // The agent's submits, with the agent's token (the page's cookie is
      // the human's, which may not submit).
      const headers = { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` };
      const post = (route, body) => fetch(route, { method: 'POST', headers, body: JSON.stringify(body) });
      const source = new EventSource(`api/events?session_id=${encodeURIComponent(session_id)}`);
      await new Promise((resolve, reject) => {
        source.addEventListener('ready', resolve, { once: true });
        source.onerror = () => reject(new Error('the latency stream failed'));
      });
      const latencies = [];
      for (let i = 0; i < tries; i++) {
        const question = `latency ${i}`;
        const seen = new Promise((resolve) => {
          const onFrame = (event) => {
            if (!event.data.includes(question)) return;
            source.removeEventListener('clarify', onFrame);
            resolve(performance.now());
          };
          source.addEventListener('clarify', onFrame);
        });
        const sentAt = performance.now();
        const submitted = post('api/clarify/submit', { session_id, question });
        latencies.push((await seen) - sentAt);
        if (!(await submitted).ok) throw new Error('a latency submit was refused');
        await post('api/clarify/cancel', { session_id });
      }
      source.close();
      return latencies;
    },
    { session_id, tries, token: AGENT_TOKEN },
  );
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

for (const [name, proxy] of Object.entries(PROXIES)) {
  const missing =
    noOpenssl || (which(proxy.command) ? false : `${proxy.command} is not installed (${proxy.install}); its proxy tests are skipped`);
  if (missing) console.log(`SKIPPED ${name}: ${missing}`);

  test(`${name}: the page at /askgate/ over TLS answers live, with the CLI, frames under ${LATENCY_LIMIT_MS} ms`, { skip: missing }, async () => {
    const running = await startBehind(proxy, NAME, ['--public-url', '{base}', '--trusted-proxy', '127.0.0.1']);
    const { server, base, direct } = running;
    const session_id = `proxy-${name}`;
    let cli = null;
    try {
      // The address without its slash is redirected to the folder.
      const page = await openLive(base);
      assert.equal(page.url(), `${base}/`);

      const shown = waitText(page, '#clarify-card .clarify-question', `Through ${name}?`, 2000);
      const { clarify_id } = await server.agent.submitClarify({ session_id, question: `Through ${name}?`, choices: ['yes', 'no'] });
      await shown;
      await page.getByRole('button', { name: 'yes' }).click();
      assert.deepEqual(await server.agent.waitClarify(session_id, clarify_id), { status: 'answered', response: 'yes' });

      cli = approveThroughProxy(direct, session_id, `deploy via ${name}`);
      await waitText(page, '#approval-card .approval-command code', `deploy via ${name}`, 10000);
      await page.getByRole('button', { name: 'Allow once' }).click();
      const outcome = await cli.exited;
      assert.equal(outcome.code, 0, `askgate approve through ${name}: ${outcome.stdout}${outcome.stderr}`);

      const latencies = await frameLatencies(page, `latency-${name}`, LATENCY_TRIES);
      const figure = median(latencies);
      const tries = latencies.map((ms) => ms.toFixed(1)).join(', ');
      console.log(`${name}: submit -> frame through the proxy, median ${figure.toFixed(1)} ms over ${LATENCY_TRIES} (${tries} ms)`);
      assert.ok(figure < LATENCY_LIMIT_MS, `median ${figure} ms through ${name}`);

      assert.deepEqual(page.problems, []);
    } catch (error) {
      error.message += `\n--- ${name} log:\n${running.proxy.logs()}\n--- askgate:\n${server.output.join('')}`;
      throw error;
    } finally {
      cli?.stop();
      await stopAll(running);
    }
  });

  test(`${name}: without --public-url signing in is refused and the page shows the hint`, { skip: missing }, async () => {
    const running = await startBehind(proxy, '127.0.0.1', []);
    const { server, base } = running;
    try {
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await context.newPage();
      await page.goto(`${base}/`);
      await page.locator('#login').waitFor({ state: 'visible', timeout: 10000 });
      await page.locator('#login-token').fill(HUMAN_TOKEN);
      await page.locator('#login-token').press('Enter');
      const hint = `if askgate's page is at ${base}, start askgate with --public-url ${base}`;
      await waitText(page, '#login .login-error', hint, 3000);
      const cookies = await context.cookies();
      assert.ok(!cookies.some((cookie) => cookie.name === 'askgate_session'), 'no cookie was set');
      const logged = server.output.join('').split('\n').find((line) => line.includes('403 POST /api/login'));
      assert.ok(logged?.includes(hint), `the 403 is logged with its hint:\n${server.output.join('')}`);
    } finally {
      await stopAll(running);
    }
  });
}
