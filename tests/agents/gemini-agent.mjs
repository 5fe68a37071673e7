// One `gemini -p` run gated by askgate, shared by the Gemini CLI tests: a
// scripted Gemini API server whose model asks to run one shell command, a
// temporary HOME whose ~/.gemini/settings.json configures
// `askgate hook gemini` as docs/agents.md says; `--approval-mode yolo`, so
// the hook alone stands between the model and the shell.

import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { agentBin, tempDir, run, ASKGATE, AGENT_TOKEN } from './harness.mjs';
import { startGemini } from './gemini-api.mjs';

export const gemini = agentBin('gemini');

/// docs/agents.md's ~/.gemini/settings.json (timeout in milliseconds).
function settings(hookArgs = '') {
  return {
    security: { auth: { selectedType: 'gemini-api-key' } },
    hooks: { BeforeTool: [{ matcher: '.*', hooks: [{ type: 'command',
      command: `askgate hook gemini${hookArgs}`, timeout: 330000 }] }] },
  };
}

/// Runs Gemini CLI in `WORK` (`mysite`) whose model asks to
/// `touch WORK/marker`. `onPending`, run beside it, plays the human;
/// `after(work)` looks at the work directory before it is removed.
/// Resolves once Gemini CLI has exited.
export async function runGemini({ askgateUrl, hookArgs = '', onPending, after }) {
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
  const human = onPending ? onPending(work) : Promise.resolve();
  const [result, said] = await Promise.all([done, human]);
  await model.close();
  const ran = existsSync(marker);
  const seen = after?.(work);
  home.remove();
  return { result, said, ran, seen, toolResults: model.toolResults() };
}
