// Acceptance 12: "Always allow" and "Allow session" first show exactly what
// the rule will cover and answer only once confirmed; the rule then shows
// in the Rules panel, its text escaped; Revoke takes it away and the same
// command is asked again; Enter answers "once" only from the approval card.
// Issue 18 §4: no prefix that ends at a program that runs others (sudo,
// bash, env, ...) is offered, and "and any options" is unticked by default
// and says in plain words what ticking it allows.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, serverAndBrowser, waitArmed, waitText } from './support.mjs';

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
  assert.deepEqual(options, ['Exactly this command', 'Starts with: git push', 'Starts with: git push origin']);
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
  await waitArmed(page, '#approval-card');

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
    'git push origin main': ['git push', 'git push origin'],
    'git log -1 --output=x': ['git log', 'git log -1'],
    'sudo apt-get install -y curl': ['sudo apt-get', 'sudo apt-get install', 'sudo apt-get install -y'],
    'sudo -u root rm -rf x': ['sudo -u root rm', 'sudo -u root rm -rf'],
    'env A=1 ls -la': ['env A=1 ls'],
    'bash -c reboot': [],
    'python3 -m http.server 80': [],
    'timeout 5 make test x': ['timeout 5 make test'],
    'docker run img ls x': ['docker run img ls'],
    'ls *.txt x': [],
    'find . -name x -print': [],
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
    const { loadConfig } = await import('./transport.js');
    const { rule_runners } = await loadConfig();
    return Object.fromEntries(commands.map((command) => [command, prefixChoices(command, rule_runners)]));
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
  // And the leading words not offered for ending at a program that runs
  // others are the ones the server refuses: the page and the server read
  // prefixes alike.
  const refused = {
    'git push origin main': ['git'],
    'sudo apt-get install -y curl': ['sudo'],
    'sudo -u root rm -rf x': ['sudo', 'sudo -u', 'sudo -u root'],
    'env A=1 ls -la': ['env', 'env A=1'],
    'bash -c reboot': ['bash', 'bash -c'],
    'python3 -m http.server 80': ['python3', 'python3 -m', 'python3 -m http.server'],
    'timeout 5 make test x': ['timeout', 'timeout 5', 'timeout 5 make'],
    'docker run img ls x': ['docker', 'docker run', 'docker run img'],
    'find . -name x -print': ['find', 'find .', 'find . -name', 'find . -name x'],
  };
  for (const [command, prefixes] of Object.entries(refused)) {
    for (const scope of prefixes) {
      const session_id = `refused-${(n += 1)}`;
      const { approval_id } = await agent.submitApproval({ session_id, command });
      const response = await fetch(`${env.server.url}/api/approval/respond`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ session_id, approval_id, choice: 'always', scope }),
      });
      assert.equal(response.status, 400, `${JSON.stringify(command)} with scope ${JSON.stringify(scope)}: ${await response.text()}`);
    }
  }
  assert.deepEqual(page.problems, []);
});

test('no prefix that ends at a program that runs others is offered', async () => {
  const { agent } = env.server;
  const page = await openPage(await env.browser.newContext(), env.server.url);
  await showApproval(page, agent, { session_id: 'r5', command: 'sudo -u root apt-get install -y curl' });
  await page.locator('#approval-card [data-choice="always"]').click();
  await dialog(page).waitFor({ state: 'visible', timeout: 1000 });
  const options = await dialog(page).locator('select option').allTextContents();
  assert.deepEqual(options, [
    'Exactly this command',
    'Starts with: sudo -u root apt-get',
    'Starts with: sudo -u root apt-get install',
    'Starts with: sudo -u root apt-get install -y',
  ]);
  await dialog(page).locator('.rule-confirm-cancel').click();

  await showApproval(page, agent, { session_id: 'r6', command: 'bash -c reboot' });
  await page.locator('#approval-card [data-choice="session"]').click();
  await dialog(page).waitFor({ state: 'visible', timeout: 1000 });
  assert.deepEqual(await dialog(page).locator('select option').allTextContents(), ['Exactly this command']);
  assert.equal(await dialog(page).locator('select').isDisabled(), true);
  assert.equal(await dialog(page).locator('.rule-confirm-options').isVisible(), false, 'no options box for the exact command');
  await dialog(page).locator('.rule-confirm-cancel').click();
  assert.deepEqual(page.problems, []);
});

