// Acceptance 1: a clarify submitted through the agent API appears within 1 s
// without a reload; clicking a choice answers it and the agent's wait returns
// that choice; "Other" with typed text answers with the text.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, serverAndBrowser, waitArmed, waitText } from './support.mjs';

const env = serverAndBrowser();

test('a clarify appears live, a choice and "Other" text answer it', async () => {
  const { agent } = env.server;
  const page = await openPage(await env.browser.newContext(), env.server.url);

  const shown = waitText(page, '#clarify-card .clarify-question', 'Pick one?', 1000);
  const first = await agent.submitClarify({ session_id: 'c1', question: 'Pick one?', choices: ['alpha', 'beta'] });
  await shown;
  await page.getByRole('button', { name: 'beta' }).click();
  assert.deepEqual(await agent.waitClarify('c1', first.clarify_id), { status: 'answered', response: 'beta' });
  await page.locator('#clarify-card').waitFor({ state: 'hidden', timeout: 1000 });

  const shownAgain = waitText(page, '#clarify-card .clarify-question', 'Which name?', 1000);
  const second = await agent.submitClarify({ session_id: 'c1', question: 'Which name?', choices: ['alpha', 'beta'] });
  await shownAgain;
  await page.locator('#clarify-other-text').fill('  gamma delta  ');
  await waitArmed(page, '#clarify-card');
  await page.locator('#clarify-other-text').press('Enter');
  assert.deepEqual(await agent.waitClarify('c1', second.clarify_id), { status: 'answered', response: 'gamma delta' });

  const shownThird = waitText(page, '#clarify-card .clarify-question', 'Free text?', 1000);
  const third = await agent.submitClarify({ session_id: 'c1', question: 'Free text?' });
  await shownThird;
  await page.locator('#clarify-other-text').fill('typed and sent with the button');
  await page.getByRole('button', { name: 'Send' }).click();
  assert.deepEqual(await agent.waitClarify('c1', third.clarify_id), { status: 'answered', response: 'typed and sent with the button' });

  assert.deepEqual(page.problems, []);
});
