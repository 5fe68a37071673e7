// One `claude -p` run gated by askgate, for every Claude Code test
// (claude-code.test.mjs, page.test.mjs): a scripted Anthropic server whose
// model makes the scripted tool calls (by default, Bash creating
// WORK/marker), a temporary HOME whose ~/.claude/settings.json configures
// `askgate hook claude-code` exactly as docs/agents.md says (or the
// settings a test gives).

import { mkdirSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { randomUUID } from 'node:crypto';
import { agentBin, tempDir, run, sessionName, ASKGATE, AGENT_TOKEN } from './harness.mjs';
import { startAnthropic } from './anthropic.mjs';

export const claude = agentBin('claude');

/// docs/agents.md's settings.json, with the hook's timeout above askgate's.
export function hookSettings(hookArgs = '') {
  return { hooks: { PreToolUse: [{ matcher: '*', hooks: [{ type: 'command',
    command: `askgate hook claude-code${hookArgs}`, timeout: 330, onFailure: 'block' }] }] } };
}

/// Runs Claude Code in `WORK` (a directory named `project`) with
/// `settings` (docs/agents.md's hook by default). `script(work)` gives the
/// model's tool calls, `prepare(work)` fills the directory first,
/// `onPending({session, work})` plays the human beside the run (`session`:
/// the askgate session the hook names), `after(work)` looks at the
/// directory before it is removed; `args` are more of claude's flags.
/// Resolves once Claude Code has exited.
export async function runClaude({ askgateUrl, project = 'myproject', settings = hookSettings(),
  prompt = 'Do the task.', args = [], script, prepare, onPending, after }) {
  const home = tempDir('claude-home');
  const work = join(home.dir, project);
  mkdirSync(join(home.dir, '.claude'), { recursive: true });
  mkdirSync(work);
  writeFileSync(join(home.dir, '.claude', 'settings.json'), JSON.stringify(settings));
  const marker = join(work, 'marker');
  prepare?.(work);
  const model = await startAnthropic(script?.(work) ?? { name: 'Bash',
    input: { command: `touch ${marker}`, description: 'Create the marker file' } });
  const agentSession = randomUUID();
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
  const done = run(claude.bin, ['-p', prompt, '--session-id', agentSession,
    '--output-format', 'json', ...args], { cwd: work, env });
  const human = onPending ? onPending({ session: sessionName(work, agentSession), work }) : Promise.resolve();
  const [result, said] = await Promise.all([done, human]);
  await model.close();
  const ran = existsSync(marker);
  const config = existsSync(join(work, 'config.toml')) ? readFileSync(join(work, 'config.toml'), 'utf8') : null;
  const seen = after?.(work);
  home.remove();
  return { result, said, ran, config, seen, toolResults: model.toolResults(), requests: model.requests };
}
