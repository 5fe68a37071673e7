// Issue 22 §4: many agents at once. The page lists the agents waiting;
// "Approve N reads" answers every head that only reads, together, once
// armed; pausing an agent hides its prompts until it is resumed; "Stop"
// and "Stop every agent" cancel after a confirmation that arms like a
// card. The panel and its dialog are axe-clean.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { createAgent, serverAndBrowser, waitArmed, waitConnection, waitText } from './support.mjs';

const AGENT = 'agent-token-for-the-triage-test';
const HUMAN = 'human-token-for-the-triage-test';
const TOKENS = { codex: 'codex-token-for-the-triage-test', 'claude-code': 'claude-token-for-the-triage-test' };

// An agent is its credential (docs/PROTOCOL.md §7): two named agents, as
// `askgate tokens add agent NAME` writes them.
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'askgate-triage-'));
fs.chmodSync(dataDir, 0o700);
const digest = (token) => crypto.createHash('sha256').update(token).digest('hex');
const lines = Object.entries(TOKENS).map(([name, token]) => `${name} agent ${digest(token)} 1\n`);
fs.writeFileSync(path.join(dataDir, 'credentials'), lines.join(''), { mode: 0o600 });
const env = serverAndBrowser(['--data-dir', dataDir, '--agent-token', AGENT, '--human-token', HUMAN]);
test.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));
const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const PANEL = '#triage';

// The agent API as the credential `name`.
const agents = {};
function as(name) {
  agents[name] ??= createAgent(env.server.url, { agent: TOKENS[name] });
  return agents[name];
}

// A page signed in as the human, at `hash`.
async function open(hash = '', options = {}) {
  const context = await env.browser.newContext(options);
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (error) => page.problems.push(`pageerror: ${error.message}`));
  await page.goto(`${env.server.url}/${hash}`);
  await page.locator('#login').waitFor({ state: 'visible', timeout: 5000 });
  await page.locator('#login-token').fill(HUMAN);
  await page.locator('#login-token').press('Enter');
  await page.locator('#login').waitFor({ state: 'hidden', timeout: 3000 });
  await waitConnection(page, 'live', 5000);
  return page;
}

function read(session_id, tool, input) {
  return as('claude-code').submitApproval({ session_id, agent: 'claude-code', action: { type: 'tool', name: tool, input } });
}

function command(session_id, agent, text) {
  return as(agent).submitApproval({ session_id, command: text });
}

async function agentRow(page, agent) {
  return page.locator(`${PANEL} .triage-agent[data-agent="${agent}"]`);
}

test('the reads of every agent are approved together, and nothing else', async () => {
  const first = await read('t-read-1', 'Read', { file_path: 'README.md' });
  const second = await read('t-read-2', 'Grep', { pattern: 'TODO' });
  const write = await command('t-write', 'codex', 'rm -rf build');
  const page = await open();
  await waitText(page, `${PANEL} .triage-reads`, 'Approve 2 reads', 3000);
  await waitText(page, `${PANEL} .triage-agent[data-agent="codex"]`, '1 approval', 1000);
  await waitArmed(page, PANEL);
  await page.locator(`${PANEL} .triage-reads`).click();
  assert.equal((await as('claude-code').waitApproval('t-read-1', first.approval_id)).choice, 'once');
  assert.equal((await as('claude-code').waitApproval('t-read-2', second.approval_id)).choice, 'once');
  assert.equal((await as('codex').waitApproval('t-write', write.approval_id, 300)).status, 'pending', 'a command is no read');
  await page.locator(`${PANEL} .triage-reads`).waitFor({ state: 'hidden', timeout: 3000 });
  await cleanUp(page);
  assert.deepEqual(page.problems, []);
});

test('"Approve N reads" takes no click before it is armed, nor after the reads changed', async () => {
  const first = await read('t-arm-1', 'Read', { file_path: 'a' });
  await read('t-arm-2', 'Read', { file_path: 'b' });
  await command('t-arm-3', 'codex', 'make');
  const page = await open();
  await waitText(page, `${PANEL} .triage-reads`, 'Approve 2 reads', 3000);
  await page.locator(`${PANEL} .triage-reads`).click({ force: true });
  // A third read arrives: the button names three and arms again.
  await read('t-arm-4', 'Glob', { pattern: '*.rs' });
  await waitText(page, `${PANEL} .triage-reads`, 'Approve 3 reads', 3000);
  assert.equal(await page.getAttribute(`${PANEL} .triage-reads`, 'aria-disabled'), 'true');
  assert.equal((await as('claude-code').waitApproval('t-arm-1', first.approval_id, 300)).status, 'pending', 'the early click answered nothing');
  await cleanUp(page);
});

