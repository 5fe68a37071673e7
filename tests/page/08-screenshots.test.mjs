// Acceptance 8: screenshots of the page with both cards, at 1280 px and at
// 360 px wide, are written to artifacts/, and nothing overflows at 360 px.

import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { ensureArtifactsDir, openPage, serverAndBrowser, waitText } from './support.mjs';

const env = serverAndBrowser();

const SESSION = 'nas-maintenance.agent-7:ops';

async function seed(agent) {
  await agent.submitClarify({ session_id: 'homelab', question: 'Which backup target should I use tonight?', choices: ['usb disk', 'nas'] });
  await agent.submitClarify({
    session_id: 'a-rather-long-session-name-without-any-spaces-to-break-it.0123456789:abcdefghijklmnopqrstuvwxyz',
    question: 'Ready?',
  });
  await agent.submitClarify({
    session_id: SESSION,
    question: 'The disk /dev/sdb1 is 94% full. What should I clean up first?\nOld snapshots go back to March.',
    choices: ['Delete snapshots older than 30 days', 'Move media to the archive disk', 'Leave it, I will look tomorrow'],
    timeout_seconds: 600,
  });
  for (const n of [1, 2]) {
    await agent.submitApproval({
      session_id: SESSION,
      command: `sudo find /srv/snapshots -maxdepth 1 -type d -mtime +30 -exec rm -rf {} + && zfs destroy tank/snapshots@auto-2024-03-0${n}-a-very-long-identifier-without-spaces-0123456789abcdef`,
      description: 'Delete old snapshots to free space',
      pattern_keys: ['recursive delete', `zfs destroy ${n}`],
      timeout_seconds: 300,
    });
  }
}

async function overflowing(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const found = [];
    if (document.documentElement.scrollWidth > width) found.push(`document scrollWidth ${document.documentElement.scrollWidth} > ${width}`);
    for (const element of document.querySelectorAll('body *')) {
      if (!element.checkVisibility()) continue;
      const box = element.getBoundingClientRect();
      if (box.width === 0 && box.height === 0) continue;
      if (box.right > width + 0.5 || box.left < -0.5) {
        found.push(`${element.tagName.toLowerCase()}.${element.className} spans ${Math.round(box.left)}..${Math.round(box.right)}`);
      }
    }
    return found;
  });
}

async function shoot(viewport, colorScheme, file) {
  const context = await env.browser.newContext({ viewport, colorScheme, deviceScaleFactor: 1 });
  const page = await openPage(context, env.server.url, { hash: `#s=${encodeURIComponent(SESSION)}` });
  await waitText(page, '#approval-card .card-position', '1 of 2', 2000);
  await waitText(page, '#clarify-card .clarify-question', 'What should I clean up first?', 2000);
  await page.locator('#clarify-other-text').fill('Keep the March ones');
  await page.locator('#approval-card [data-choice="once"]').blur();
  await page.screenshot({ path: path.join(ensureArtifactsDir(), file), fullPage: true });
  const problems = await overflowing(page);
  assert.deepEqual(page.problems, []);
  await context.close();
  return problems;
}

test('screenshots at 1280 px and 360 px, no overflow at 360 px', async () => {
  await seed(env.server.agent);
  assert.deepEqual(await shoot({ width: 1280, height: 900 }, 'light', 'page-1280.png'), []);
  assert.deepEqual(await shoot({ width: 360, height: 780 }, 'light', 'page-360.png'), []);
  assert.deepEqual(await shoot({ width: 360, height: 780 }, 'dark', 'page-360-dark.png'), []);
});
