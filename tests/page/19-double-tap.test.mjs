// Issue 18 §2: a double tap must not approve a prompt the human never saw.
// Two approvals wait (`ls -la`, then `rm -rf ~/projects`, in the same
// session or in another one); the first is answered with a mouse double
// click 400 ms apart, two touch taps 200 ms apart, or Enter pressed twice
// (700 ms apart, past the old keyboard guard): the second input lands on the
// new card while it arms, so `rm -rf ~/projects` stays pending, and focus is
// not on a button that approves after the move. Once the card has armed
// (about a second, its buttons aria-disabled with a bar until then), the
// same input answers it. A press begun on the card before does not; the
// arming card passes axe; the rule confirmation arms the same way.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { setTimeout as delay } from 'node:timers/promises';
import { test } from 'node:test';
import { openPage, serverAndBrowser, waitArmed, waitText } from './support.mjs';

const env = serverAndBrowser();
const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

const FIRST = 'ls -la';
const SECOND = 'rm -rf ~/projects';
const CARD = '#approval-card';
const ONCE = '#approval-card [data-choice="once"]';
const GAP_MS = { mouse: 400, touch: 200, keyboard: 700 };
const CONTEXT = {
  mouse: { viewport: { width: 1280, height: 900 } },
  touch: { viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true },
  keyboard: { viewport: { width: 1280, height: 900 } },
};

// Waits for the card to show `command`; says whether, at that moment, it
// was arming and its buttons aria-disabled.
async function waitCard(page, command) {
  const handle = await page.waitForFunction(
    (wanted) => {
      const card = document.querySelector('#approval-card');
      if (!card || card.hidden || !card.querySelector('.approval-command').textContent.includes(wanted)) return null;
      const buttons = [...card.querySelectorAll('[data-choice]')];
      return {
        arming: card.hasAttribute('data-arming'),
        disabled: buttons.map((button) => button.getAttribute('aria-disabled')),
      };
    },
    command,
    { timeout: 5000, polling: 'raf' },
  );
  return handle.jsonValue();
}

// The approving button focus is on, if any.
const focusedApproving = (page) =>
  page.evaluate(() => {
    const button = document.activeElement?.closest?.('#approval-card [data-choice]');
    return button && button.dataset.choice !== 'deny' ? button.dataset.choice : null;
  });

// Whether the point is on "Allow once" of the card (so the input cannot
// miss it and pass for nothing).
const onOnce = (page, { x, y }) =>
  page.evaluate(([px, py]) => Boolean(document.elementFromPoint(px, py)?.closest('[data-choice="once"]')), [x, y]);

async function input(page, how, point) {
  if (how === 'mouse') await page.mouse.click(point.x, point.y);
  else if (how === 'touch') await page.touchscreen.tap(point.x, point.y);
  else await page.keyboard.press('Enter');
}

async function centre(page) {
  const box = await page.locator(ONCE).boundingBox();
  return { x: box.x + box.width / 2, y: box.y + box.height / 2 };
}

for (const how of ['mouse', 'touch', 'keyboard']) {
  for (const where of ['same session', 'another session']) {
    test(`${how}, ${where}: the second input does not approve the next prompt`, async () => {
      const { agent } = env.server;
      const tag = `${how}-${where === 'same session' ? 'same' : 'other'}`;
      const firstSession = `dt-${tag}-a`;
      const secondSession = where === 'same session' ? firstSession : `dt-${tag}-b`;
      const first = await agent.submitApproval({ session_id: firstSession, command: FIRST });
      const second = await agent.submitApproval({ session_id: secondSession, command: SECOND });
      const context = await env.browser.newContext(CONTEXT[how]);
      const page = await openPage(context, env.server.url, { hash: `#s=${firstSession}` });

      const shown = await waitCard(page, FIRST);
      assert.equal(shown.arming, true, 'a new card arms');
      assert.deepEqual(shown.disabled, ['true', 'true', 'true', 'true'], 'its buttons say they are not ready yet');
      await waitArmed(page, CARD);
      assert.equal(await focusedApproving(page), null, 'focus is not on a button that approves');
      const point = await centre(page);

      await input(page, how, point);
      const answeredAt = Date.now();
      const next = await waitCard(page, SECOND);
      assert.equal(next.arming, true, 'the next card arms');
      assert.equal(await focusedApproving(page), null, `after the move, focus is not on a button that approves`);
      await delay(Math.max(0, answeredAt + GAP_MS[how] - Date.now()));
      if (how !== 'keyboard') assert.ok(await onOnce(page, point), 'the second input lands on "Allow once" of the next card');
      await input(page, how, point);

      assert.deepEqual(await agent.waitApproval(firstSession, first.approval_id), { status: 'answered', choice: 'once' });
      assert.deepEqual(await agent.waitApproval(secondSession, second.approval_id, 1500), { status: 'pending' }, `${SECOND} was not approved`);
      assert.equal(await focusedApproving(page), null, 'focus is still not on a button that approves');

      // Armed, the same input answers it.
      await waitArmed(page, CARD);
      assert.equal(await page.locator(ONCE).getAttribute('aria-disabled'), null);
      await input(page, how, await centre(page));
      assert.deepEqual(await agent.waitApproval(secondSession, second.approval_id), { status: 'answered', choice: 'once' });
      assert.deepEqual(page.problems, []);
      await context.close();
    });
  }
}

