// Codex CLI end to end, the human's richer answers (codex-agent.mjs runs
// it as docs/agents.md says): the reason of a denial reaches the model;
// an edited command cannot run in place of the call (Codex's PreToolUse
// takes no updatedInput, src/hooks/codex.rs), so nothing runs and the
// model is told, in a deny, the command the human approved instead.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startAskgate, nextApproval, answer } from './harness.mjs';
import { codex, runCodex } from './codex-agent.mjs';

test('Codex: the reason of a denial reaches the model', { skip: codex.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const reason = 'use the make target instead';
    const { result, ran, toolResults } = await runCodex({ askgateUrl: askgate.url, onPending: async () => {
      await answer(askgate.url, await nextApproval(askgate.url), 'deny', { reason });
    } });
    assert.ok(!ran, 'the denied command did not run');
    assert.ok(toolResults.some((text) => text.includes(`denied by the human through askgate: ${reason}`)),
      `the model's next request carries the human's reason: ${JSON.stringify(toolResults)} ${result.stderr}`);
  } finally { askgate.stop(); }
});

test('Codex: an edited command does not run in place of the call; the model is told what was approved', { skip: codex.skip }, async () => {
  const askgate = await startAskgate();
  try {
    let edited = null;
    const { result, ran, seen, toolResults } = await runCodex({ askgateUrl: askgate.url,
      after: (work) => existsSync(join(work, 'edited-marker')), onPending: async () => {
        const head = await nextApproval(askgate.url);
        edited = head.action.command.replace(/marker$/, 'edited-marker');
        await answer(askgate.url, head, 'once', { edited: { ...head.action, command: edited } });
      } });
    assert.ok(!ran, `the command as asked did not run: ${result.stderr}`);
    assert.ok(!seen, 'nor the edited one: Codex cannot run it in place of the call');
    assert.ok(toolResults.some((text) => text.includes('the human approved only an edited version')
      && text.includes(edited)), `the model is told the edited command: ${JSON.stringify(toolResults)}`);
  } finally { askgate.stop(); }
});
