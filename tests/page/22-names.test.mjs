// Named credentials on the page (docs/PROTOCOL.md §7): every card names the
// agent credential that asked, as the server says it, with what the agent
// calls itself beside it when that differs, so an agent cannot pass for
// another by its own say; a named human signs in with her token and the
// history says she answered.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { createAgent, serverAndBrowser, waitConnection, waitText } from './support.mjs';

const AGENT = 'agent-token-for-the-names-test';
const HUMAN = 'human-token-for-the-names-test';
const BOT = 'build-bot-token-for-the-names-test';
const ANNA = 'anna-token-for-the-names-test';

// A data directory holding two named credentials, as `askgate tokens add`
// writes them: name, role, the SHA-256 of the token, when it was made.
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'askgate-names-'));
fs.chmodSync(dataDir, 0o700);
const digest = (token) => crypto.createHash('sha256').update(token).digest('hex');
fs.writeFileSync(
  path.join(dataDir, 'credentials'),
  `build-bot agent ${digest(BOT)} 1\nanna human ${digest(ANNA)} 1\n`,
  { mode: 0o600 },
);
const env = serverAndBrowser(['--data-dir', dataDir, '--agent-token', AGENT, '--human-token', HUMAN]);
test.after(() => fs.rmSync(dataDir, { recursive: true, force: true }));

test('a card names the credential that asked, and the history the human who answered', async () => {
  const bot = createAgent(env.server.url, { agent: BOT });
  const legacy = env.server.agent;
  const context = await env.browser.newContext();
  const page = await context.newPage();
  await page.goto(`${env.server.url}/#s=names`);
  await page.locator('#login').waitFor({ state: 'visible', timeout: 5000 });
  await page.locator('#login-token').fill(ANNA);
  await page.locator('#login-token').press('Enter');
  await page.locator('#login').waitFor({ state: 'hidden', timeout: 3000 });
  await waitConnection(page, 'live', 5000);

  const shown = waitText(page, '#approval-card .card-agent', 'build-bot (claude-code)', 3000);
  const asked = await bot.submitApproval({ session_id: 'names', command: 'make deploy', agent: 'claude-code' });
  await shown;
  await page.locator('#approval-card [data-choice="once"]').click();
  const outcome = await bot.waitApproval('names', asked.approval_id);
  assert.equal(outcome.status, 'answered');

  await waitText(page, '#history-list .history-outcome', 'Allowed once by anna', 3000);

  // The legacy token is the credential named "agent"; an agent calling
  // itself "build-bot" is shown as what it is.
  await legacy.submitApproval({ session_id: 'names-legacy', command: 'ls', agent: 'build-bot' });
  await page.goto(`${env.server.url}/#s=names-legacy`);
  await waitConnection(page, 'live', 5000);
  await waitText(page, '#approval-card .card-agent', 'agent (build-bot)', 3000);
  assert.deepEqual(page.problems ?? [], []);
});
