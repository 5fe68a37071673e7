// Acceptance 12: "Always allow" and "Allow session" first show exactly what
// the rule will cover and answer only once confirmed; the rule then shows
// in the Rules panel, its text escaped; Revoke takes it away and the same
// command is asked again; Enter answers "once" only from the approval card.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, serverAndBrowser, waitText } from './support.mjs';

const env = serverAndBrowser();

const dialog = (page) => page.locator('#rule-confirm');

async function showApproval(page, agent, body) {
  const shown = waitText(page, '#approval-card .approval-command', body.command.split('\n')[0], 2000);
  const submitted = await agent.submitApproval(body);
  await page.locator(`#session-list [data-session-id="${body.session_id}"] button`).click();
  await shown;
  return submitted;
}

test('always allow: confirm a prefix, see the rule, revoke it, and the command is asked again', async () => {
  const { agent } = env.server;
  const page = await openPage(await env.browser.newContext(), env.server.url);
  const command = 'git push origin main';
  const first = await showApproval(page, agent, { session_id: 'r1', command });

  await page.locator('#approval-card [data-choice="always"]').click();
  await dialog(page).waitFor({ state: 'visible', timeout: 1000 });
  assert.equal(await dialog(page).locator('.rule-confirm-scope').textContent(), command, 'the exact command by default');
  const options = await dialog(page).locator('select option').allTextContents();
  assert.deepEqual(options, ['Exactly this command', 'Starts with: git', 'Starts with: git push', 'Starts with: git push origin']);
  assert.deepEqual(await agent.waitApproval('r1', first.approval_id, 300), { status: 'pending' }, 'nothing is answered before the human confirms');
  await dialog(page).locator('select').selectOption('git push');
  assert.equal(await dialog(page).locator('.rule-confirm-scope').textContent(), 'git push');
  assert.match(await dialog(page).locator('.rule-confirm-explain').textContent(), /in every session/);
  await dialog(page).locator('.rule-confirm-accept').click();
  assert.deepEqual(await agent.waitApproval('r1', first.approval_id), { status: 'answered', choice: 'always' });
  await dialog(page).waitFor({ state: 'hidden', timeout: 1000 });

  await waitText(page, '#rule-list .rule-scope', 'git push', 2000);
  assert.equal(await page.locator('#rule-list .rule').count(), 1);
  assert.equal(await page.locator('#rule-list .rule-lifetime').textContent(), 'Always');
  assert.equal(await page.locator('#rule-list .rule-command code').textContent(), command);
  const covered = await agent.submitApproval({ session_id: 'r2', command: 'git push origin dev' });
  assert.equal(covered.auto, true, 'the rule answers what it covers');

  await page.locator('#rule-list .rule-revoke').click();
  await page.locator('#rule-list .rule').waitFor({ state: 'detached', timeout: 2000 });
  await page.locator('#rules-empty').waitFor({ state: 'visible', timeout: 1000 });
  const again = await showApproval(page, agent, { session_id: 'r2', command: 'git push origin dev' });
  assert.equal(again.pending_count, 1, 'a revoked rule answers nothing: the command is queued');
  assert.equal(again.auto, undefined);
  assert.deepEqual(page.problems, []);
});

test('allow session: the scope is shown escaped, cancel answers nothing, confirm makes a session rule', async () => {
  const { agent } = env.server;
  const page = await openPage(await env.browser.newContext(), env.server.url);
  const command = 'echo safe\n\u202Etxt.exe';
  const escaped = 'echo safe\\n\\u202Etxt.exe';
  const asked = await showApproval(page, agent, { session_id: 'r3', command });

  await page.locator('#approval-card [data-choice="session"]').click();
  await dialog(page).waitFor({ state: 'visible', timeout: 1000 });
  assert.equal(await dialog(page).locator('.rule-confirm-scope').textContent(), escaped);
  assert.equal(await dialog(page).locator('.rule-confirm-scope .escaped').count(), 2, 'hidden characters are marked');
  assert.equal(await dialog(page).locator('select').isDisabled(), true, 'no prefix of a command with a line break');
  await page.keyboard.press('Escape');
  await dialog(page).waitFor({ state: 'hidden', timeout: 1000 });
  assert.deepEqual(await agent.waitApproval('r3', asked.approval_id, 300), { status: 'pending' }, 'a cancelled confirmation answers nothing');

  await page.locator('#approval-card [data-choice="session"]').click();
  await dialog(page).locator('.rule-confirm-accept').click();
  assert.deepEqual(await agent.waitApproval('r3', asked.approval_id), { status: 'answered', choice: 'session' });
  const rule = page.locator('#rule-list .rule', { hasText: 'Session r3' });
  await rule.waitFor({ timeout: 2000 });
  assert.equal(await rule.locator('.rule-scope').textContent(), escaped);
  assert.equal(await rule.locator('.rule-scope .escaped').count(), 2);
  const injected = await page.evaluate(() => document.querySelectorAll('#rule-list script, #rule-list img').length);
  assert.equal(injected, 0);
  assert.deepEqual(page.problems, []);
});

