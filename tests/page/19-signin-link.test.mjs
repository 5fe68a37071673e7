// Signing in as shipped (no token flags, tokens made in the data
// directory): a link from `askgate signin-link` signs the page in and
// leaves no code in the address; the same link twice is refused with the
// server's reason; a page without a credential says "signed out" (not a
// red "offline") and asks for the human token; an empty box and a wrong
// token get different messages; "Sign out" signs out.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { launchBrowser, repoRoot, startServer, waitConnection, waitText } from './support.mjs';

let server;
let browser;
let dataDir;

before(async () => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'askgate-signin-'));
  server = await startServer(['--data-dir', dataDir, '--insecure-no-auth=false']);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

// A fresh sign-in link, made by another process from the data directory.
function signinLink() {
  const bin = process.env.ASKGATE_BIN || path.join(repoRoot, 'target', 'debug', 'askgate');
  const out = execFileSync(bin, ['signin-link', '--data-dir', dataDir, '--server', server.url], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const link = out.trim();
  assert.match(link, /\/#signin=[0-9]+-[0-9a-f]{32}-[0-9a-f]{64}$/);
  return link;
}

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

// What axe-core finds, as in 18-a11y.
async function violations(page) {
  await page.addScriptTag({ path: axePath });
  const result = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] } }),
  );
  return result.violations.map((v) => `${v.id}: ${v.nodes.map((node) => node.target.join(' ')).join('; ')}`);
}

function agentToken() {
  const tokens = fs.readFileSync(path.join(dataDir, 'tokens'), 'utf8');
  return /^agent=(.*)$/m.exec(tokens)[1];
}

test('a signed-out page says so, and tells a missing token from a wrong one', async () => {
  // bypassCSP: axe-core is injected as an inline script.
  const page = await (await browser.newContext({ bypassCSP: true })).newPage();
  await page.goto(server.url + '/');
  await waitConnection(page, 'signed-out', 5000);
  assert.equal(await page.locator('#connection .connection-label').textContent(), 'signed out');
  const color = await page.locator('#connection').evaluate((element) => getComputedStyle(element).color);
  const danger = await page.evaluate(() => getComputedStyle(document.documentElement).getPropertyValue('--danger').trim());
  assert.notEqual(color, danger, 'not shown as a failure');
  await page.locator('#login').waitFor({ state: 'visible', timeout: 3000 });
  await waitText(page, '#login .login-status', 'this page needs the human token', 1000);
  await waitText(page, '#login', 'askgate signin-link', 1000);
  assert.equal(await page.locator('#sign-out').isVisible(), false);

  await page.locator('#login-token').press('Enter');
  await waitText(page, '#login .login-error', 'Paste the human token first', 2000);
  await page.locator('#login-token').fill(agentToken());
  await page.locator('#login-token').press('Enter');
  await waitText(page, '#login .login-error', 'That token is not right.', 3000);
  assert.deepEqual(await violations(page), [], 'the sign-in box is axe-clean');
});

test('a sign-in link signs the page in once, leaves the address, and sign-out signs out', async () => {
  const context = await browser.newContext({ bypassCSP: true });
  const page = await context.newPage();
  const link = signinLink();
  await page.goto(link);
  await waitConnection(page, 'live', 5000);
  assert.equal(await page.locator('#login').isVisible(), false);
  assert.equal(page.url(), `${server.url}/`, 'the code is gone from the address');
  assert.equal(await page.evaluate(() => location.hash), '');
  const cookies = await context.cookies();
  assert.ok(cookies.find((cookie) => cookie.name === 'askgate_session'), 'the sign-in cookie is set');

  // An agent on this machine needs no token to ask.
  const shown = waitText(page, '#clarify-card .clarify-question', 'Signed in by link?', 3000);
  await server.agent.submitClarify({ session_id: 'link', question: 'Signed in by link?', choices: ['yes'] });
  await shown;
  assert.deepEqual(await violations(page), [], 'axe-clean with the sign-out button');

  await page.locator('#sign-out').click();
  await waitConnection(page, 'signed-out', 3000);
  await page.locator('#login').waitFor({ state: 'visible', timeout: 3000 });
  await waitText(page, '#login .login-status', 'Signed out.', 1000);
  assert.equal(await page.locator('#clarify-card').isVisible(), false, 'what was shown goes');
  const after = await page.evaluate(async () => (await fetch('api/sessions')).status);
  assert.equal(after, 401, 'the cookie no longer reads');

  const again = await (await browser.newContext()).newPage();
  await again.goto(link);
  await again.locator('#login').waitFor({ state: 'visible', timeout: 5000 });
  await waitText(again, '#login .login-error', 'expired or was used already', 3000);
  assert.equal(again.url(), `${server.url}/`, 'a spent code leaves the address too');
});
