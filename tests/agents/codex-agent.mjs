// One `codex exec` run gated by askgate, shared by the Codex tests: a
// scripted OpenAI Responses server whose model asks to run one command,
// a temporary HOME and CODEX_HOME whose hooks.json configures
// `askgate hook codex` as docs/agents.md says (approval_policy "never",
// so the hook alone stands between the model and the shell; headless, the
// hook is run without the interactive review, --dangerously-bypass-hook-trust).

import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { agentBin, tempDir, run, ASKGATE, AGENT_TOKEN } from './harness.mjs';
import { startResponses } from './openai.mjs';

export const codex = agentBin('codex');

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

/// Runs Codex in `WORK` (a directory named `project`, default
/// `myservice`) whose model asks to `touch WORK/marker`. `onPending`, run
/// beside it, plays the human; `after(work)` looks at the work directory
/// before it is removed. Resolves once Codex has exited.
export async function runCodex({ askgateUrl, hookArgs = '', onPending, after, project = 'myservice' }) {
  const home = tempDir('codex-home');
  const codexHome = join(home.dir, '.codex');
  const work = join(home.dir, project);
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
  const human = onPending ? onPending(work) : Promise.resolve();
  const [result, said] = await Promise.all([done, human]);
  await model.close();
  const ran = existsSync(marker);
  const seen = after?.(work);
  home.remove();
  return { result, said, ran, seen, work, toolResults: model.toolResults() };
}
