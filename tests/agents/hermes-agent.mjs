// One `hermes chat -q` run gated by askgate, shared by the hermes-agent
// tests: a scripted Chat Completions server (`provider: custom`) whose
// model asks to run one `terminal` command, a temporary HOME whose
// ~/.hermes/config.yaml configures `askgate hook hermes` as docs/agents.md
// says; `--yolo` turns hermes-agent's own dangerous-command check off, so
// the hook alone stands between the model and the shell, and
// `--accept-hooks` trusts the hook headless.

import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { agentBin, tempDir, run, ASKGATE, AGENT_TOKEN } from './harness.mjs';
import { startChat } from './openai-chat.mjs';

export const hermes = agentBin('hermes', join('hermes', 'bin', 'hermes'));

/// docs/agents.md's ~/.hermes/config.yaml, pointed at the scripted model.
function config(modelUrl, hookArgs) {
  return `model:
  provider: custom
  base_url: ${modelUrl}/v1
  default: test-model
hooks:
  pre_tool_call:
    - command: "askgate hook hermes${hookArgs}"
      timeout: 300
`;
}

/// Runs hermes-agent in `WORK` (`myagent`) whose model asks to
/// `touch WORK/marker`. `onPending`, run beside it, plays the human;
/// `after(work)` looks at the work directory before it is removed.
/// Resolves once hermes-agent has exited.
export async function runHermes({ askgateUrl, hookArgs = ' --timeout 240', onPending, after }) {
  const home = tempDir('hermes-home');
  const work = join(home.dir, 'myagent');
  mkdirSync(join(home.dir, '.hermes'), { recursive: true });
  mkdirSync(work);
  const marker = join(work, 'marker');
  const model = await startChat({ name: 'terminal', args: { command: `touch ${marker}` } });
  writeFileSync(join(home.dir, '.hermes', 'config.yaml'), config(model.url, hookArgs));
  const env = {
    PATH: `${dirname(ASKGATE)}:${process.env.PATH}`,
    HOME: home.dir,
    OPENAI_API_KEY: 'not-a-key',
    ASKGATE_URL: askgateUrl,
    ASKGATE_TOKEN: AGENT_TOKEN,
  };
  // Only the terminal toolset, and no AGENTS.md or memory: a quicker start.
  const done = run(hermes.bin, ['chat', '-q', 'Create the marker file.', '-Q', '--yolo', '--accept-hooks',
    '--ignore-rules', '-t', 'terminal'], { cwd: work, env });
  const human = onPending ? onPending(work) : Promise.resolve();
  const [result, said] = await Promise.all([done, human]);
  await model.close();
  const ran = existsSync(marker);
  const seen = after?.(work);
  home.remove();
  return { result, said, ran, seen, toolResults: model.toolResults() };
}
