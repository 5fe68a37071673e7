// Acceptance 7: answering a prompt that expired meanwhile shows a clear
// message and keeps the typed text.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, serverAndBrowser, waitArmed, waitText } from './support.mjs';

const env = serverAndBrowser();

test('an answer to an expired clarify gets a clear message and keeps the text', async () => {
  const { agent } = env.server;
  const page = await openPage(await env.browser.newContext(), env.server.url);

  const shown = waitText(page, '#clarify-card .clarify-question', 'Quick, what now?', 1000);
  const clarify = await agent.submitClarify({ session_id: 'e1', question: 'Quick, what now?', choices: ['wait'], timeout_seconds: 3 });
  await shown;
  await waitText(page, '#clarify-card .countdown', 'expires in', 1000);

  // The answer leaves the page before the prompt expires and reaches the
  // env.server after it has: the route holds it until the agent sees "expired".
  // The page may learn of the expiry from its stream before the answer's
  // 409 is back (both show the same notice): the status is awaited.
  let responded;
  const respondStatus = new Promise((resolve, reject) => {
    responded = resolve;
    setTimeout(() => reject(new Error('the answer was not sent back within 15 s')), 15000).unref();
  });
  await page.route('**/api/clarify/respond', async (route) => {
    assert.deepEqual(await agent.waitClarify('e1', clarify.clarify_id, 10000), { status: 'expired' });
    const response = await route.fetch();
    await route.fulfill({ response });
    responded(response.status());
  });
  const typed = 'my careful answer\nwith a second line';
  await page.locator('#clarify-other-text').fill(typed);
  await waitArmed(page, '#clarify-card');
  await page.locator('#clarify-other-text').press('Enter');

  await waitText(page, '#notice .notice-message', 'expired or was answered elsewhere', 8000);
  await waitText(page, '#notice .notice-kept-text', typed, 1000);
  await page.locator('#clarify-card').waitFor({ state: 'hidden', timeout: 1000 });
  await page.waitForFunction(() => document.querySelector('#notice').checkVisibility(), null, { timeout: 1000 });
  assert.equal(await respondStatus, 409);
  await page.unroute('**/api/clarify/respond');

  // The next question of the session offers the kept text again.
  const next = waitText(page, '#clarify-card .clarify-question', 'Second chance?', 1000);
  const second = await agent.submitClarify({ session_id: 'e1', question: 'Second chance?' });
  await next;
  assert.equal(await page.locator('#clarify-other-text').inputValue(), typed);
  await page.getByRole('button', { name: 'Send' }).click();
  assert.deepEqual(await agent.waitClarify('e1', second.clarify_id), { status: 'answered', response: typed });
  assert.deepEqual(page.problems.filter((p) => !/409|Conflict/.test(p)), []);
});
