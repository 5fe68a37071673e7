// Issue 12, in the page: while the page is hidden, a new prompt makes one
// system Notification (none for a prompt that was already shown), the
// favicon carries the count of waiting prompts, the optional beep sounds
// only once turned on, and a polite live region announces each new prompt.
// Permission is asked only from a click on "Notify me".
//
// Hidden is simulated the way the page reads it: document.visibilityState
// and document.hidden answer from a flag the test sets, and the test
// dispatches visibilitychange, as a browser does when a tab goes to the
// background. window.Notification is the browser's own, wrapped to record
// each construction; OscillatorNode.start is wrapped to count beeps.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openPage, serverAndBrowser, waitText } from './support.mjs';

const env = serverAndBrowser();

function spies() {
  let hidden = false;
  window.__setHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event('visibilitychange'));
  };
  Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true, get: () => (hidden ? 'hidden' : 'visible') });
  Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get: () => hidden });

  window.__notifications = [];
  window.__asked = 0;
  const Real = window.Notification;
  class Recorded extends Real {
    constructor(title, options = {}) {
      super(title, options);
      window.__notifications.push({ title, body: options.body, tag: options.tag, instance: this });
    }
    static requestPermission(...args) {
      window.__asked += 1;
      return Real.requestPermission(...args);
    }
  }
  window.Notification = Recorded;

  window.__beeps = 0;
  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (...args) {
    window.__beeps += 1;
    return start.apply(this, args);
  };
}

const notifications = (page) => page.evaluate(() => window.__notifications.map(({ title, body, tag }) => ({ title, body, tag })));

async function waitNotifications(page, count) {
  await page.waitForFunction((n) => window.__notifications.length >= n, count, { timeout: 2000 });
  return notifications(page);
}

// The count drawn on the favicon (the SVG's <text>), or null when none is.
async function faviconCount(page) {
  return page.evaluate(() => {
    const href = document.querySelector('link[rel="icon"]').getAttribute('href');
    const prefix = 'data:image/svg+xml,';
    if (!href.startsWith(prefix)) return undefined;
    const svg = new DOMParser().parseFromString(decodeURIComponent(href.slice(prefix.length)), 'image/svg+xml');
    const text = svg.querySelector('text');
    return text ? text.textContent : null;
  });
}

async function waitFavicon(page, expected) {
  const deadline = Date.now() + 2000;
  let got;
  while (Date.now() < deadline) {
    got = await faviconCount(page);
    if (got === expected) return;
    await page.waitForTimeout(25);
  }
  assert.equal(got, expected, 'the favicon count');
}

test('hidden: one Notification per new prompt, none for one already shown; favicon, beep, live region', async () => {
  const { agent } = env.server;
  const context = await env.browser.newContext();
  await context.grantPermissions(['notifications'], { origin: env.server.url });
  await context.addInitScript(spies);
  const page = await openPage(context, env.server.url);
  assert.equal(await page.locator('#notify-toggle').getAttribute('aria-pressed'), 'true', 'granted: notifications on');
  assert.equal(await page.locator('#sound-toggle').getAttribute('aria-pressed'), 'false', 'sound is off by default');
  await waitFavicon(page, null);

  // Shown while the page is visible: announced, never notified.
  const seenShown = waitText(page, '#clarify-card .clarify-question', 'Seen while looking?', 2000);
  const seen = await agent.submitClarify({ session_id: 'seen', question: 'Seen while looking?' });
  await seenShown;
  await waitText(page, '#announcer', 'New question from session seen', 2000);
  await waitFavicon(page, '1');

  await page.evaluate(() => window.__setHidden(true));
  const away = await agent.submitApproval({ session_id: 'away', command: 'sudo systemctl restart nas-backup --no-block', description: 'restart' });
  let got = await waitNotifications(page, 1);
  assert.deepEqual(got, [{ title: 'New approval from session away', body: 'sudo systemctl restart nas-backup --no-block', tag: away.approval_id }]);
  await waitText(page, '#announcer', 'New approval from session away', 2000);
  await waitFavicon(page, '2');
  assert.equal(await page.evaluate(() => window.__beeps), 0, 'no beep while sound is off');

  // More changes while hidden: the prompt already shown (and the one already
  // notified) are not notified again; a second prompt queued behind shows in
  // the count; a new one in another session is notified once, with its
  // hidden characters escaped.
  await agent.submitClarify({ session_id: 'seen', question: 'Behind the first?' });
  await waitFavicon(page, '3');
  await page.locator('#sound-toggle').click();
  assert.equal(await page.locator('#sound-toggle').getAttribute('aria-pressed'), 'true');
  assert.equal(await page.evaluate(() => window.__beeps), 1, 'turning the sound on plays it once');
  const other = await agent.submitClarify({ session_id: 'other', question: 'Which disk?\u202Eevil' });
  got = await waitNotifications(page, 2);
  assert.deepEqual(got[1], { title: 'New question from session other', body: 'Which disk?\\u202Eevil', tag: other.clarify_id });
  await page.waitForFunction(() => window.__beeps === 2, null, { timeout: 2000 });
  await waitFavicon(page, '4');

  // The first prompt answered elsewhere: its follower surfaces, a new head
  // the page never showed, so it is notified; nothing else is.
  await page.evaluate(() => window.__setHidden(false));
  await page.evaluate(() => window.__setHidden(true));
  await fetch(`${env.server.url}/api/clarify/respond`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ session_id: 'seen', clarify_id: seen.clarify_id, response: 'yes' }),
  });
  got = await waitNotifications(page, 3);
  assert.equal(got[2].title, 'New question from session seen');
  assert.equal(got[2].body, 'Behind the first?');
  await waitFavicon(page, '3');
  await page.evaluate(() => window.__setHidden(false));
  const later = waitText(page, '#announcer', 'New question from session visible', 2000);
  await agent.submitClarify({ session_id: 'visible', question: 'Looking now?' });
  await later;
  assert.equal((await notifications(page)).length, 3, 'nothing is notified while the page is visible');
  assert.equal(await page.evaluate(() => window.__beeps), 3, 'a beep per hidden arrival, none while the page is visible');

  // A click on a notification shows its session.
  await page.evaluate(() => window.__notifications[0].instance.onclick());
  await page.waitForFunction(() => location.hash === '#s=away', null, { timeout: 2000 });
  await waitText(page, '#approval-card .approval-command', 'nas-backup', 2000);
  assert.deepEqual(page.problems, []);
  await context.close();
});

test('permission is asked only from a click on "Notify me"', async () => {
  const context = await env.browser.newContext();
  await context.addInitScript(spies);
  const page = await openPage(context, env.server.url, { hash: '#s=ask' });
  await env.server.agent.submitClarify({ session_id: 'ask', question: 'Anyone?' });
  await waitText(page, '#clarify-card .clarify-question', 'Anyone?', 2000);
  assert.equal(await page.evaluate(() => window.__asked), 0, 'not asked on load');
  const toggle = page.locator('#notify-toggle');
  await toggle.waitFor({ state: 'visible', timeout: 1000 });
  assert.equal(await toggle.getAttribute('aria-pressed'), 'false');
  await toggle.click();
  await page.waitForFunction(() => window.__asked === 1, null, { timeout: 2000 });
  await context.close();
});
