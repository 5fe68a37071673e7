// Issue 12, the page on a phone: sessions ordered by what needs the human
// most (approvals first, then the one waiting longest) with "asked … ago";
// at 390 px with 12 sessions every session can be reached by visible
// controls (screenshots in artifacts/); after an answer the page moves to
// the next waiting prompt; keys 1-9 pick a clarify's choices (never while
// typing, never an approval); answered prompts show in the session's
// history; commands wrap anywhere, in monospace, never hyphenated.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { ensureArtifactsDir, openPage, serverAndBrowser, waitArmed, waitText } from './support.mjs';

const env = serverAndBrowser();

const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 1, hasTouch: true, isMobile: true };

// Cancels everything waiting, so a test starts with nothing elsewhere.
async function cancelEverything() {
  const { sessions } = await (await fetch(`${env.server.url}/api/sessions`)).json();
  for (const { session_id } of sessions) {
    for (const kind of ['clarify', 'approval']) {
      await fetch(`${env.server.url}/api/${kind}/cancel`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ session_id }),
      });
    }
  }
}

const sessionOrder = (page) => page.$$eval('#session-list > li', (items) => items.map((item) => item.dataset.sessionId));

async function respond(kind, body) {
  const response = await fetch(`${env.server.url}/api/${kind}/respond`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(response.status, 200, await response.text());
}

test('sessions: approvals first, then the one waiting longest, each with how long ago it asked', async () => {
  const { agent } = env.server;
  const done = await agent.submitClarify({ session_id: 'order-done', question: 'Done?' });
  await respond('clarify', { session_id: 'order-done', clarify_id: done.clarify_id, response: 'yes' });
  await agent.submitClarify({ session_id: 'order-b-old', question: 'Oldest question?' });
  await agent.submitClarify({ session_id: 'order-a-new', question: 'Newer question?' });
  await agent.submitApproval({ session_id: 'order-z-late', command: 'ls' });
  await agent.submitApproval({ session_id: 'order-y-later', command: 'ls -l' });

  const context = await env.browser.newContext();
  const page = await openPage(context, env.server.url, { hash: '#s=order-done' });
  const expected = ['order-z-late', 'order-y-later', 'order-b-old', 'order-a-new', 'order-done'];
  await page.waitForFunction(
    (ids) => {
      const order = [...document.querySelectorAll('#session-list > li')].map((item) => item.dataset.sessionId);
      return ids.every((id) => order.includes(id));
    },
    expected,
    { timeout: 2000 },
  );
  const order = (await sessionOrder(page)).filter((id) => id.startsWith('order-'));
  assert.deepEqual(order, expected);
  await waitText(page, '#session-list [data-session-id="order-b-old"] .session-age', 'asked just now', 1000);
  assert.equal(await page.locator('#session-list [data-session-id="order-done"] .session-age').textContent(), '');
  const ages = await page.evaluate(async () => {
    const { ago } = await import('./history.js');
    return [ago(10), ago(180), ago(7200), ago(3 * 86400)];
  });
  assert.deepEqual(ages, ['just now', '3 min ago', '2 h ago', '3 d ago']);

  // A new approval jumps ahead of every question.
  await agent.submitApproval({ session_id: 'order-c-new', command: 'df -h' });
  await page.waitForFunction(() => document.querySelector('#session-list > li:nth-child(3)')?.dataset.sessionId === 'order-c-new', null, { timeout: 2000 });
  assert.deepEqual(page.problems, []);
  await context.close();
});

async function hiddenSessions(page) {
  return page.$$eval('#session-list > li', (items) => items.filter((item) => !item.checkVisibility()).map((item) => item.dataset.sessionId));
}

test('a phone with 12 sessions: every session is reachable by visible controls', async () => {
  const { agent } = env.server;
  const ids = [];
  for (let n = 1; n <= 12; n += 1) {
    const session_id = `phone-${String(n).padStart(2, '0')}-${n % 3 === 0 ? 'nas-maintenance.agent' : 'homelab'}`;
    ids.push(session_id);
    if (n % 4 === 0) await agent.submitApproval({ session_id, command: `sudo zfs destroy tank/snapshots@auto-2024-03-0${n}-a-long-identifier`, description: 'free space' });
    else await agent.submitClarify({ session_id, question: `Question ${n}: which backup target?`, choices: ['usb disk', 'nas'] });
  }
  const context = await env.browser.newContext(PHONE);
  const page = await openPage(context, env.server.url);
  await page.waitForFunction((wanted) => wanted.every((id) => document.querySelector(`#session-list > li[data-session-id="${id}"]`)), ids, { timeout: 2000 });
  const hidden = (await hiddenSessions(page)).filter((id) => id.startsWith('phone-'));
  assert.ok(hidden.length > 0, 'a narrow screen shows the first few sessions only');
  const more = page.locator('#sessions-more');
  assert.ok(await more.isVisible(), 'a visible button leads to the rest');
  assert.match(await more.textContent(), /^Show \d+ more sessions \(\d+ waiting\)$/);
  await page.screenshot({ path: path.join(ensureArtifactsDir(), 'phone-390-12-sessions.png'), fullPage: true });

  for (const session_id of ids) {
    const button = page.locator(`#session-list > li[data-session-id="${session_id}"] > button`);
    if (!(await button.isVisible())) {
      assert.equal(await more.getAttribute('aria-expanded'), 'false');
      await more.click();
      assert.equal(await more.getAttribute('aria-expanded'), 'true');
    }
    await button.click();
    await page.waitForFunction((id) => location.hash === `#s=${id}`, session_id, { timeout: 1000 });
    await waitText(page, '#session-title', session_id, 1000);
    const box = await button.boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 390.5, `${session_id} fits the screen`);
  }
  await page.screenshot({ path: path.join(ensureArtifactsDir(), 'phone-390-12-sessions-expanded.png'), fullPage: true });
  assert.deepEqual(await hiddenSessions(page), [], 'expanded, every session shows');
  await more.click();
  assert.equal(await more.textContent().then((text) => text.startsWith('Show ')), true);
  const scrollWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(scrollWidth <= 390, `nothing wider than the phone (${scrollWidth})`);

  const dark = await env.browser.newContext({ ...PHONE, colorScheme: 'dark' });
  const darkPage = await openPage(dark, env.server.url);
  await darkPage.locator('#sessions-more').waitFor({ state: 'visible', timeout: 2000 });
  await darkPage.screenshot({ path: path.join(ensureArtifactsDir(), 'phone-390-12-sessions-dark.png'), fullPage: true });
  assert.deepEqual(page.problems, []);
  assert.deepEqual(darkPage.problems, []);
  await context.close();
  await dark.close();
});

