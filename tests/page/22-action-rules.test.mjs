// Issue 19 §3: on an action that is not a command, the rule confirmation
// offers the wider scopes of its type (files under a directory, URLs under
// a prefix, the tool with any input), each said in plain words before it
// is granted; a directory granted answers a later edit under it at once,
// not one beside it; the Rules panel says what the rule covers.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, serverAndBrowser, waitArmed, waitText } from './support.mjs';

const env = serverAndBrowser();
const CARD = '#approval-card';
const dialog = (page) => page.locator('#rule-confirm');

async function open(session) {
  return openPage(await env.browser.newContext(), env.server.url, { hash: `#s=${session}` });
}

const edit = (path) => ({ type: 'edit', path, edits: [{ old: 'a = 1', new: 'a = 2' }] });

test('a directory granted on an edit answers a later edit under it, not one beside it', async () => {
  const { agent } = env.server;
  const page = await open('d1');
  const first = await agent.submitApproval({ session_id: 'd1', action: edit('src/config.toml'), cwd: '/srv/app' });
  await waitText(page, `${CARD} .approval-action`, 'src/config.toml', 3000);
  await waitArmed(page, CARD);

  await page.locator(`${CARD} [data-choice="always"]`).click();
  await dialog(page).waitFor({ state: 'visible', timeout: 1000 });
  const options = await dialog(page).locator('select option').allTextContents();
  assert.deepEqual(options, ['Exactly this action', 'Files under: /srv/app/src/', 'Files under: /srv/app/', 'Files under: /srv/']);
  await dialog(page).locator('select').selectOption({ label: 'Files under: /srv/app/src/' });
  assert.equal(await dialog(page).locator('.rule-confirm-scope').textContent(), '/srv/app/src/');
  const explained = await dialog(page).locator('.rule-confirm-explain').textContent();
  assert.match(explained, /edits of any file under this directory/);
  assert.match(explained, /symlinks are not followed/);
  assert.match(explained, /in every session/);
  assert.deepEqual(await agent.waitApproval('d1', first.approval_id, 300), { status: 'pending' }, 'nothing is answered before the human confirms');
  await dialog(page).locator('.rule-confirm-accept').click();
  assert.deepEqual(await agent.waitApproval('d1', first.approval_id), { status: 'answered', choice: 'always' });

  const rule = page.locator('#rule-list .rule');
  await waitText(page, '#rule-list .rule-scope', '/srv/app/src/', 2000);
  assert.match(await rule.locator('.rule-match').textContent(), /^edits of any file under this directory/);
  assert.equal(await rule.locator('.rule-command code').textContent(), 'edit src/config.toml (1 edit, +1 -1)');

  const under = await agent.submitApproval({ session_id: 'd2', action: edit('/srv/app/src/lib/mod.rs') });
  assert.equal(under.auto, true, `an edit under the directory is answered at once: ${JSON.stringify(under)}`);
  assert.equal(under.choice, 'always');
  const beside = await agent.submitApproval({ session_id: 'd2', action: edit('/srv/app/src2/mod.rs') });
  assert.equal(beside.auto, undefined, 'a sibling directory is asked');
  const climbing = await agent.submitApproval({ session_id: 'd2', action: edit('/srv/app/src/../../etc/passwd') });
  assert.equal(climbing.auto, undefined, 'a path with .. is asked');
  assert.deepEqual(page.problems, []);
});

test('a fetch offers URL prefixes and a tool offers any input, in plain words', async () => {
  const { agent } = env.server;
  const page = await open('u1');
  const fetch = await agent.submitApproval({ session_id: 'u1', action: { type: 'fetch', url: 'HTTPS://Docs.Example.org/api/v1/users?page=2' } });
  // Queued behind the fetch, so the card shows it next.
  const tool = await agent.submitApproval({ session_id: 'u1', action: { type: 'tool', name: 'mcp__db__query', input: { sql: 'select 1' } } });
  await waitText(page, `${CARD} .approval-action`, 'Docs.Example.org', 3000);
  await waitArmed(page, CARD);
  await page.locator(`${CARD} [data-choice="session"]`).click();
  await dialog(page).waitFor({ state: 'visible', timeout: 1000 });
  const options = await dialog(page).locator('select option').allTextContents();
  assert.deepEqual(options, [
    'Exactly this action',
    'URLs under: https://docs.example.org/api/v1/',
    'URLs under: https://docs.example.org/api/',
    'URLs under: https://docs.example.org/',
  ]);
  await dialog(page).locator('select').selectOption({ label: 'URLs under: https://docs.example.org/api/' });
  assert.match(await dialog(page).locator('.rule-confirm-explain').textContent(), /GET requests to any URL under this prefix/);
  await dialog(page).locator('.rule-confirm-accept').click();
  assert.deepEqual(await agent.waitApproval('u1', fetch.approval_id), { status: 'answered', choice: 'session' });
  const later = await agent.submitApproval({ session_id: 'u1', action: { type: 'fetch', url: 'https://docs.example.org/api/v2/x' } });
  assert.equal(later.auto, true);
  const elsewhere = await agent.submitApproval({ session_id: 'u3', action: { type: 'fetch', url: 'https://docs.example.org.evil/api/x' } });
  assert.equal(elsewhere.auto, undefined);

  await waitText(page, `${CARD} .approval-action`, 'mcp__db__query', 3000);
  await waitArmed(page, CARD);
  await page.locator(`${CARD} [data-choice="always"]`).click();
  await dialog(page).waitFor({ state: 'visible', timeout: 1000 });
  const toolOptions = await dialog(page).locator('select option').allTextContents();
  assert.deepEqual(toolOptions, ['Exactly this action', 'This tool with any input: mcp__db__query']);
  await dialog(page).locator('select').selectOption({ index: 1 });
  assert.match(await dialog(page).locator('.rule-confirm-explain').textContent(), /with any input at all/);
  await dialog(page).locator('.rule-confirm-accept').click();
  assert.deepEqual(await agent.waitApproval('u1', tool.approval_id), { status: 'answered', choice: 'always' });
  const anyInput = await agent.submitApproval({ session_id: 'u2', action: { type: 'tool', name: 'mcp__db__query', input: { sql: 'drop table x' } } });
  assert.equal(anyInput.auto, true);
  assert.deepEqual(page.problems, []);
});
