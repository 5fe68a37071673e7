// Acceptance 6: a question containing <img src=x onerror=alert(1)> is shown
// as those characters, and nothing runs.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, serverAndBrowser, waitText } from './support.mjs';

const env = serverAndBrowser();

test('prompt text is text, never HTML', async () => {
  const { agent } = env.server;
  const page = await openPage(await env.browser.newContext(), env.server.url);
  const dialogs = [];
  page.on('dialog', async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  await page.exposeFunction('askgateTestPwned', (what) => dialogs.push(`ran: ${what}`));

  const question = '<img src=x onerror=alert(1)>';
  const choice = '<b onmouseover=alert(2)>bold</b><script>askgateTestPwned("script")</script>';
  const command = '<img src=y onerror=askgateTestPwned("command")> && echo "</code></pre><svg onload=alert(3)>"';
  const description = '<i>emphasis</i> & <a href="javascript:alert(4)">link</a>';
  const shown = waitText(page, '#clarify-card .clarify-question', question, 1000);
  await agent.submitClarify({ session_id: 'x1', question, choices: [choice] });
  await agent.submitApproval({ session_id: 'x1', command, description, pattern_keys: ['<u>key</u>'] });
  await shown;
  await waitText(page, '#approval-card .approval-command', command, 1000);

  assert.equal(await page.locator('#clarify-card .clarify-question').textContent(), question);
  assert.equal(await page.locator('#clarify-card .choice-text').textContent(), choice);
  assert.equal(await page.locator('#approval-card .approval-command').textContent(), command);
  assert.equal(await page.locator('#approval-card .approval-description').textContent(), description);
  assert.equal(await page.locator('#approval-card .pattern-keys li').textContent(), '<u>key</u>');
  const injected = await page.evaluate(() => document.querySelectorAll('main img, main b, main i, main a, main u, main svg, main script').length);
  assert.equal(injected, 0, 'markup from prompt text became elements');

  // Hovering and clicking where injected handlers would sit runs nothing either.
  await page.locator('#clarify-card .choice-text').hover();
  await page.locator('#approval-card .approval-command').click();
  assert.deepEqual(dialogs, []);
  assert.deepEqual(page.problems, []);
});