test('after an answer the page moves to the next waiting prompt', async () => {
  const { agent } = env.server;
  await cancelEverything();
  const context = await env.browser.newContext();
  const page = await openPage(context, env.server.url, { hash: '#s=next-first' });
  const first = await agent.submitClarify({ session_id: 'next-first', question: 'First of two?', choices: ['a', 'b'] });
  const second = await agent.submitClarify({ session_id: 'next-first', question: 'Second of two?', choices: ['c', 'd'] });
  const elsewhere = await agent.submitApproval({ session_id: 'next-other', command: 'systemctl restart smbd' });
  await waitText(page, '#clarify-card .clarify-question', 'First of two?', 2000);

  await page.locator('#clarify-card .choice').nth(1).click(); // b
  assert.deepEqual(await agent.waitClarify('next-first', first.clarify_id), { status: 'answered', response: 'b' });
  // More waits in this session: it stays, showing the next one.
  await waitText(page, '#clarify-card .clarify-question', 'Second of two?', 2000);
  assert.equal(new URL(page.url()).hash, '#s=next-first');

  await page.locator('#clarify-card .choice').nth(1).click(); // d
  assert.deepEqual(await agent.waitClarify('next-first', second.clarify_id), { status: 'answered', response: 'd' });
  // Nothing more here: the session that waits comes up.
  await page.waitForFunction(() => location.hash === '#s=next-other', null, { timeout: 2000 });
  await waitText(page, '#approval-card .approval-command', 'systemctl restart smbd', 2000);
  await page.locator('#approval-card [data-choice="deny"]').click();
  await page.locator('#approval-card .deny-send').click();
  assert.deepEqual(await agent.waitApproval('next-other', elsewhere.approval_id), { status: 'answered', choice: 'deny' });
  // Nothing waits anywhere: it stays put.
  await page.locator('#approval-card').waitFor({ state: 'hidden', timeout: 2000 });
  assert.equal(new URL(page.url()).hash, '#s=next-other');
  assert.deepEqual(page.problems, []);
  await context.close();
});

