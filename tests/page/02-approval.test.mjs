// Acceptance 2: two approvals show "1 of 2"; Enter answers the first with
// `once`; the second then shows; each of the four buttons sends its choice
// ("Allow session" and "Always allow" once their rule is confirmed, "Deny"
// from its deny box).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, serverAndBrowser, waitArmed, waitText } from './support.mjs';

const env = serverAndBrowser();

const BUTTONS = { once: 'Allow once', session: 'Allow session', always: 'Always allow', deny: 'Deny' };

test('approvals: "1 of 2", Enter = once, then every button sends its choice', async () => {
  const { agent } = env.server;
  const page = await openPage(await env.browser.newContext(), env.server.url);
  const submit = (n) =>
    agent.submitApproval({
      session_id: 'a1',
      command: `rm -rf /tmp/askgate-${n}`,
      description: `delete scratch directory ${n}`,
      pattern_keys: [`delete scratch ${n}`],
    });

  const shown = waitText(page, '#approval-card .approval-command', 'rm -rf /tmp/askgate-0', 1000);
  const first = await submit(0);
  const second = await submit(1);
  await shown;
  await waitText(page, '#approval-card .card-position', '1 of 2', 1000);
  await waitText(page, '#approval-card .pattern-keys', 'delete scratch 0', 1000);
  await waitText(page, '#approval-card .approval-description', 'delete scratch directory 0', 1000);

  // Focus is on the card (never on a button that approves); once the card
  // has armed, Enter answers "once".
  await waitArmed(page, '#approval-card');
  await page.keyboard.press('Enter');
  assert.deepEqual(await agent.waitApproval('a1', first.approval_id), { status: 'answered', choice: 'once' });
  await waitText(page, '#approval-card .approval-command', 'rm -rf /tmp/askgate-1', 1000);
  await waitText(page, '#approval-card .card-position', '1 of 1', 1000);

  let current = second;
  let n = 1;
  for (const [choice, label] of Object.entries(BUTTONS)) {
    await page.locator('#approval-card').getByRole('button', { name: label, exact: true }).click();
    if (choice === 'session' || choice === 'always') await page.locator('#rule-confirm .rule-confirm-accept').click();
    if (choice === 'deny') await page.locator('#approval-card .deny-send').click(); // the deny box (issue 19)
    assert.deepEqual(await agent.waitApproval('a1', current.approval_id), { status: 'answered', choice });
    if (choice === 'deny') break;
    n += 1;
    const next = waitText(page, '#approval-card .approval-command', `rm -rf /tmp/askgate-${n}`, 1000);
    current = await submit(n);
    await next;
  }
  await page.locator('#approval-card').waitFor({ state: 'hidden', timeout: 1000 });
  assert.deepEqual(page.problems, []);
});
