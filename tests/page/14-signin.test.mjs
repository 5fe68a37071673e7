// Signing in: with tokens the page asks for the human's token first; a
// wrong one says so, the agent's never signs in, the right one sets the
// cookie and the page goes live, shows prompts and answers them.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serverAndBrowser, waitConnection, waitText } from './support.mjs';

const AGENT = 'agent-token-for-the-page-test';
const HUMAN = 'human-token-for-the-page-test';
const env = serverAndBrowser(['--agent-token', AGENT, '--human-token', HUMAN]);

test('the page signs in with the human token and then works as before', async () => {
  const { agent } = env.server;
  const context = await env.browser.newContext();
  const page = await context.newPage();
  await page.goto(env.server.url + '/');
  await page.locator('#login').waitFor({ state: 'visible', timeout: 5000 });

  for (const wrong of ['not-the-token', AGENT]) {
    await page.locator('#login-token').fill(wrong);
    await page.locator('#login-token').press('Enter');
    await waitText(page, '#login .login-error', 'That token is not right.', 3000);
  }

  await page.locator('#login-token').fill(HUMAN);
  await page.locator('#login-token').press('Enter');
  await page.locator('#login').waitFor({ state: 'hidden', timeout: 3000 });
  await waitConnection(page, 'live', 5000);
  const cookies = await context.cookies();
  const session = cookies.find((cookie) => cookie.name === 'askgate_session');
  assert.ok(session, 'the sign-in cookie is set');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');

  const shown = waitText(page, '#clarify-card .clarify-question', 'Signed in?', 2000);
  const asked = await agent.submitClarify({ session_id: 's1', question: 'Signed in?', choices: ['yes'] });
  await shown;
  await page.getByRole('button', { name: 'yes' }).click();
  assert.deepEqual(await agent.waitClarify('s1', asked.clarify_id), { status: 'answered', response: 'yes' });
});
