// Beyond the acceptance list: when the server ends the stream (its lifetime
// is up), the page reconnects with Last-Event-ID and shows what changed in
// the gap, without leaving "live".

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, serverAndBrowser, waitText } from './support.mjs';

const env = serverAndBrowser(['--stream-lifetime-secs', '2-2']);

test('a stream the env.server ends is resumed without a gap', async () => {
  const { agent } = env.server;
  const page = await openPage(await env.browser.newContext(), env.server.url);
  await page.evaluate(() => {
    window.connectionStates = [];
    new MutationObserver(() => window.connectionStates.push(document.querySelector('#connection').dataset.state)).observe(
      document.querySelector('#connection'),
      { attributes: true },
    );
  });
  await agent.submitClarify({ session_id: 'r1', question: 'Before the end?' });
  await waitText(page, '#clarify-card .clarify-question', 'Before the end?', 1000);

  // The first stream ends after 2 s; submit while the env.browser waits `retry`.
  const ended = await page.waitForEvent('requestfinished', {
    predicate: (request) => new URL(request.url()).pathname === '/api/events',
    timeout: 5000,
  });
  const resumed = page.waitForRequest((request) => new URL(request.url()).pathname === '/api/events', { timeout: 5000 });
  const second = await agent.submitApproval({ session_id: 'r1', command: 'echo in the gap', pattern_keys: ['echo gap'] });
  await waitText(page, '#approval-card .approval-command', 'echo in the gap', 5000);
  const request = await resumed;
  assert.ok((await request.allHeaders())['last-event-id'], 'the reconnect sent no Last-Event-ID');
  assert.ok(ended);

  await page.getByRole('button', { name: 'Allow once' }).click();
  assert.deepEqual(await agent.waitApproval('r1', second.approval_id), { status: 'answered', choice: 'once' });
  assert.equal(await page.locator('#clarify-card .clarify-question').textContent(), 'Before the end?');
  assert.deepEqual(await page.evaluate(() => window.connectionStates.filter((state) => state !== 'live')), []);
  assert.deepEqual(page.problems, []);
});