test('keys 1-9 pick the choices, not while typing and never an approval', async () => {
  const { agent } = env.server;
  await cancelEverything();
  const context = await env.browser.newContext();
  const page = await openPage(context, env.server.url, { hash: '#s=keys' });
  const approval = await agent.submitApproval({ session_id: 'keys', command: 'rm -rf /srv/old' });
  const first = await agent.submitClarify({ session_id: 'keys', question: 'Which one?', choices: ['alpha', 'beta', 'gamma'] });
  await waitText(page, '#clarify-card .clarify-question', 'Which one?', 2000);
  await waitText(page, '#clarify-card .card-hint', 'Keys 1–3 pick a choice', 1000);
  assert.equal(await page.locator('#clarify-card .choice').nth(1).getAttribute('aria-keyshortcuts'), '2');

  // Typing in the text box types.
  await page.locator('#clarify-other-text').focus();
  await page.keyboard.press('3');
  assert.equal(await page.locator('#clarify-other-text').inputValue(), '3');
  assert.deepEqual(await agent.waitClarify('keys', first.clarify_id, 300), { status: 'pending' });
  await page.locator('#clarify-other-text').fill('');

  // Elsewhere, 2 picks the second choice; the approval is left alone.
  await page.locator('#session-title').click();
  await waitArmed(page, '#clarify-card');
  await page.keyboard.press('2');
  assert.deepEqual(await agent.waitClarify('keys', first.clarify_id), { status: 'answered', response: 'beta' });
  assert.deepEqual(await agent.waitApproval('keys', approval.approval_id, 300), { status: 'pending' });

  const second = await agent.submitClarify({ session_id: 'keys', question: 'Two only?', choices: ['yes', 'no'] });
  await waitText(page, '#clarify-card .clarify-question', 'Two only?', 2000);
  await page.locator('#session-title').click();
  await waitArmed(page, '#clarify-card');
  await page.keyboard.press('9');
  await page.keyboard.press('2');
  assert.deepEqual(await agent.waitClarify('keys', second.clarify_id), { status: 'answered', response: 'no' });
  assert.deepEqual(await agent.waitApproval('keys', approval.approval_id, 300), { status: 'pending' });
  assert.deepEqual(page.problems, []);
  await context.close();
});

test('answered prompts show in the session history; commands wrap anywhere, never hyphenated', async () => {
  const { agent } = env.server;
  await cancelEverything();
  const context = await env.browser.newContext(PHONE);
  const page = await openPage(context, env.server.url, { hash: '#s=hist' });
  const command = 'sudo zfs-snapshot-cleanup --keep-last-30-days --pool=tank-backup-2024 --dry-run=no-really-delete-them';
  const approval = await agent.submitApproval({ session_id: 'hist', command });
  await waitText(page, '#approval-card .approval-command', 'zfs-snapshot-cleanup', 2000);
  await page.locator('#approval-card [data-choice="once"]').click();
  assert.deepEqual(await agent.waitApproval('hist', approval.approval_id), { status: 'answered', choice: 'once' });
  const clarify = await agent.submitClarify({ session_id: 'hist', question: 'Which pool next?' });
  await waitText(page, '#clarify-card .clarify-question', 'Which pool next?', 2000);
  await page.locator('#clarify-other-text').fill('tank');
  await waitArmed(page, '#clarify-card');
  await page.locator('#clarify-other-text').press('Enter');
  assert.deepEqual(await agent.waitClarify('hist', clarify.clarify_id), { status: 'answered', response: 'tank' });

  await page.waitForFunction(() => document.querySelectorAll('#history-list > li').length === 2, null, { timeout: 2000 });
  const entries = await page.$$eval('#history-list > li', (items) =>
    items.map((item) => ({
      outcome: item.querySelector('.history-outcome').textContent,
      text: (item.querySelector('.history-command, .history-question')).textContent,
      answer: item.querySelector('.history-answer')?.textContent ?? null,
      when: item.querySelector('.history-when').textContent,
    })),
  );
  assert.deepEqual(entries, [
    { outcome: 'Answered', text: 'Which pool next?', answer: 'Answer: tank', when: 'just now' },
    { outcome: 'Allowed once', text: command, answer: null, when: 'just now' },
  ]);
  assert.ok(await page.locator('#history').isVisible());

  // The command in the history and on a card: monospace, wrapped anywhere,
  // never hyphenated.
  await agent.submitApproval({ session_id: 'hist', command });
  await waitText(page, '#approval-card .approval-command', 'zfs-snapshot-cleanup', 2000);
  const styles = await page.$$eval('#approval-card .approval-command, #history-list .history-command', (elements) =>
    elements.map((element) => {
      const style = getComputedStyle(element);
      const lines = Math.round(element.querySelector('code').getBoundingClientRect().height / parseFloat(style.lineHeight));
      return { font: /mono/i.test(style.fontFamily), hyphens: style.hyphens, wrap: style.overflowWrap, breaks: style.wordBreak, lines };
    }),
  );
  assert.equal(styles.length, 2);
  for (const style of styles) {
    assert.deepEqual({ ...style, lines: undefined }, { font: true, hyphens: 'none', wrap: 'anywhere', breaks: 'break-all', lines: undefined });
    assert.ok(style.lines >= 2, 'the long command wraps on a phone');
  }
  assert.deepEqual(page.problems, []);
  await context.close();
});
