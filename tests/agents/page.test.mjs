// The human answers real agents from the page, in Chromium (browser.mjs):
// Claude Code's Bash call approved on its card runs; its Edit is shown as
// the diff and approving applies exactly it; and two agents waiting at
// once (Claude Code and Codex) are two sessions on the page, each named
// as the hooks name them (the project directory and a short id) with its
// directory on the card.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startAskgate } from './harness.mjs';
import { claude, runClaude } from './claude-agent.mjs';
import { codex, runCodex } from './codex-agent.mjs';
import { page, signedIn } from './browser.mjs';

const CARD = '#approval-card';
const DEADLINE = 60000;
const skip = page.skip || claude.skip;
let browser = null;

before(async () => { if (!skip) browser = await page.support.launchBrowser(); });
after(async () => { await browser?.close(); });

/// The card shows `text` in `selector`, is armed, and the human clicks
/// "once".
async function approveOnce(tab, selector, text) {
  await page.support.waitText(tab, `${CARD} ${selector}`, text, DEADLINE);
  await page.support.waitArmed(tab, CARD, DEADLINE);
  await tab.locator(`${CARD} [data-choice="once"]`).click();
}

test('Claude Code: a Bash call approved on the page runs', { skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { result, ran } = await runClaude({ askgateUrl: askgate.url, onPending: async ({ session, work }) => {
      const tab = await signedIn(browser, askgate.url, `#s=${session}`);
      await page.support.waitText(tab, `${CARD} .approval-cwd`, `in ${work}`, DEADLINE);
      await approveOnce(tab, '.approval-command', `touch ${join(work, 'marker')}`);
      await tab.locator(CARD).waitFor({ state: 'hidden', timeout: DEADLINE });
      assert.deepEqual(tab.problems, []);
      await tab.context().close();
    } });
    assert.ok(ran, `the command approved on the page ran: ${result.stdout} ${result.stderr}`);
  } finally { askgate.stop(); }
});

test('Claude Code: an Edit shows its diff on the page, and approving applies exactly it', { skip }, async () => {
  const askgate = await startAskgate();
  try {
    const original = 'name = "site"\nport = 8080\ndebug = false\n';
    let rows = null;
    const { result, seen } = await runClaude({
      askgateUrl: askgate.url,
      prepare: (work) => writeFileSync(join(work, 'config.toml'), original),
      // Claude Code edits only a file it has read: Read (passes, read-only), then Edit.
      script: (work) => [
        { name: 'Read', input: { file_path: join(work, 'config.toml') } },
        { name: 'Edit', input: { file_path: join(work, 'config.toml'), old_string: 'port = 8080', new_string: 'port = 9090' } },
      ],
      onPending: async ({ session }) => {
        const tab = await signedIn(browser, askgate.url, `#s=${session}`);
        await page.support.waitText(tab, `${CARD} .approval-action`, 'config.toml', DEADLINE);
        await page.support.waitText(tab, `${CARD} .diff-counts`, '+1 -1', DEADLINE);
        rows = await tab.$$eval(`${CARD} .diff .line`, (lines) =>
          lines.map((l) => `${l.className.replace('line line-', '')}:${l.textContent.trimEnd()}`));
        await approveOnce(tab, '.approval-action', 'config.toml');
        await tab.locator(CARD).waitFor({ state: 'hidden', timeout: DEADLINE });
        assert.deepEqual(tab.problems, []);
        await tab.context().close();
      },
      after: (work) => readFileSync(join(work, 'config.toml'), 'utf8'),
    });
    assert.deepEqual(rows, ['del:-port = 8080', 'add:+port = 9090']);
    assert.equal(seen, 'name = "site"\nport = 9090\ndebug = false\n', result.stderr);
  } finally { askgate.stop(); }
});

test('two agents waiting at once are two sessions on the page, each named, with its directory', { skip: skip || codex.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const tab = await signedIn(browser, askgate.url);
    let claudeAt = null;
    const claudeRun = runClaude({ askgateUrl: askgate.url, project: 'webapp',
      onPending: async (where) => { claudeAt = where; } });
    let codexWork = null;
    const codexRun = runCodex({ askgateUrl: askgate.url, project: 'myservice',
      onPending: async (work) => { codexWork = work; } });
    await tab.waitForFunction(() => document.querySelectorAll('#session-list li').length === 2,
      null, { timeout: DEADLINE, polling: 'raf' });
    const names = await tab.$$eval('#session-list li .session-name', (spans) => spans.map((s) => s.textContent));
    const codexSession = names.find((name) => /^myservice-[0-9a-f]{6}$/.test(name));
    assert.deepEqual([...names].sort(), [claudeAt.session, codexSession].sort(), names.join(', '));
    for (const [session, work] of [[claudeAt.session, claudeAt.work], [codexSession, codexWork]]) {
      await tab.locator(`#session-list li[data-session-id="${session}"] button`).click();
      await page.support.waitText(tab, `${CARD} .approval-cwd`, `in ${work}`, DEADLINE);
      await approveOnce(tab, '.approval-command', join(work, 'marker'));
    }
    const [claudeDone, codexDone] = await Promise.all([claudeRun, codexRun]);
    assert.ok(claudeDone.ran, `Claude Code's command ran: ${claudeDone.result.stderr}`);
    assert.ok(codexDone.ran, `Codex's command ran: ${codexDone.result.stderr}`);
    assert.deepEqual(tab.problems, []);
    await tab.context().close();
  } finally { askgate.stop(); }
});
