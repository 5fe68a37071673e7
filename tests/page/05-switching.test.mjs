// Acceptance 5: switching between sessions ten times leaves exactly one
// stream and no parked long-poll behind (read from /metrics). And when the
// page is polling, switching aborts the long-polls of the session it leaves.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchBrowser, openPage, startServer, waitText } from './support.mjs';

let server;
let browser;
const sessions = ['sw-a', 'sw-b', 'sw-c'];

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
  for (const session_id of sessions) await server.agent.submitClarify({ session_id, question: `Question of ${session_id}?` });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});


async function switchTenTimes(page) {
  for (let i = 0; i < 10; i += 1) {
    const session_id = sessions[i % sessions.length];
    await page.locator('#session-list button', { hasText: session_id }).click();
    await waitText(page, '#clarify-card .clarify-question', `Question of ${session_id}?`, 1000);
    assert.equal(new URL(page.url()).hash, `#s=${session_id}`);
  }
}

test('switching sessions opens nothing new', async () => {
  const { agent } = server;

  const page = await openPage(await browser.newContext(), server.url);
  const streamRequests = [];
  const pollRequests = [];
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.pathname === '/api/events') streamRequests.push(url.href);
    if (url.pathname.endsWith('/pending')) pollRequests.push(url.href);
  });

  await switchTenTimes(page);

  const metrics = await agent.metrics();
  assert.equal(metrics.askgate_streams_open, 1, 'exactly one stream');
  assert.equal(metrics.askgate_longpolls_parked, 0, 'no parked long-poll');
  assert.deepEqual(streamRequests, [], 'switching opened a stream');
  assert.deepEqual(pollRequests, [], 'switching started a poll');
  assert.deepEqual(page.problems, []);
});

test('when polling, switching sessions leaves only the shown session polled', async (t) => {
  const context = await browser.newContext();
  // The stream is refused in this browser only; long-polls reach the server.
  await context.route('**/api/events*', (route) =>
    route.fulfill({ status: 503, contentType: 'application/json', body: '{"error": "refused by the test"}' }),
  );
  const page = await openPage(context, server.url, { state: 'polling' });
  // Each long-poll's session, and how it ended: 'failed' when the page
  // aborted it, 'finished' when the server answered it.
  const polls = new Map();
  page.on('request', (request) => {
    const url = new URL(request.url());
    if (url.searchParams.has('since')) polls.set(request, { session_id: url.searchParams.get('session_id'), ended: null });
  });
  let onEnd = () => {};
  const ended = (how) => (request) => {
    const poll = polls.get(request);
    if (poll) poll.ended ??= how;
    onEnd();
  };
  page.on('requestfinished', ended('finished'));
  page.on('requestfailed', ended('failed'));

  await switchTenTimes(page);
  const last = sessions[9 % sessions.length];
  await page.waitForFunction(
    () => document.querySelector('#connection').dataset.state === 'polling',
    null,
    { timeout: 1000 },
  );
  const open = [...polls.values()].filter((poll) => poll.ended === null);
  const shown = open.filter((poll) => poll.session_id === last);
  assert.ok(shown.length <= 2, `long-polls of the shown session: ${shown.length}`);
  // The browser reports an abort a little after it: the polls of the
  // sessions left behind end within a generous deadline, and by the
  // page's abort, never by the server's answer (their waits are seconds).
  const behind = open.filter((poll) => poll.session_id !== last);
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, 3000);
    onEnd = () => {
      if (behind.every((poll) => poll.ended !== null)) resolve(clearTimeout(timer));
    };
    onEnd();
  });
  assert.deepEqual(
    behind.filter((poll) => poll.ended !== 'failed').map((poll) => `${poll.session_id} ${poll.ended ?? 'still open'}`),
    [],
    'a long-poll of a session left behind was not aborted',
  );
  t.diagnostic(`server: askgate_longpolls_parked ${(await server.agent.metrics()).askgate_longpolls_parked} right after the switches`);
  assert.deepEqual(page.problems.filter((p) => !/503|Service Unavailable/.test(p)), []);
});