test('a paused agent\'s prompts wait unseen until it is resumed', async () => {
  const asked = await command('t-pause', 'codex', 'cargo publish');
  await command('t-other', 'claude-code', 'make test');
  const page = await open('#s=t-pause');
  await waitText(page, '#approval-card .approval-command', 'cargo publish', 3000);
  const row = await agentRow(page, 'codex');
  await row.locator('.triage-pause').click();
  await waitText(page, `${PANEL} .triage-agent[data-agent="codex"] .triage-counts`, 'paused', 3000);
  await page.waitForFunction(() => document.querySelector('#approval-card').hidden, null, { timeout: 3000 });
  assert.equal((await as('codex').waitApproval('t-pause', asked.approval_id, 300)).status, 'pending', 'it still waits');
  await row.locator('.triage-pause').click();
  await waitText(page, '#approval-card .approval-command', 'cargo publish', 3000);
  await cleanUp(page);
});

test('stop cancels one agent after its confirmation, and "Keep waiting" cancels nothing', async () => {
  const codex = await command('t-stop-1', 'codex', 'cargo build');
  const claude = await command('t-stop-2', 'claude-code', 'make');
  const page = await open();
  const row = await agentRow(page, 'codex');
  await row.locator('.triage-stop').click();
  await waitText(page, '#stop-confirm .stop-confirm-title', 'Stop codex?', 3000);
  await page.locator('#stop-confirm .stop-confirm-cancel').click();
  assert.equal((await as('codex').waitApproval('t-stop-1', codex.approval_id, 300)).status, 'pending');

  await row.locator('.triage-stop').click();
  await waitText(page, '#stop-confirm .stop-confirm-explain', '1 waiting prompt', 3000);
  await page.locator('#stop-confirm .stop-confirm-accept').click({ force: true }); // before it is armed: nothing
  assert.equal((await as('codex').waitApproval('t-stop-1', codex.approval_id, 300)).status, 'pending');
  await waitArmed(page, '#stop-confirm');
  await page.locator('#stop-confirm .stop-confirm-accept').click();
  assert.equal((await as('codex').waitApproval('t-stop-1', codex.approval_id)).status, 'cancelled');
  assert.equal((await as('claude-code').waitApproval('t-stop-2', claude.approval_id, 300)).status, 'pending');
  await cleanUp(page);
});

test('axe: the triage list and the stop dialog, light and dark, 390 and 1280 px', async () => {
  await command('t-axe-1', 'codex', 'cargo build');
  await command('t-axe-2', 'claude-code', 'make');
  await read('t-axe-3', 'Read', { file_path: 'x' });
  await read('t-axe-4', 'Read', { file_path: 'y' });
  for (const colorScheme of ['light', 'dark']) {
    for (const width of [390, 1280]) {
      const page = await open('', { colorScheme, viewport: { width, height: 900 }, bypassCSP: true });
      await waitText(page, `${PANEL} .triage-reads`, 'Approve 2 reads', 3000);
      await axeClean(page, `${colorScheme} ${width}`);
      await page.locator(`${PANEL} .triage-stop-all`).click();
      await waitArmed(page, '#stop-confirm');
      await axeClean(page, `${colorScheme} ${width} dialog`, '#stop-confirm');
      await page.locator('#stop-confirm .stop-confirm-cancel').click();
      await page.context().close();
    }
  }
  const page = await open();
  await cleanUp(page);
});

// The page, or only `within` (an open modal dialog: what is behind it is
// inert, and its backdrop blends the colours axe would measure there).
async function axeClean(page, where, within = null) {
  await page.addScriptTag({ path: axePath });
  const result = await page.evaluate((css) =>
    window.axe.run(css ? document.querySelector(css) : document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } }), within,
  );
  const violations = result.violations.map((v) => `${v.id}: ${v.nodes.map((n) => `${n.target.join(' ')} ${n.failureSummary.replace(/\s+/g, ' ')}`).join(', ')}`);
  assert.deepEqual(violations, [], where);
}

// Stops every agent through the page's own switch, so the next test starts
// with nothing waiting.
async function cleanUp(page) {
  const stopAll = page.locator(`${PANEL} .triage-stop-all`);
  if (await stopAll.isVisible()) {
    await stopAll.click();
    await waitArmed(page, '#stop-confirm');
    await page.locator('#stop-confirm .stop-confirm-accept').click();
    await page.waitForFunction(() => document.querySelector('#triage').hidden, null, { timeout: 3000 });
  }
  await page.context().close();
}
