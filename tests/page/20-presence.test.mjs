// Issue 21 §4 and 22 §3, in the page: the page tells the server whether it
// is visible (POST /api/presence), so a visible page holds the phone back
// and a hidden one (a background tab) lets it ring once its grace is over.
//
// Hidden is simulated the way the page reads it (as in 16-notify): the test
// overrides document.visibilityState and dispatches visibilitychange. The
// phone is a local webhook that records what askgate POSTs to it.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { launchBrowser, openPage, startServer } from './support.mjs';

function hiddenSwitch() {
  let hidden = false;
  window.__setHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event('visibilitychange'));
  };
  Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
  Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => hidden });
}

// A webhook that records each JSON body; `next()` resolves with the next.
function startHook() {
  const bodies = [];
  const waiting = [];
  const server = http.createServer((request, response) => {
    let text = '';
    request.on('data', (chunk) => (text += chunk));
    request.on('end', () => {
      response.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
      const body = JSON.parse(text || 'null');
      const waiter = waiting.shift();
      if (waiter) waiter(body);
      else bodies.push(body);
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${server.address().port}/hook`,
        pending: () => bodies.length,
        next: (timeoutMs = 5000) =>
          bodies.length
            ? Promise.resolve(bodies.shift())
            : new Promise((resolve, reject) => {
                const timer = setTimeout(() => reject(new Error(`nothing reached the webhook within ${timeoutMs} ms`)), timeoutMs);
                waiting.push((body) => {
                  clearTimeout(timer);
                  resolve(body);
                });
              }),
        close: () => server.close(),
      }),
    ),
  );
}

const env = {};
before(async () => {
  env.hook = await startHook();
  env.server = await startServer(['--notify-webhook', env.hook.url, '--notify-grace-secs', '1']);
  env.browser = await launchBrowser();
});
after(async () => {
  await env.browser?.close();
  await env.server?.stop();
  env.hook?.close();
});

test('a visible page holds the phone back; hidden, its grace ends and the phone rings', async () => {
  const { agent } = env.server;
  const context = await env.browser.newContext();
  await context.addInitScript(hiddenSwitch);
  const page = await context.newPage();
  const visible = page.waitForRequest((r) => r.url().endsWith('/api/presence') && r.postDataJSON()?.visible === true);
  await page.goto(env.server.url + '/');
  const said = (await visible).postDataJSON();
  assert.match(said.page, /^[0-9a-f]{24}$/, 'a random page id');
  await page.waitForResponse((r) => r.url().endsWith('/api/presence') && r.status() === 200);

  const asked = await agent.submitApproval({ session_id: 'desk', command: 'make deploy' });
  const metrics = await agent.metrics();
  assert.equal(metrics.askgate_notifications_watched_total, 1, 'held: the human is at the desk');
  assert.equal(env.hook.pending(), 0);

  const hidden = page.waitForRequest((r) => r.url().endsWith('/api/presence') && r.postDataJSON()?.visible === false);
  await page.evaluate(() => window.__setHidden(true));
  await hidden;
  const told = await env.hook.next();
  assert.equal(told.event, 'prompt');
  assert.equal(told.approval_id, asked.approval_id, 'once the grace is over, the phone rings');
  assert.deepEqual(page.problems ?? [], []);
  await context.close();
});
