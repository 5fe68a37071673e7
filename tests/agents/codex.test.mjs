// Codex CLI end to end (codex-agent.mjs runs it as docs/agents.md says):
// approved, the command runs; denied, it does not and the model is told;
// no answer in time and askgate down, nothing runs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startAskgate, nextApproval, answer } from './harness.mjs';
import { codex, runCodex } from './codex-agent.mjs';

test('Codex: approved through askgate, the command runs', { skip: codex.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { result, said, ran } = await runCodex({ askgateUrl: askgate.url, onPending: async () => {
      const head = await nextApproval(askgate.url);
      assert.match(head.session_id, /^myservice-[0-9a-f]{6}$/);
      await answer(askgate.url, head, 'once');
      return head;
    } });
    assert.match(said.command, /^touch .*marker$/);
    assert.ok(ran, `the approved command ran: ${result.stdout} ${result.stderr}`);
  } finally { askgate.stop(); }
});

test('Codex: denied through askgate, nothing runs and the model is told', { skip: codex.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { result, ran, toolResults } = await runCodex({ askgateUrl: askgate.url, onPending: async () => {
      await answer(askgate.url, await nextApproval(askgate.url), 'deny');
    } });
    assert.ok(!ran, 'the denied command did not run');
    assert.ok(toolResults.some((text) => text.includes('denied by the human through askgate')),
      `${JSON.stringify(toolResults)} ${result.stderr}`);
  } finally { askgate.stop(); }
});

test('Codex: no answer in time reaches the model as a timeout', { skip: codex.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { ran, toolResults } = await runCodex({ askgateUrl: askgate.url, hookArgs: ' --timeout 1' });
    assert.ok(!ran, 'nothing ran');
    assert.ok(toolResults.some((text) => text.includes('no answer from the human within 1 s')),
      JSON.stringify(toolResults));
  } finally { askgate.stop(); }
});

test('Codex: askgate down, nothing runs', { skip: codex.skip }, async () => {
  const { ran, toolResults } = await runCodex({ askgateUrl: 'http://127.0.0.1:1' });
  assert.ok(!ran, 'nothing ran');
  assert.ok(toolResults.some((text) => text.includes('askgate could not ask the human')), JSON.stringify(toolResults));
});