test('"and any options" is unticked, says what it allows, and only ticked covers added options', async () => {
  const { agent } = env.server;
  const page = await openPage(await env.browser.newContext(), env.server.url);
  const plain = await showApproval(page, agent, { session_id: 'r7', command: 'git show HEAD' });
  await page.locator('#approval-card [data-choice="always"]').click();
  await dialog(page).waitFor({ state: 'visible', timeout: 1000 });
  const box = dialog(page).locator('.rule-confirm-options');
  assert.equal(await box.isVisible(), false, 'hidden while the exact command is picked');
  await dialog(page).locator('select').selectOption('git show');
  assert.equal(await box.isVisible(), true);
  assert.equal(await box.locator('input[type="checkbox"]').isChecked(), false, 'unticked by default');
  assert.match(await box.textContent(), /and any options/);
  assert.match(await box.textContent(), /write any file or run another program/);
  assert.match(await dialog(page).locator('.rule-confirm-explain').textContent(), /no options \(words starting with -\)/);
  await dialog(page).locator('.rule-confirm-accept').click();
  assert.deepEqual(await agent.waitApproval('r7', plain.approval_id), { status: 'answered', choice: 'always' });
  const option = await agent.submitApproval({ session_id: 'r8', command: 'git show --output=/tmp/x HEAD' });
  assert.equal(option.auto, undefined, 'an option the human did not see is asked about');
  assert.equal((await agent.submitApproval({ session_id: 'r8', command: 'git show main' })).auto, true);

  const ticked = await showApproval(page, agent, { session_id: 'r9', command: 'git log -1 --stat' });
  await page.locator('#approval-card [data-choice="always"]').click();
  await dialog(page).waitFor({ state: 'visible', timeout: 1000 });
  await dialog(page).locator('select').selectOption('git log');
  assert.match(await dialog(page).locator('.rule-confirm-explain').textContent(), /the rule would not cover it/, 'git log -1 --stat adds options');
  await box.locator('input[type="checkbox"]').check();
  assert.match(await dialog(page).locator('.rule-confirm-explain').textContent(), /options \(-x, --flag\) included/);
  assert.doesNotMatch(await dialog(page).locator('.rule-confirm-explain').textContent(), /would not cover/);
  await dialog(page).locator('.rule-confirm-accept').click();
  assert.deepEqual(await agent.waitApproval('r9', ticked.approval_id), { status: 'answered', choice: 'always' });
  const any = await agent.submitApproval({ session_id: 'r10', command: 'git log -p --output=/tmp/y' });
  assert.equal(any.auto, true, 'ticked, added options are covered');
  const rule = page.locator('#rule-list .rule', { hasText: 'any options included' });
  await rule.waitFor({ timeout: 2000 });
  assert.equal(await rule.locator('.rule-scope').textContent(), 'git log');
  assert.deepEqual(page.problems, []);
});

test('an action that is not a command: the card shows the action, and "always" covers exactly that action', async () => {
  const { agent } = env.server;
  const page = await openPage(await env.browser.newContext(), env.server.url);
  const action = { type: 'edit', path: 'config.toml', edits: [{ old: 'debug = false', new: 'debug = true' }] };
  const summary = 'edit config.toml (1 edit, +1 -1)';
  // The card shows the edit itself (its path and diff), not the summary.
  const shown = waitText(page, '#approval-card .approval-action', 'config.toml', 5000);
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
