// Issue 12: axe-core (npm, injected into the page) finds no contrast and no
// ARIA violation, nor any other WCAG 2.1 A/AA one, in the light and the
// dark scheme at 1280 px and at 390 px, with an approval and a clarify
// waiting, the session's history shown and, at 390 px, the session list
// both collapsed and expanded. The focus ring is a solid outline with at
// least 3:1 contrast against what is around it.

import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { test } from 'node:test';
import { openPage, serverAndBrowser, waitText } from './support.mjs';

const env = serverAndBrowser();
const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const SESSION = 'a11y-nas';

async function seed(agent) {
  const base = `${env.server.url}/api`;
  const post = async (route, body) => {
    const response = await fetch(`${base}/${route}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    assert.equal(response.status, 200, await response.text());
  };
  // History: an approval allowed, a question answered, one expired.
  const done = await agent.submitApproval({ session_id: SESSION, command: 'sudo apt-get upgrade --with-new-pkgs -y' });
  await post('approval/respond', { session_id: SESSION, approval_id: done.approval_id, choice: 'once' });
  const asked = await agent.submitClarify({ session_id: SESSION, question: 'Reboot after the upgrade?' });
  await post('clarify/respond', { session_id: SESSION, clarify_id: asked.clarify_id, response: 'tonight at 2' });
  const denied = await agent.submitApproval({ session_id: SESSION, command: 'rm -rf /srv/old-backups' });
  await post('approval/respond', { session_id: SESSION, approval_id: denied.approval_id, choice: 'deny' });
  // Waiting: one of each kind here, and many sessions for the list.
  await agent.submitApproval({
    session_id: SESSION,
    command: 'sudo zfs destroy tank/snapshots@auto-2024-03-01\u202Ea-very-long-identifier-without-spaces',
    description: 'Delete old snapshots to free space',
    pattern_keys: ['zfs destroy'],
  });
  await agent.submitClarify({ session_id: SESSION, question: 'Which disk next?', choices: ['usb disk', 'nas'], timeout_seconds: 600 });
  for (let n = 1; n <= 7; n += 1) await agent.submitClarify({ session_id: `a11y-other-${n}`, question: `Other ${n}?` });
}

async function violations(page) {
  await page.addScriptTag({ path: axePath });
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } }),
  );
  return result.violations.map((v) => `${v.id}: ${v.nodes.map((node) => `${node.target.join(' ')} (${node.failureSummary.replace(/\s+/g, ' ')})`).join('; ')}`);
}

// The focus ring of the focused element: style, width and the contrast of
// its colour against the background behind it.
async function focusRing(page) {
  return page.evaluate(() => {
    const channel = (c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    };
    const rgb = (color) => color.match(/[\d.]+/g).slice(0, 4).map(Number);
    const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
    const backgroundOf = (element) => {
      for (let at = element.parentElement; at; at = at.parentElement) {
        const color = rgb(getComputedStyle(at).backgroundColor);
        if (color.length < 4 || color[3] > 0) return color;
      }
      return rgb(getComputedStyle(document.body).backgroundColor);
    };
    const element = document.activeElement;
    const style = getComputedStyle(element);
    const [a, b] = [luminance(rgb(style.outlineColor)), luminance(backgroundOf(element))];
    return {
      element: `${element.tagName.toLowerCase()}#${element.id}.${element.className}`,
      style: style.outlineStyle,
      width: parseFloat(style.outlineWidth),
      contrast: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05),
    };
  });
}

async function check(colorScheme, width) {
  const viewport = { width, height: width > 600 ? 900 : 844 };
  const context = await env.browser.newContext({ viewport, colorScheme, bypassCSP: true, deviceScaleFactor: 1 });
  const page = await openPage(context, env.server.url, { hash: `#s=${SESSION}` });
  await waitText(page, '#approval-card .approval-command', 'zfs destroy', 2000);
  await waitText(page, '#clarify-card .clarify-question', 'Which disk next?', 2000);
  await page.waitForFunction(() => document.querySelectorAll('#history-list > li').length === 3, null, { timeout: 2000 });
  const label = `${colorScheme} ${width} px`;
  const found = await violations(page);
  if (await page.locator('#sessions-more').isVisible()) {
    await page.locator('#sessions-more').click();
    found.push(...(await violations(page)).map((v) => `(expanded) ${v}`));
  }
  assert.deepEqual(found, [], label);

  // Keyboard focus: from the top of the page, the first few stops.
  await page.locator('body').click({ position: { x: 2, y: 2 } });
  const rings = [];
  for (let n = 0; n < 6; n += 1) {
    await page.keyboard.press('Tab');
    rings.push(await focusRing(page));
  }
  await page.locator('#approval-card [data-choice="deny"]').focus();
  await page.keyboard.press('Shift+Tab');
  await page.keyboard.press('Tab');
  rings.push(await focusRing(page));
  for (const ring of rings) {
    assert.equal(ring.style, 'solid', `${label}: ${ring.element}`);
    assert.ok(ring.width >= 2, `${label}: ${ring.element} ring ${ring.width} px`);
    assert.ok(ring.contrast >= 3, `${label}: ${ring.element} ring contrast ${ring.contrast.toFixed(2)}`);
  }
  assert.deepEqual(page.problems, []);
  await context.close();
}

test('axe: no violations in light and dark, at 1280 px and 390 px; focus rings 3:1', async () => {
  await seed(env.server.agent);
  for (const colorScheme of ['light', 'dark']) {
    for (const width of [1280, 390]) await check(colorScheme, width);
  }
});
