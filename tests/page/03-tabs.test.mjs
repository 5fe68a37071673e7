// Acceptance 3: eight tabs on one origin all show a new prompt within 2 s
// while the server's askgate_streams_open never exceeds 2; closing the tab
// that holds the stream hands it to another within 5 s. The same holds
// without the Web Locks API (it is missing on plain http to a LAN address),
// where tabs elect through a localStorage lease.

import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, test } from 'node:test';
import { launchBrowser, openPage, sampleMetrics, startServer, waitText } from './support.mjs';

// Each test gets its own server, so streams of the other test's closed tabs,
// which the server notices only at its next write, are not counted.
let server;
let browser;

before(async () => {
  browser = await launchBrowser();
});

beforeEach(async () => {
  server = await startServer();
});

afterEach(async () => {
  await server?.stop();
});

after(async () => {
  await browser?.close();
});

const role = (page) => page.evaluate(() => document.documentElement.dataset.role);

async function shareAndHandOver(context, tabs, session_id) {
  const { agent } = server;
  const sampler = sampleMetrics(agent);
  try {
    const pages = [];
    for (let i = 0; i < tabs; i += 1) pages.push(await openPage(context, server.url, { hash: `#s=${session_id}` }));

    const question = `Everyone in ${session_id} sees this?`;
    const allShown = Promise.all(pages.map((page) => waitText(page, '#clarify-card .clarify-question', question, 2000)));
    await agent.submitClarify({ session_id, question, choices: ['yes'] });
    await allShown;

    const roles = await Promise.all(pages.map(role));
    assert.equal(roles.filter((r) => r === 'leader').length, 1, `roles: ${roles}`);
    const leader = pages[roles.indexOf('leader')];
    const rest = pages.filter((page) => page !== leader);

    await leader.close();
    const takenOver = rest.map((page) =>
      page.waitForFunction(() => document.documentElement.dataset.role === 'leader' && document.documentElement.dataset.stream === 'ready', null, { timeout: 5000 }),
    );
    await Promise.any(takenOver);
    const newRoles = await Promise.all(rest.map(role));
    assert.equal(newRoles.filter((r) => r === 'leader').length, 1, `roles after handover: ${newRoles}`);

    const command = `echo ${session_id} after handover`;
    const restShown = Promise.all(rest.map((page) => waitText(page, '#approval-card .approval-command', command, 2000)));
    await agent.submitApproval({ session_id, command, pattern_keys: [`echo ${session_id}`] });
    await restShown;

    for (const page of rest) assert.deepEqual(page.problems, []);
  } finally {
    // Stopped before the tabs close: closing them one after the other passes
    // the stream down the line, and the server notices a closed stream only
    // at its next write.
    await sampler.stop();
  }
  assert.ok(sampler.max('askgate_streams_open') >= 1, 'the metric askgate_streams_open was never read');
  assert.ok(sampler.max('askgate_streams_open') <= 2, `askgate_streams_open reached ${sampler.max('askgate_streams_open')}`);
}

test('eight tabs share one stream, and another tab takes it over', async () => {
  const context = await browser.newContext();
  await shareAndHandOver(context, 8, 'tabs');
  await context.close();
});

test('without Web Locks, a localStorage lease elects the tab that streams', async () => {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    delete Navigator.prototype.locks;
  });
  await shareAndHandOver(context, 4, 'lease');
  await context.close();
});
