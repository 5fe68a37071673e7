// Issue 19 §5: the page renders each action type (a command with its cwd,
// an edit as a diff with its line counts, a write, a fetch, a tool's
// input), keeps hostile content honest (bidi and CRLF escaped, 5,000 lines
// collapsed behind "show all"), denies with a reason (chips from
// --deny-reasons), approves an edited action, sends a note, and answers
// forms and several-choice questions; a card of each type is axe-clean.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { openPage, serverAndBrowser, waitArmed, waitText } from './support.mjs';

const env = serverAndBrowser(['--deny-reasons', 'not now;use the make target;ask me first']);
const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const CARD = '#approval-card';

async function open(session, options = {}) {
  return openPage(await env.browser.newContext(options), env.server.url, { hash: `#s=${session}` });
}

async function shows(page, text) {
  await waitText(page, CARD, text, 3000);
}

test('each renderer: command with cwd, edit diff, write, fetch, tool', async () => {
  const { agent } = env.server;
  const page = await open('r-cmd');
  const cmd = await agent.submitApproval({
    session_id: 'r-cmd',
    action: { type: 'command', command: 'make deploy', cwd: '/srv/app' },
    reason: 'ship the fix',
    agent: 'claude-code',
  });
  await waitText(page, `${CARD} .approval-command`, 'make deploy', 3000);
  await waitText(page, `${CARD} .approval-cwd`, '/srv/app', 1000);
  await waitText(page, `${CARD} .approval-reason`, 'ship the fix', 1000);
  await waitText(page, `${CARD} .approval-claim-label`, 'claude-code', 1000);
  // What will run comes before the agent's claim.
  assert.ok(await page.evaluate(() => document.querySelector('.approval-command').compareDocumentPosition(document.querySelector('.approval-reason')) & Node.DOCUMENT_POSITION_FOLLOWING));
  await waitArmed(page, CARD);
  await page.locator(`${CARD} [data-choice="once"]`).click();
  assert.equal((await agent.waitApproval('r-cmd', cmd.approval_id)).choice, 'once');

  await agent.submitApproval({
    session_id: 'r-cmd',
    action: { type: 'edit', path: 'src/config.toml', edits: [{ old: 'a = 1\nb = 2\nc = 3', new: 'a = 1\nb = 20\nb2 = 21\nb3 = 22\nc = 3' }] },
  });
  await waitText(page, `${CARD} .approval-action`, 'src/config.toml', 3000);
  await waitText(page, `${CARD} .diff-counts`, '+3 -1', 1000);
  const rows = await page.$$eval(`${CARD} .diff .line`, (lines) => lines.map((l) => `${l.className.replace('line line-', '')}:${l.textContent.trimEnd()}`));
  assert.deepEqual(rows, ['same: a = 1', 'del:-b = 2', 'add:+b = 20', 'add:+b2 = 21', 'add:+b3 = 22', 'same: c = 3']);
  const colours = await page.$$eval(`${CARD} .diff .line-add, ${CARD} .diff .line-del`, (lines) => new Set(lines.map((l) => getComputedStyle(l).color)).size);
  assert.equal(colours, 2, 'added and removed lines differ in colour');
  assert.match(await page.$eval(`${CARD} .diff`, (pre) => getComputedStyle(pre).fontFamily), /mono/i);
  await waitArmed(page, CARD);
  await page.locator(`${CARD} [data-choice="deny"]`).click();
  await page.locator(`${CARD} .deny-send`).click();

  await agent.submitApproval({ session_id: 'r-cmd', action: { type: 'write', path: 'notes/todo.md', content: 'one\ntwo\nthree' } });
  await waitText(page, `${CARD} .approval-action`, 'notes/todo.md', 3000);
  await waitText(page, `${CARD} .write-size`, '13 bytes · 3 lines', 1000);
  await waitText(page, `${CARD} .write-content`, 'three', 1000);
  await waitArmed(page, CARD);
  await page.locator(`${CARD} [data-choice="deny"]`).click();
  await page.locator(`${CARD} .deny-send`).click();

  await agent.submitApproval({ session_id: 'r-cmd', action: { type: 'fetch', url: 'https://example.com/api?q=1', method: 'POST' } });
  await waitText(page, `${CARD} .fetch-line`, 'POST https://example.com/api?q=1', 3000);
  await waitArmed(page, CARD);
  await page.locator(`${CARD} [data-choice="deny"]`).click();
  await page.locator(`${CARD} .deny-send`).click();

  await agent.submitApproval({ session_id: 'r-cmd', action: { type: 'tool', name: 'github.create_issue', input: { repo: 'me/x', labels: ['bug', 'p1'] } } });
  await waitText(page, `${CARD} .approval-action`, 'github.create_issue', 3000);
  const pairs = await page.$$eval(`${CARD} .tool-input > *`, (nodes) => nodes.map((n) => n.textContent.replace(/\s+/g, ' ').trim()));
  assert.deepEqual(pairs, ['labels', '[ "bug", "p1" ]', 'repo', 'me/x']);
  await waitArmed(page, CARD);
  await page.locator(`${CARD} [data-choice="deny"]`).click();
  await page.locator(`${CARD} .deny-send`).click();
  await page.locator(CARD).waitFor({ state: 'hidden', timeout: 3000 });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a hostile diff and write: bidi and CRLF escaped, 5,000 lines collapsed behind "show all"', async () => {
  const { agent } = env.server;
  const page = await open('r-hostile');
  await agent.submitApproval({
    session_id: 'r-hostile',
    action: { type: 'edit', path: 'a.js', edits: [{ old: 'ok();\r\n', new: 'ok();\r\nif (admin\u202E) { grant(); }\r\n' }] },
  });
  await waitText(page, `${CARD} .diff`, '\\u202E', 3000);
  const added = await page.$$eval(`${CARD} .diff .line-add`, (lines) => lines.map((l) => l.textContent));
  assert.ok(added.some((t) => t.includes('if (admin\\u202E) { grant(); }\\r')), added.join(' | '));
  assert.ok(!(await page.$eval(`${CARD} .diff`, (pre) => pre.textContent.includes('\u202E'))), 'no raw bidi character on screen');
  await waitArmed(page, CARD);
  await page.locator(`${CARD} [data-choice="deny"]`).click();
  await page.locator(`${CARD} .deny-send`).click();

  const content = Array.from({ length: 5000 }, (_, n) => `line ${n + 1}`).join('\n');
  await agent.submitApproval({ session_id: 'r-hostile', action: { type: 'write', path: 'big.txt', content } });
  await waitText(page, `${CARD} .write-size`, '5000 lines', 3000);
  const more = page.locator(`${CARD} .show-all`);
  assert.equal(await more.textContent(), 'show all 5000 lines');
  assert.equal(await page.locator(`${CARD} .write-content .line`).count(), 40);
  await more.click();
  assert.equal(await page.locator(`${CARD} .write-content .line`).count(), 5000);
  await waitText(page, `${CARD} .write-content`, 'line 5000', 1000);
  await waitArmed(page, CARD);
  await page.locator(`${CARD} [data-choice="deny"]`).click();
  await page.locator(`${CARD} .deny-send`).click();
  await page.locator(CARD).waitFor({ state: 'hidden', timeout: 3000 });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('deny with a reason chip; the agent gets the reason', async () => {
  const { agent } = env.server;
  const page = await open('r-deny');
  const asked = await agent.submitApproval({ session_id: 'r-deny', command: 'make release' });
  await shows(page, 'make release');
  await waitArmed(page, CARD);
  await page.locator(`${CARD} [data-choice="deny"]`).click();
  await page.locator(`${CARD} .deny-chip`, { hasText: 'use the make target' }).click();
  assert.equal(await page.locator('#deny-reason').inputValue(), 'use the make target');
  await page.locator(`${CARD} .deny-send`).click();
  assert.deepEqual(await agent.waitApproval('r-deny', asked.approval_id), { status: 'answered', choice: 'deny', reason: 'use the make target' });

  const typed = await agent.submitApproval({ session_id: 'r-deny', command: 'make clean' });
  await shows(page, 'make clean');
  await waitArmed(page, CARD);
  await page.locator(`${CARD} [data-choice="deny"]`).click();
  await page.locator('#deny-reason').fill('the tree is shared');
  await page.locator(`${CARD} .deny-send`).click();
  assert.deepEqual(await agent.waitApproval('r-deny', typed.approval_id), { status: 'answered', choice: 'deny', reason: 'the tree is shared' });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('edit and approve: the command, prefilled, changed and sent as edited; a tool input that is not an object is refused', async () => {
  const { agent } = env.server;
  const page = await open('r-edit');
  const asked = await agent.submitApproval({ session_id: 'r-edit', action: { type: 'command', command: 'make deploy', cwd: '/srv/app' } });
  await shows(page, 'make deploy');
  await waitArmed(page, CARD);
  await page.locator(`${CARD} [data-opens="edit"]`).click();
  assert.equal(await page.locator('#edit-command').inputValue(), 'make deploy');
  await page.locator('#edit-command').fill('make deploy --dry-run');
  await page.locator(`${CARD} .edit-send`).click();
  assert.deepEqual(await agent.waitApproval('r-edit', asked.approval_id), {
    status: 'answered',
    choice: 'once',
    edited: { type: 'command', command: 'make deploy --dry-run', cwd: '/srv/app' },
  });

  const tool = await agent.submitApproval({ session_id: 'r-edit', action: { type: 'tool', name: 'search', input: { q: 'askgate' } } });
  await waitText(page, `${CARD} .approval-action`, 'search', 3000);
  await waitArmed(page, CARD);
  await page.locator(`${CARD} [data-opens="edit"]`).click();
  assert.deepEqual(JSON.parse(await page.locator('#edit-input').inputValue()), { q: 'askgate' });
  await page.locator('#edit-input').fill('[1, 2]');
  await page.locator(`${CARD} .edit-send`).click();
  await waitText(page, `${CARD} .edit-error`, 'must be a JSON object', 1000);
  assert.deepEqual(await agent.waitApproval('r-edit', tool.approval_id, 1000), { status: 'pending' });
  await page.locator('#edit-input').fill('{"q": "askgate rust"}');
  await page.locator(`${CARD} .edit-send`).click();
  assert.deepEqual(await agent.waitApproval('r-edit', tool.approval_id), {
    status: 'answered',
    choice: 'once',
    edited: { type: 'tool', name: 'search', input: { q: 'askgate rust' } },
  });

  const edit = await agent.submitApproval({ session_id: 'r-edit', action: { type: 'edit', path: 'x.txt', edits: [{ old: 'a', new: 'b' }] } });
  await waitText(page, `${CARD} .approval-action`, 'x.txt', 3000);
  await waitArmed(page, CARD);
  await page.locator(`${CARD} [data-opens="edit"]`).click();
  await page.locator('#edit-new-0').fill('c');
  await page.locator(`${CARD} .edit-send`).click();
  assert.deepEqual((await agent.waitApproval('r-edit', edit.approval_id)).edited, { type: 'edit', path: 'x.txt', edits: [{ old: 'a', new: 'c' }] });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('a note goes with an approving choice', async () => {
  const { agent } = env.server;
  const page = await open('r-note');
  const asked = await agent.submitApproval({ session_id: 'r-note', command: 'git push' });
  await shows(page, 'git push');
  await page.locator('#approval-note').fill('push to the fork only');
  await waitArmed(page, CARD);
  await page.locator(`${CARD} [data-choice="once"]`).click();
  assert.deepEqual(await agent.waitApproval('r-note', asked.approval_id), { status: 'answered', choice: 'once', note: 'push to the fork only' });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

const SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string', title: 'Project name', description: 'Lower case, no spaces', minLength: 2 },
    db: { type: 'string', title: 'Database', enum: ['pg', 'sqlite'], enumNames: ['PostgreSQL', 'SQLite'] },
    replicas: { type: 'integer', title: 'Replicas', minimum: 1, maximum: 5, default: 1 },
    tls: { type: 'boolean', title: 'TLS' },
    regions: { type: 'array', title: 'Regions', items: { type: 'string', enum: ['eu', 'us', 'ap'] }, minItems: 1 },
  },
  required: ['name', 'db', 'regions'],
};

test('a form: an invalid field is refused in the page; a valid one sends the object', async () => {
  const { agent } = env.server;
  const page = await open('r-form');
  const asked = await agent.submitClarify({ session_id: 'r-form', question: 'New project?', schema: SCHEMA });
  await waitText(page, '#clarify-card .clarify-form', 'Project name', 3000);
  await waitText(page, '#clarify-card .clarify-form', '(required)', 1000);
  await waitText(page, '#clarify-card .clarify-form', 'Lower case, no spaces', 1000);
  await waitArmed(page, '#clarify-card');
  await page.getByLabel('Project name').fill('x');
  await page.getByLabel('PostgreSQL').check();
  await page.getByLabel('eu').check();
  await page.locator('#clarify-card .clarify-form button[type="submit"]').click();
  await waitText(page, '#clarify-card .clarify-form-fields', 'At least 2 characters', 1000);
  assert.equal(await page.getByLabel('Project name').getAttribute('aria-invalid'), 'true');
  assert.deepEqual(await agent.waitClarify('r-form', asked.clarify_id, 1000), { status: 'pending' });
  await page.getByLabel('Project name').fill('atlas');
  await page.getByLabel('Replicas').fill('3');
  await page.locator('#clarify-card .clarify-form button[type="submit"]').click();
  assert.deepEqual(await agent.waitClarify('r-form', asked.clarify_id), {
    status: 'answered',
    response: { name: 'atlas', db: 'pg', replicas: 3, tls: false, regions: ['eu'] },
  });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

test('several choices: checkboxes, sent as a list', async () => {
  const { agent } = env.server;
  const page = await open('r-multi');
  const asked = await agent.submitClarify({ session_id: 'r-multi', question: 'Which checks?', choices: ['lint', 'test', 'bench'], multiple: true });
  await waitText(page, '#clarify-card .clarify-form', 'bench', 3000);
  await waitArmed(page, '#clarify-card');
  await page.getByLabel('lint').check();
  await page.getByLabel('bench').check();
  await page.locator('#clarify-card .clarify-form button[type="submit"]').click();
  assert.deepEqual(await agent.waitClarify('r-multi', asked.clarify_id), { status: 'answered', response: ['lint', 'bench'] });
  assert.deepEqual(page.problems, []);
  await page.context().close();
});

async function violations(page) {
  await page.addScriptTag({ path: axePath });
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } }),
  );
  return result.violations.map((v) => `${v.id}: ${v.nodes.map((node) => `${node.target.join(' ')} (${node.failureSummary.replace(/\s+/g, ' ')})`).join('; ')}`);
}

test('axe: a card of each type, its deny and edit boxes, and a form, light and dark, 390 and 1280 px', async () => {
  const { agent } = env.server;
  const actions = [
    { type: 'command', command: 'make deploy', cwd: '/srv/app' },
    { type: 'edit', path: 'a.txt', edits: [{ old: 'a\nb', new: 'a\nc\u202E' }] },
    { type: 'write', path: 'b.txt', content: Array.from({ length: 60 }, (_, n) => `l${n}`).join('\n') },
    { type: 'fetch', url: 'https://example.com/', method: 'GET' },
    { type: 'tool', name: 'search', input: { q: 'x', n: 3 } },
  ];
  for (const [at, action] of actions.entries()) {
    await agent.submitApproval({ session_id: `axe-${at}`, action, reason: 'because', agent: 'claude-code' });
  }
  await agent.submitClarify({ session_id: 'axe-0', question: 'Form?', schema: SCHEMA });
  for (const colorScheme of ['light', 'dark']) {
    for (const width of [1280, 390]) {
      const context = await env.browser.newContext({ viewport: { width, height: 900 }, colorScheme, bypassCSP: true });
      const found = [];
      for (const [at, action] of actions.entries()) {
        const page = await openPage(context, env.server.url, { hash: `#s=axe-${at}` });
        await page.locator(`${CARD}[data-approval-id]`).waitFor({ state: 'visible', timeout: 3000 });
        await waitText(page, CARD, action.type === 'command' ? action.command : action.path || action.url || action.name, 3000);
        await waitArmed(page, CARD);
        found.push(...(await violations(page)).map((v) => `${action.type}: ${v}`));
        await page.locator(`${CARD} [data-opens="edit"]`).click();
        found.push(...(await violations(page)).map((v) => `${action.type} edit box: ${v}`));
        await page.locator(`${CARD} [data-choice="deny"]`).click();
        found.push(...(await violations(page)).map((v) => `${action.type} deny box: ${v}`));
        assert.deepEqual(page.problems, []);
        await page.close();
      }
      assert.deepEqual(found, [], `${colorScheme} ${width} px`);
    }
  }
});
