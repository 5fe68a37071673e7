// Codex CLI end to end: `codex exec` against a scripted OpenAI Responses
// server, in a temporary HOME and CODEX_HOME whose hooks.json configures
// `askgate hook codex` as docs/agents.md says (approval_policy "never",
// so the hook alone stands between the model and the shell; headless, the
// hook is run without the interactive review, --dangerously-bypass-hook-trust).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { agentBin, tempDir, startAskgate, nextApproval, answer, run,
  ASKGATE, AGENT_TOKEN } from './harness.mjs';
import { startResponses } from './openai.mjs';

const codex = agentBin('codex');

/// docs/agents.md's $CODEX_HOME/hooks.json.
function hooks(hookArgs = '') {
  return { hooks: { PreToolUse: [{ matcher: '*', hooks: [{ type: 'command',
    command: `askgate hook codex${hookArgs}`, timeout: 330 }] }] } };
}

function config(modelUrl) {
  return `model = "gpt-5-test"
model_provider = "scripted"
approval_policy = "never"
sandbox_mode = "danger-full-access"

[model_providers.scripted]
name = "scripted"
base_url = "${modelUrl}/v1"
wire_api = "responses"
env_key = "SCRIPTED_API_KEY"
request_max_retries = 0
stream_max_retries = 0
`;
}

async function runCodex({ askgateUrl, hookArgs = '', onPending }) {
  const home = tempDir('codex-home');
  const codexHome = join(home.dir, '.codex');
  const work = join(home.dir, 'myservice');
  mkdirSync(codexHome, { recursive: true });
  mkdirSync(work);
  const marker = join(work, 'marker');
  const model = await startResponses('exec_command', { cmd: `touch ${marker}` });
  writeFileSync(join(codexHome, 'config.toml'), config(model.url));
  writeFileSync(join(codexHome, 'hooks.json'), JSON.stringify(hooks(hookArgs)));
  const env = {
    PATH: `${dirname(ASKGATE)}:${process.env.PATH}`,
    HOME: home.dir,
    CODEX_HOME: codexHome,
    SCRIPTED_API_KEY: 'not-a-key',
    ASKGATE_URL: askgateUrl,
    ASKGATE_TOKEN: AGENT_TOKEN,
  };
  const done = run(codex.bin, ['exec', '--dangerously-bypass-hook-trust', '--skip-git-repo-check',
    'Create the marker file.'], { cwd: work, env });
  // Codex names its session itself: the human finds its prompt on the
  // page's stream, as they would.
  const human = onPending ? onPending() : Promise.resolve();
  const [result, said] = await Promise.all([done, human]);
  await model.close();
  const ran = existsSync(marker);
  home.remove();
  return { result, said, ran, toolResults: model.toolResults() };
}

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
