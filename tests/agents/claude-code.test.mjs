// Claude Code end to end: `claude -p` against a scripted Anthropic server,
// in a temporary HOME whose ~/.claude/settings.json configures
// `askgate hook claude-code` exactly as docs/agents.md says; the human
// answers through askgate's HTTP API. Approve: the command ran. Deny: it
// did not, and the model's next request carries the denial. No answer in
// time: the honest timeout reached the model. askgate down: nothing ran.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { randomUUID } from 'node:crypto';
import { agentBin, tempDir, startAskgate, pendingApproval, answer, sessionName, run,
  ASKGATE, AGENT_TOKEN } from './harness.mjs';
import { startAnthropic } from './anthropic.mjs';

const claude = agentBin('claude');

/// docs/agents.md's settings.json, with the hook's timeout above askgate's.
function settings(hookArgs = '') {
  return { hooks: { PreToolUse: [{ matcher: '*', hooks: [{ type: 'command',
    command: `askgate hook claude-code${hookArgs}`, timeout: 330 }] }] } };
}

/// One `claude -p` run whose model asks to create a marker file with Bash.
async function runClaude({ askgateUrl, hookArgs = '', onPending }) {
  const home = tempDir('claude-home');
  const work = join(home.dir, 'myproject');
  mkdirSync(join(home.dir, '.claude'), { recursive: true });
  mkdirSync(work);
  writeFileSync(join(home.dir, '.claude', 'settings.json'), JSON.stringify(settings(hookArgs)));
  const marker = join(work, 'marker');
  const model = await startAnthropic({ name: 'Bash',
    input: { command: `touch ${marker}`, description: 'Create the marker file' } });
  const session = randomUUID();
  const env = {
    PATH: `${dirname(ASKGATE)}:${process.env.PATH}`,
    HOME: home.dir,
    ANTHROPIC_BASE_URL: model.url,
    ANTHROPIC_API_KEY: 'sk-ant-test-not-a-key',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    ASKGATE_URL: askgateUrl,
    ASKGATE_TOKEN: AGENT_TOKEN,
  };
  const done = run(claude.bin, ['-p', 'Create the marker file.', '--session-id', session,
    '--output-format', 'json'], { cwd: work, env });
  const human = onPending ? onPending(sessionName(work, session)) : Promise.resolve();
  const [result, said] = await Promise.all([done, human]);
  await model.close();
  const ran = existsSync(marker);
  home.remove();
  return { result, said, ran, toolResults: model.toolResults(), requests: model.requests };
}

test('Claude Code: approved through askgate, the command runs', { skip: claude.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { result, said, ran } = await runClaude({ askgateUrl: askgate.url, onPending: async (session) => {
      const head = await pendingApproval(askgate.url, session);
      await answer(askgate.url, head, 'once');
      return head;
    } });
    assert.match(said.command, /^touch .*marker$/);
    assert.match(said.description, /^claude-code in .*myproject: Create the marker file$/);
    assert.ok(ran, `the approved command ran: ${result.stdout} ${result.stderr}`);
  } finally { askgate.stop(); }
});

test('Claude Code: denied through askgate, nothing runs and the model is told', { skip: claude.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { result, ran, toolResults } = await runClaude({ askgateUrl: askgate.url, onPending: async (session) => {
      await answer(askgate.url, await pendingApproval(askgate.url, session), 'deny');
    } });
    assert.ok(!ran, 'the denied command did not run');
    assert.ok(toolResults.some((text) => text.includes('denied by the human through askgate')),
      `the model's next request carries the denial: ${JSON.stringify(toolResults)} ${result.stderr}`);
  } finally { askgate.stop(); }
});

test('Claude Code: no answer in time reaches the model as a timeout', { skip: claude.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { ran, toolResults } = await runClaude({ askgateUrl: askgate.url, hookArgs: ' --timeout 1' });
    assert.ok(!ran, 'nothing ran');
    assert.ok(toolResults.some((text) => text.includes('no answer from the human within 1 s')),
      JSON.stringify(toolResults));
    assert.ok(!toolResults.some((text) => text.includes('denied by the human')), JSON.stringify(toolResults));
  } finally { askgate.stop(); }
});

test('Claude Code: askgate down, nothing runs', { skip: claude.skip }, async () => {
  // Port 1 on loopback: nothing listens there.
  const { ran, toolResults } = await runClaude({ askgateUrl: 'http://127.0.0.1:1' });
  assert.ok(!ran, 'nothing ran');
  assert.ok(toolResults.some((text) => text.includes('askgate could not ask the human')
    && text.includes('start askgate')), JSON.stringify(toolResults));
});
