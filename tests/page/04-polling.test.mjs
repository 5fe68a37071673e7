// Acceptance 4: with streams refused (--max-streams 0) the page shows
// "polling" and still shows a new prompt within 2 s.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, serverAndBrowser, waitText } from './support.mjs';

const env = serverAndBrowser(['--max-streams', '0']);

test('streams refused: the page polls and still shows prompts quickly', async () => {
  const { agent } = env.server;
  const page = await openPage(await env.browser.newContext(), env.server.url, { state: 'polling' });
  await waitText(page, '#connection', 'polling', 1000);

  const shown = waitText(page, '#clarify-card .clarify-question', 'Polled question?', 2000);
  const clarify = await agent.submitClarify({ session_id: 'p1', question: 'Polled question?', choices: ['fine'] });
  await shown;

  const approvalShown = waitText(page, '#approval-card .approval-command', 'make install', 2000);
  await agent.submitApproval({ session_id: 'p1', command: 'make install', pattern_keys: ['install'] });
  await approvalShown;

  // The answer is checked on its way back to the page: with --max-streams 0
  // the agent's /wait, which also takes a place, is refused as well. The
  // 2 s above are the page's promise; the click's round trip gets a
  // generous deadline (2 s failed once beside a second `make test`).
  const responded = page.waitForResponse((response) => new URL(response.url()).pathname === '/api/clarify/respond', { timeout: 10000 });
  await page.getByRole('button', { name: 'fine' }).click();
  const response = await responded;
  assert.equal(response.status(), 200);
  assert.deepEqual(await response.json(), { ok: true, response: 'fine' });
  assert.equal(JSON.parse(response.request().postData()).clarify_id, clarify.clarify_id);
  await page.locator('#clarify-card').waitFor({ state: 'hidden', timeout: 2000 });
  assert.equal(await page.locator('#connection').getAttribute('data-state'), 'polling');
  assert.deepEqual(page.problems.filter((p) => !/503|Service Unavailable/.test(p)), []);
});
