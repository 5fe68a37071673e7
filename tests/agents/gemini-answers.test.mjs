// Gemini CLI end to end, the human's richer answers (gemini-agent.mjs
// runs it as docs/agents.md says): the reason of a denial reaches the
// model; an edited command is the one that runs (BeforeTool's
// hookSpecificOutput.tool_input, src/hooks/gemini.rs).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startAskgate, nextApproval, answer } from './harness.mjs';
import { gemini, runGemini } from './gemini-agent.mjs';

test('Gemini CLI: the reason of a denial reaches the model', { skip: gemini.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const reason = 'use the make target instead';
    const { result, ran, toolResults } = await runGemini({ askgateUrl: askgate.url, onPending: async () => {
      await answer(askgate.url, await nextApproval(askgate.url), 'deny', { reason });
    } });
    assert.ok(!ran, 'the denied command did not run');
    assert.ok(toolResults.some((text) => text.includes(`denied by the human through askgate: ${reason}`)),
      `the model's next request carries the human's reason: ${JSON.stringify(toolResults)} ${result.stderr.slice(-2000)}`);
  } finally { askgate.stop(); }
});

test('Gemini CLI: an edited command is the one that runs', { skip: gemini.skip }, async () => {
  const askgate = await startAskgate();
  try {
    let edited = null;
    const { result, ran, seen } = await runGemini({ askgateUrl: askgate.url,
      after: (work) => existsSync(join(work, 'edited-marker')), onPending: async () => {
        const head = await nextApproval(askgate.url);
        edited = head.action.command.replace(/marker$/, 'edited-marker');
        await answer(askgate.url, head, 'once', { edited: { ...head.action, command: edited } });
      } });
    assert.ok(!ran, `the command as asked did not run: ${result.stderr.slice(-2000)}`);
    assert.ok(seen, `the edited command ran (${edited}): ${result.stdout} ${result.stderr.slice(-2000)}`);
  } finally { askgate.stop(); }
});
