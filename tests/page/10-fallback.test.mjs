// Beyond the acceptance list: a page refused its stream (the server is at
// --max-streams) polls, and goes back to the stream once a place is free.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, serverAndBrowser, waitConnection, waitText } from './support.mjs';

const env = serverAndBrowser(['--max-streams', '1', '--keepalive-secs', '1']);

test('refused, the page polls; when a place frees up it streams again', async () => {
  const { agent } = env.server;
  // Another client holds the only place.
  const holder = new AbortController();
  const held = await fetch(`${env.server.url}/api/events`, { signal: holder.signal });
  assert.equal(held.status, 200);
  const reader = held.body.getReader();
  const draining = (async () => {
    try {
      while (!(await reader.read()).done);
    } catch {
      // aborted below
    }
  })();

  const page = await openPage(await env.browser.newContext(), env.server.url, { state: 'polling' });
  const shown = waitText(page, '#clarify-card .clarify-question', 'Heard while polling?', 2000);
  await agent.submitClarify({ session_id: 'f1', question: 'Heard while polling?' });
  await shown;

  holder.abort();
  await draining;
  // The page retries the stream 8 to 12 s after it was refused.
  await waitConnection(page, 'live', 15000);
  const live = waitText(page, '#approval-card .approval-command', 'echo streamed again', 1000);
  await agent.submitApproval({ session_id: 'f1', command: 'echo streamed again', pattern_keys: ['echo again'] });
  await live;

  const metrics = await agent.metrics();
  assert.equal(metrics.askgate_streams_open, 1);
  assert.equal(metrics.askgate_longpolls_parked, 0);
  assert.deepEqual(page.problems.filter((p) => !/503|Service Unavailable/.test(p)), []);
});