test('a press that began before the card showed does not answer it', async () => {
  const { agent } = env.server;
  const first = await agent.submitApproval({ session_id: 'dt-hold', command: FIRST });
  const context = await env.browser.newContext(CONTEXT.mouse);
  const page = await openPage(context, env.server.url, { hash: '#s=dt-hold' });
  await waitCard(page, FIRST);
  await waitArmed(page, CARD);
  const point = await centre(page);
  await page.mouse.move(point.x, point.y);
  // Pressed on the first card, which is then answered elsewhere; released
  // on the same button once the next card has armed.
  await page.mouse.down();
  const second = await agent.submitApproval({ session_id: 'dt-hold', command: SECOND });
  const response = await fetch(`${env.server.url}/api/approval/respond`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ session_id: 'dt-hold', approval_id: first.approval_id, choice: 'deny' }),
  });
  assert.equal(response.status, 200, await response.text());
  await waitCard(page, SECOND);
  await waitArmed(page, CARD);
  assert.ok(await onOnce(page, point), 'the press is released on "Allow once" of the next card');
  await page.mouse.up();
  assert.deepEqual(await agent.waitApproval('dt-hold', second.approval_id, 1500), { status: 'pending' }, `${SECOND} was not approved`);
  // A press of its own answers it.
  await page.mouse.click(point.x, point.y);
  assert.deepEqual(await agent.waitApproval('dt-hold', second.approval_id), { status: 'answered', choice: 'once' });
  assert.deepEqual(page.problems, []);
  await context.close();
});

test('an arming card says so accessibly: its buttons are aria-disabled, not hidden, and axe finds nothing', async () => {
  const { agent } = env.server;
  const context = await env.browser.newContext({ ...CONTEXT.mouse, bypassCSP: true });
  const page = await openPage(context, env.server.url, { hash: '#s=dt-a11y' });
  await page.addScriptTag({ path: axePath });
  await agent.submitApproval({ session_id: 'dt-a11y', command: SECOND, description: 'clean up' });
  const found = await page.waitForFunction(
    () => {
      const card = document.querySelector('#approval-card');
      return card && !card.hidden && card.hasAttribute('data-arming') ? card : null;
    },
    null,
    { timeout: 5000, polling: 'raf' },
  );
  const result = await found.evaluate(async (card) => {
    const buttons = [...card.querySelectorAll('[data-choice]')].map((button) => ({
      disabled: button.getAttribute('aria-disabled'),
      visible: button.checkVisibility(),
    }));
    const bar = card.querySelector('.card-arming').checkVisibility({ visibilityProperty: true });
    const run = await window.axe.run(card, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } });
    return { buttons, bar, violations: run.violations.map((v) => v.id) };
  });
  assert.deepEqual(result.buttons, Array(4).fill({ disabled: 'true', visible: true }));
  assert.equal(result.bar, true, 'the bar shows while the card arms');
  assert.deepEqual(result.violations, []);
  await waitArmed(page, CARD);
  assert.equal(await page.locator('#approval-card .card-arming').evaluate((bar) => bar.checkVisibility({ visibilityProperty: true })), false, 'and goes once armed');
  assert.deepEqual(page.problems, []);
  await context.close();
});

test('the rule confirmation arms like a card: a click on its accept button right after it opens makes no rule', async () => {
  const { agent } = env.server;
  const asked = await agent.submitApproval({ session_id: 'dt-rule', command: SECOND });
  const context = await env.browser.newContext(CONTEXT.mouse);
  const page = await openPage(context, env.server.url, { hash: '#s=dt-rule' });
  await waitCard(page, SECOND);
  await waitArmed(page, CARD);
  await page.locator('#approval-card [data-choice="always"]').click();
  const handle = await page.waitForFunction(
    () => {
      const dialog = document.querySelector('#rule-confirm');
      const accept = dialog.querySelector('.rule-confirm-accept');
      if (!dialog.open || !accept.checkVisibility()) return null;
      const box = accept.getBoundingClientRect();
      return { x: box.x + box.width / 2, y: box.y + box.height / 2, arming: dialog.hasAttribute('data-arming') };
    },
    null,
    { timeout: 5000, polling: 'raf' },
  );
  const accept = await handle.jsonValue();
  assert.equal(accept.arming, true, 'the confirmation arms when it opens');
  await page.mouse.click(accept.x, accept.y);
  assert.deepEqual(await agent.waitApproval('dt-rule', asked.approval_id, 1500), { status: 'pending' }, 'no rule from a click it could not have read');
  const { rules } = await (await fetch(`${env.server.url}/api/rules`)).json();
  assert.deepEqual(rules, []);

  await waitArmed(page, '#rule-confirm');
  await page.mouse.click(accept.x, accept.y);
  assert.deepEqual(await agent.waitApproval('dt-rule', asked.approval_id), { status: 'answered', choice: 'always' });
  assert.deepEqual(page.problems, []);
  await context.close();
});