test('Enter answers once only with focus on the approval card', async () => {
  const { agent } = env.server;
  const page = await openPage(await env.browser.newContext(), env.server.url);
  const asked = await showApproval(page, agent, { session_id: 'r4', command: 'make test' });

  await page.evaluate(() => document.activeElement?.blur());
  await page.keyboard.press('Enter');
  await page.locator('#rules-heading').click();
  await page.keyboard.press('Enter');
  assert.deepEqual(await agent.waitApproval('r4', asked.approval_id, 300), { status: 'pending' }, 'Enter elsewhere answers nothing');
  await waitText(page, '#approval-card .approval-command', 'make test', 1000);

  await page.locator('#approval-card .approval-command').click();
  await page.keyboard.press('Enter');
  assert.deepEqual(await agent.waitApproval('r4', asked.approval_id), { status: 'answered', choice: 'once' });
  assert.deepEqual(page.problems, []);
});

test('the prefixes offered are leading words the server accepts as a scope', async () => {
  const { agent } = env.server;
  const page = await openPage(await env.browser.newContext(), env.server.url);
  const cases = {
    'git push origin main': ['git', 'git push', 'git push origin'],
    'ls  -la': ['ls'],
    'a b c d e f g h': ['a', 'a b', 'a b c', 'a b c d', 'a b c d e', 'a b c d e f'],
    reboot: [],
    ' ls -l': [],
    'git push && rm -rf /': [],
    'echo "hi there"': [],
    'cat x\ny': [],
  };
  const offered = await page.evaluate(async (commands) => {
    const { prefixChoices } = await import('./rules.js');
    return Object.fromEntries(commands.map((command) => [command, prefixChoices(command)]));
  }, Object.keys(cases));
  assert.deepEqual(offered, cases);
  // Each in a session of its own, so no rule granted here covers the next.
  let n = 0;
  for (const [command, prefixes] of Object.entries(cases)) {
    for (const scope of prefixes) {
      const session_id = `prefixes-${(n += 1)}`;
      const { approval_id } = await agent.submitApproval({ session_id, command });
      const response = await fetch(`${env.server.url}/api/approval/respond`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ session_id, approval_id, choice: 'session', scope }),
      });
      const body = await response.text();
      assert.deepEqual([response.status, JSON.parse(body)], [200, { ok: true, choice: 'session' }], `${JSON.stringify(command)} with scope ${JSON.stringify(scope)}: ${body}`);
    }
  }
  assert.deepEqual(page.problems, []);
});

test('an action that is not a command: the card shows its summary, and "always" covers exactly that action', async () => {
  const { agent } = env.server;
  const page = await openPage(await env.browser.newContext(), env.server.url);
  const action = { type: 'edit', path: 'config.toml', edits: [{ old: 'debug = false', new: 'debug = true' }] };
  const summary = 'edit config.toml (1 edit, +1 -1)';
  const shown = waitText(page, '#approval-card .approval-command', summary, 2000);
  const first = await agent.submitApproval({ session_id: 'a1', action });
  await page.locator('#session-list [data-session-id="a1"] button').click();
  await shown;
  await page.locator('#approval-card [data-choice="always"]').click();
  await dialog(page).waitFor({ state: 'visible', timeout: 1000 });
  const options = await dialog(page).locator('select option').allTextContents();
  assert.deepEqual(options, ['Exactly this action'], 'no prefix of a summary is offered');
  await dialog(page).locator('.rule-confirm-accept').click();
  assert.deepEqual(await agent.waitApproval('a1', first.approval_id), { status: 'answered', choice: 'always' });
  await page.locator('#rule-list .rule-scope', { hasText: summary }).waitFor({ timeout: 2000 });
  const again = await agent.submitApproval({ session_id: 'a2', action });
  assert.equal(again.auto, true, 'the same action is covered');
  const command = await agent.submitApproval({ session_id: 'a2', command: summary });
  assert.equal(command.auto, undefined, 'a command that reads like it is not');
  assert.deepEqual(page.problems, []);
});
