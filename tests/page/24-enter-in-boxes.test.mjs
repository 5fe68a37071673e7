// Issue 19 §5: Enter on a card whose deny or edit box is open answers
// once, the right answer: Enter in the deny reason sends the deny with its
// reason, never "Allow once" (Shift+Enter: a new line); Enter in the edit
// box adds a line or does nothing, and approves nothing until "Approve
// edited"; Enter on the card itself answers nothing while a box is open.

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

test('Enter in the deny reason sends the deny with its reason, once; Enter on the card with the box open answers nothing', async () => {
  const { agent } = env.server;
  const page = await open('e1');
  const [first, second] = await ask(page, 'e1', [{ command: 'make deploy' }, { command: 'make clean' }], 'make deploy');
  await page.locator(`${CARD} [data-choice="deny"]`).click();
  await page.locator(`${CARD} .approval-command`).click();
  await page.keyboard.press('Enter');
  assert.deepEqual(await agent.waitApproval('e1', first.approval_id, 300), { status: 'pending' }, 'Enter on the card with the deny box open answers nothing');
  await page.locator('#deny-reason').fill('use the make target');
  await page.locator('#deny-reason').press('Shift+Enter');
  await page.locator('#deny-reason').press('x');
  assert.equal(await page.locator('#deny-reason').inputValue(), 'use the make target\nx', 'Shift+Enter is a new line');
  await page.locator('#deny-reason').press('Enter');
  assert.deepEqual(await agent.waitApproval('e1', first.approval_id), { status: 'answered', choice: 'deny', reason: 'use the make target\nx' });
  await waitText(page, `${CARD} .approval-command`, 'make clean', 3000);
  assert.deepEqual(await agent.waitApproval('e1', second.approval_id, 500), { status: 'pending' }, 'one Enter, one answer');
  assert.deepEqual(page.problems, []);
});

test('Enter in the edit box adds a line or does nothing; only Approve edited approves', async () => {
  const { agent } = env.server;
  const page = await open('e2');
  const [command, fetch, last] = await ask(
    page,
    'e2',
    [{ command: 'make deploy' }, { action: { type: 'fetch', url: 'https://example.org/a' } }, { command: 'make clean' }],
    'make deploy',
  );
  await page.locator(`${CARD} [data-opens="edit"]`).click();
  await page.locator('#edit-command').press('End');
  await page.locator('#edit-command').press('Enter');
  await page.locator('#edit-command').pressSequentially('make check');
  assert.equal(await page.locator('#edit-command').inputValue(), 'make deploy\nmake check', 'Enter is a new line');
  await page.locator(`${CARD} .approval-command`).click();
  await page.keyboard.press('Enter');
  assert.deepEqual(await agent.waitApproval('e2', command.approval_id, 300), { status: 'pending' }, 'Enter on the card with the edit box open answers nothing');
  await page.locator(`${CARD} .edit-send`).click();
  assert.deepEqual(await agent.waitApproval('e2', command.approval_id), {
    status: 'answered',
    choice: 'once',
    edited: { type: 'command', command: 'make deploy\nmake check' },
  });

  await waitText(page, `${CARD} .approval-action`, 'example.org/a', 3000);
  await waitArmed(page, CARD);
  await page.locator(`${CARD} [data-opens="edit"]`).click();
  await page.locator('#edit-url').fill('https://example.org/b');
  await page.locator('#edit-url').press('Enter');
  assert.deepEqual(await agent.waitApproval('e2', fetch.approval_id, 300), { status: 'pending' }, 'Enter in a one-line field approves nothing');
  await page.locator(`${CARD} .edit-send`).click();
  assert.deepEqual(await agent.waitApproval('e2', fetch.approval_id), {
    status: 'answered',
    choice: 'once',
    edited: { type: 'fetch', url: 'https://example.org/b' },
  });
  await waitText(page, `${CARD} .approval-command`, 'make clean', 3000);
  assert.deepEqual(await agent.waitApproval('e2', last.approval_id, 500), { status: 'pending' }, 'each prompt answered once');
  assert.deepEqual(page.problems, []);
});
