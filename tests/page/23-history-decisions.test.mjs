// Issue 19 §2 and §5 on the page: the session history shows a decision's
// reason, edited action and note, escaped as the cards show them (an
// edited action drawn by the cards' own renderers).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, serverAndBrowser, waitArmed, waitText } from './support.mjs';

const env = serverAndBrowser();
const CARD = '#approval-card';

async function open(session) {
  return openPage(await env.browser.newContext(), env.server.url, { hash: `#s=${session}` });
}

// Submits each body in `session` (queued in this order) and waits for the
// first on the card.
async function ask(page, session, bodies, shown) {
  const asked = [];
  for (const body of bodies) asked.push(await env.server.agent.submitApproval({ session_id: session, ...body }));
  await waitText(page, CARD, shown, 3000);
  await waitArmed(page, CARD);
  return asked;
}

test('the history shows a deny reason, an edited action and a note, escaped', async () => {
  const { agent } = env.server;
  const page = await open('h1');
  const [denied, edited] = await ask(
    page,
    'h1',
    [{ command: 'make release' }, { action: { type: 'fetch', url: 'https://example.org/a' } }],
    'make release',
  );
  await page.locator(`${CARD} [data-choice="deny"]`).click();
  await page.locator('#deny-reason').fill('not now\u202E, use <b>make</b>');
  await page.locator(`${CARD} .deny-send`).click();
  assert.equal((await agent.waitApproval('h1', denied.approval_id)).choice, 'deny');

  await waitText(page, `${CARD} .approval-action`, 'example.org/a', 3000);
  await waitArmed(page, CARD);
  await page.locator('#approval-note').fill('fetched \u202Donce');
  await page.locator(`${CARD} [data-opens="edit"]`).click();
  await page.locator('#edit-url').fill('https://example.org/b?dry=1');
  await page.locator(`${CARD} .edit-send`).click();
  const outcome = await agent.waitApproval('h1', edited.approval_id);
  assert.deepEqual(outcome.edited, { type: 'fetch', url: 'https://example.org/b?dry=1' });
  assert.equal(outcome.note, 'fetched \u202Donce');

  await page.waitForFunction(() => document.querySelectorAll('#history-list > li').length === 2, null, { timeout: 3000 });
  const entries = await page.$$eval('#history-list > li', (items) =>
    items.map((item) => ({
      outcome: item.querySelector('.history-outcome').textContent,
      asked: item.querySelector('.history-command').textContent,
      reason: item.querySelector('.history-reason')?.textContent ?? null,
      edited: item.querySelector('.history-edited')?.textContent ?? null,
      note: item.querySelector('.history-note')?.textContent ?? null,
      escaped: item.querySelectorAll('.escaped').length,
      injected: item.querySelectorAll('b, script').length,
    })),
  );
  assert.deepEqual(entries, [
    {
      outcome: 'Allowed once',
      asked: 'fetch GET https://example.org/a',
      reason: null,
      edited: 'Approved with an edit:Fetch GET https://example.org/b?dry=1',
      note: 'Note: fetched \\u202Donce',
      escaped: 1,
      injected: 0,
    },
    {
      outcome: 'Denied',
      asked: 'make release',
      reason: 'Reason: not now\\u202E, use <b>make</b>',
      edited: null,
      note: null,
      escaped: 1,
      injected: 0,
    },
  ]);
  assert.deepEqual(page.problems, []);
});
