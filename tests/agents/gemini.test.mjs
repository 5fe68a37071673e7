// Gemini CLI end to end: `gemini -p` against a scripted Gemini API server,
// in a temporary HOME whose ~/.gemini/settings.json configures
// `askgate hook gemini` as docs/agents.md says; `--approval-mode yolo`, so
// the hook alone stands between the model and the shell.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { agentBin, tempDir, startAskgate, nextApproval, answer, run,
  ASKGATE, AGENT_TOKEN } from './harness.mjs';
import { startGemini } from './gemini-api.mjs';

const gemini = agentBin('gemini');

/// docs/agents.md's ~/.gemini/settings.json (timeout in milliseconds).
function settings(hookArgs = '') {
  return {
    security: { auth: { selectedType: 'gemini-api-key' } },
    hooks: { BeforeTool: [{ matcher: '.*', hooks: [{ type: 'command',
      command: `askgate hook gemini${hookArgs}`, timeout: 330000 }] }] },
  };
}

async function runGemini({ askgateUrl, hookArgs = '', onPending }) {
  const home = tempDir('gemini-home');
  const work = join(home.dir, 'mysite');
  mkdirSync(join(home.dir, '.gemini'), { recursive: true });
  mkdirSync(work);
  writeFileSync(join(home.dir, '.gemini', 'settings.json'), JSON.stringify(settings(hookArgs)));
  const marker = join(work, 'marker');
  const model = await startGemini({ name: 'run_shell_command',
    args: { command: `touch ${marker}`, description: 'Create the marker file' } });
  const env = {
    PATH: `${dirname(ASKGATE)}:${process.env.PATH}`,
    HOME: home.dir,
    GEMINI_API_KEY: 'not-a-key',
    GOOGLE_GEMINI_BASE_URL: model.url,
    GEMINI_CLI_TRUST_WORKSPACE: 'true',
    ASKGATE_URL: askgateUrl,
    ASKGATE_TOKEN: AGENT_TOKEN,
  };
  const done = run(gemini.bin, ['-p', 'Create the marker file.', '--approval-mode', 'yolo'],
    { cwd: work, env });
  const human = onPending ? onPending() : Promise.resolve();
  const [result, said] = await Promise.all([done, human]);
  await model.close();
  const ran = existsSync(marker);
  home.remove();
  return { result, said, ran, toolResults: model.toolResults() };
}

test('Gemini CLI: approved through askgate, the command runs', { skip: gemini.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { result, said, ran } = await runGemini({ askgateUrl: askgate.url, onPending: async () => {
      const head = await nextApproval(askgate.url);
      await answer(askgate.url, head, 'once');
      return head;
    } });
    assert.match(said.command, /^touch .*marker$/);
    assert.match(said.session_id, /^mysite-[0-9a-f]{6}$/);
    assert.ok(ran, `the approved command ran: ${result.stdout} ${result.stderr}`);
  } finally { askgate.stop(); }
});

test('Gemini CLI: denied through askgate, nothing runs and the model is told', { skip: gemini.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { result, ran, toolResults } = await runGemini({ askgateUrl: askgate.url, onPending: async () => {
      await answer(askgate.url, await nextApproval(askgate.url), 'deny');
    } });
    assert.ok(!ran, 'the denied command did not run');
    assert.ok(toolResults.some((text) => text.includes('denied by the human through askgate')),
      `${JSON.stringify(toolResults)} ${result.stderr.slice(-2000)}`);
  } finally { askgate.stop(); }
});

test('Gemini CLI: no answer in time reaches the model as a timeout', { skip: gemini.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { ran, toolResults } = await runGemini({ askgateUrl: askgate.url, hookArgs: ' --timeout 1' });
    assert.ok(!ran, 'nothing ran');
    assert.ok(toolResults.some((text) => text.includes('no answer from the human within 1 s')),
      JSON.stringify(toolResults));
  } finally { askgate.stop(); }
});

test('Gemini CLI: askgate down, nothing runs', { skip: gemini.skip }, async () => {
  const { ran, toolResults } = await runGemini({ askgateUrl: 'http://127.0.0.1:1' });
  assert.ok(!ran, 'nothing ran');
  assert.ok(toolResults.some((text) => text.includes('askgate could not ask the human')), JSON.stringify(toolResults));
});
