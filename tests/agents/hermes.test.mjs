// hermes-agent end to end (hermes-agent.mjs runs it as docs/agents.md
// says): approved, the command runs; denied with a reason, it does not and
// the model's next request carries the reason; an edited command cannot
// run in place of the call (a pre_tool_call hook only blocks,
// src/hooks/hermes.rs), so nothing runs and the model is told what the
// human approved; no answer in time reaches the model as a timeout;
// askgate down, nothing runs.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startAskgate, nextApproval, answer } from './harness.mjs';
import { hermes, runHermes } from './hermes-agent.mjs';

test('hermes-agent: approved through askgate, the command runs', { skip: hermes.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { result, said, ran } = await runHermes({ askgateUrl: askgate.url, onPending: async () => {
      const head = await nextApproval(askgate.url, 120000);
      await answer(askgate.url, head, 'once');
      return head;
    } });
    assert.match(said.command, /^touch .*marker$/);
    assert.equal(said.agent, 'hermes');
    assert.match(said.session_id, /^myagent-[0-9a-f]{6}$/);
    assert.ok(ran, `the approved command ran: ${result.stdout} ${result.stderr.slice(-2000)}`);
  } finally { askgate.stop(); }
});

test('hermes-agent: denied with a reason, nothing runs and the model gets the reason', { skip: hermes.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const reason = 'use the make target instead';
    const { result, ran, toolResults } = await runHermes({ askgateUrl: askgate.url, onPending: async () => {
      await answer(askgate.url, await nextApproval(askgate.url, 120000), 'deny', { reason });
    } });
    assert.ok(!ran, 'the denied command did not run');
    assert.ok(toolResults.some((text) => text.includes(`denied by the human through askgate: ${reason}`)),
      `${JSON.stringify(toolResults)} ${result.stderr.slice(-2000)}`);
  } finally { askgate.stop(); }
});

test('hermes-agent: an edited command does not run in place of the call; the model is told what was approved', { skip: hermes.skip }, async () => {
  const askgate = await startAskgate();
  try {
    let edited = null;
    const { ran, seen, toolResults } = await runHermes({ askgateUrl: askgate.url,
      after: (work) => existsSync(join(work, 'edited-marker')), onPending: async () => {
        const head = await nextApproval(askgate.url, 120000);
        edited = head.action.command.replace(/marker$/, 'edited-marker');
        await answer(askgate.url, head, 'once', { edited: { ...head.action, command: edited } });
      } });
    assert.ok(!ran, 'the command as asked did not run');
    assert.ok(!seen, 'nor the edited one: a hook cannot run it in place of the call');
    assert.ok(toolResults.some((text) => text.includes('the human approved only an edited version')
      && text.includes(edited)), JSON.stringify(toolResults));
  } finally { askgate.stop(); }
});

test('hermes-agent: no answer in time reaches the model as a timeout', { skip: hermes.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { ran, toolResults } = await runHermes({ askgateUrl: askgate.url, hookArgs: ' --timeout 1' });
    assert.ok(!ran, 'nothing ran');
    assert.ok(toolResults.some((text) => text.includes('no answer from the human within 1 s')),
      JSON.stringify(toolResults));
  } finally { askgate.stop(); }
});

test('hermes-agent: askgate down, nothing runs', { skip: hermes.skip }, async () => {
  const { ran, toolResults } = await runHermes({ askgateUrl: 'http://127.0.0.1:1' });
  assert.ok(!ran, 'nothing ran');
  assert.ok(toolResults.some((text) => text.includes('askgate could not ask the human')), JSON.stringify(toolResults));
});
