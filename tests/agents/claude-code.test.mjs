// Claude Code end to end: `claude -p` against a scripted Anthropic server,
// in a temporary HOME whose ~/.claude/settings.json configures
// `askgate hook claude-code` exactly as docs/agents.md says; the human
// answers through askgate's HTTP API. Approve: the command ran. Deny: it
// did not, and the model's next request carries the denial. No answer in
// time: the honest timeout reached the model. askgate down: nothing ran.
// The same through askgate's route for `"type": "http"` hooks. Where the
// human does not approve, Claude Code's own rules allow Bash, so the hook
// alone stops it. And `askgate mcp`'s permission prompt tool, with no hooks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, startAskgate, pendingApproval, nextApproval, answer, AGENT_TOKEN, HUMAN_TOKEN } from './harness.mjs';
import { claude, hookSettings, runClaude as runAgent } from './claude-agent.mjs';


/// docs/agents.md's `"type": "http"` hook: askgate's route, the agent
/// token from the environment.
function httpSettings(askgateUrl) {
  return { hooks: { PreToolUse: [{ matcher: '*', hooks: [{ type: 'http',
    url: `${askgateUrl}/api/hooks/claude-code`,
    headers: { Authorization: 'Bearer $ASKGATE_TOKEN' }, allowedEnvVars: ['ASKGATE_TOKEN'],
    timeout: 330, onFailure: 'block' }] }] } };
}

/// One `claude -p` run whose model asks to create a marker file with Bash
/// (claude-agent.mjs), its human told the askgate session. `allowBash`:
/// Claude Code's own rules let Bash run, so only the hook can stop it (as
/// it would for a user who allowed Bash).
function runClaude({ askgateUrl, hookArgs = '', onPending, http = false, allowBash = false, script, prepare, after }) {
  return runAgent({
    askgateUrl,
    settings: http ? httpSettings(askgateUrl) : hookSettings(hookArgs),
    prompt: 'Create the marker file.',
    args: allowBash ? ['--allowedTools', 'Bash'] : [],
    onPending: onPending && (({ session }) => onPending(session)),
    script,
    prepare,
    after,
  });
}

test('Claude Code: approved through askgate, the command runs', { skip: claude.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { result, said, ran } = await runClaude({ askgateUrl: askgate.url, onPending: async (session) => {
      const head = await pendingApproval(askgate.url, session);
      await answer(askgate.url, head, 'once');
      return head;
    } });
    assert.match(said.command, /^touch .*marker$/);
    assert.equal(said.action.type, 'command');
    assert.match(said.action.cwd, /myproject$/);
    assert.equal(said.agent, 'claude-code');
    assert.equal(said.reason, 'Create the marker file');
    assert.ok(ran, `the approved command ran: ${result.stdout} ${result.stderr}`);
  } finally { askgate.stop(); }
});

test('Claude Code: denied through askgate, nothing runs and the model is told', { skip: claude.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { result, ran, toolResults } = await runClaude({ askgateUrl: askgate.url, allowBash: true, onPending: async (session) => {
      await answer(askgate.url, await pendingApproval(askgate.url, session), 'deny');
    } });
    assert.ok(!ran, 'the denied command did not run');
    assert.ok(toolResults.some((text) => text.includes('denied by the human through askgate')),
      `the model's next request carries the denial: ${JSON.stringify(toolResults)} ${result.stderr}`);
  } finally { askgate.stop(); }
});

test('Claude Code: the reason of a denial reaches the model', { skip: claude.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const reason = 'use the make target instead';
    const { ran, toolResults } = await runClaude({ askgateUrl: askgate.url, allowBash: true, onPending: async (session) => {
      await answer(askgate.url, await pendingApproval(askgate.url, session), 'deny', { reason });
    } });
    assert.ok(!ran, 'the denied command did not run');
    assert.ok(toolResults.some((text) => text.includes(reason)),
      `the model's next request carries the human's reason: ${JSON.stringify(toolResults)}`);
  } finally { askgate.stop(); }
});

test('Claude Code: an edited command is the one that runs', { skip: claude.skip }, async () => {
  const askgate = await startAskgate();
  try {
    let edited = null;
    const { result, ran, seen } = await runClaude({ askgateUrl: askgate.url,
      after: (work) => existsSync(join(work, 'edited-marker')), onPending: async (session) => {
      const head = await pendingApproval(askgate.url, session);
      edited = head.action.command.replace(/marker$/, 'edited-marker');
      await answer(askgate.url, head, 'once', { edited: { ...head.action, command: edited } });
      return head;
    } });
    assert.ok(!ran, `the command as asked did not run: ${result.stderr}`);
    assert.ok(seen, `the edited command ran (${edited}): ${result.stdout} ${result.stderr}`);
  } finally { askgate.stop(); }
});

test('Claude Code: no answer in time reaches the model as a timeout', { skip: claude.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { ran, toolResults } = await runClaude({ askgateUrl: askgate.url, hookArgs: ' --timeout 1', allowBash: true });
    assert.ok(!ran, 'nothing ran');
    assert.ok(toolResults.some((text) => text.includes('no answer from the human within 1 s')),
      JSON.stringify(toolResults));
    assert.ok(!toolResults.some((text) => text.includes('denied by the human')), JSON.stringify(toolResults));
  } finally { askgate.stop(); }
});

test('Claude Code: askgate down, nothing runs', { skip: claude.skip }, async () => {
  // Port 1 on loopback: nothing listens there.
  const { ran, toolResults } = await runClaude({ askgateUrl: 'http://127.0.0.1:1', allowBash: true });
  assert.ok(!ran, 'nothing ran');
  assert.ok(toolResults.some((text) => text.includes('askgate could not ask the human')
    && text.includes('start askgate')), JSON.stringify(toolResults));
});

test('Claude Code: the http hook route, approved and denied', { skip: claude.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const approved = await runClaude({ askgateUrl: askgate.url, http: true, onPending: async (session) => {
      await answer(askgate.url, await pendingApproval(askgate.url, session), 'once');
    } });
    assert.ok(approved.ran, `the approved command ran: ${approved.result.stderr}`);
    const denied = await runClaude({ askgateUrl: askgate.url, http: true, allowBash: true, onPending: async (session) => {
      await answer(askgate.url, await pendingApproval(askgate.url, session), 'deny');
    } });
    assert.ok(!denied.ran, 'the denied command did not run');
    assert.ok(denied.toolResults.some((text) => text.includes('denied by the human through askgate')),
      JSON.stringify(denied.toolResults));
  } finally { askgate.stop(); }
});

test('Claude Code: the http hook with askgate down blocks (onFailure: block)', { skip: claude.skip }, async () => {
  const { ran, toolResults } = await runClaude({ askgateUrl: 'http://127.0.0.1:1', http: true, allowBash: true });
  assert.ok(!ran, `nothing ran: ${JSON.stringify(toolResults)}`);
  assert.ok(toolResults.some((text) => text.includes('onFailure')), JSON.stringify(toolResults));
});

test('Claude Code: an Edit is shown whole and approving applies exactly it', { skip: claude.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const original = 'name = "site"\nport = 8080\ndebug = false\n';
    const { result, said, config } = await runClaude({
      askgateUrl: askgate.url,
      prepare: (work) => writeFileSync(join(work, 'config.toml'), original),
      // Claude Code edits only a file it has read: Read (passes, read-only), then Edit.
      script: (work) => [
        { name: 'Read', input: { file_path: join(work, 'config.toml') } },
        { name: 'Edit', input: { file_path: join(work, 'config.toml'), old_string: 'port = 8080', new_string: 'port = 9090' } },
      ],
      onPending: async (session) => {
        const head = await pendingApproval(askgate.url, session);
        await answer(askgate.url, head, 'once');
        return head;
      },
    });
    assert.equal(said.action.type, 'edit');
    assert.match(said.action.path, /config\.toml$/);
    assert.deepEqual(said.action.edits, [{ old: 'port = 8080', new: 'port = 9090' }]);
    assert.match(said.command, /^edit .*config\.toml \(1 edit, \+1 -1\)$/);
    assert.equal(config, 'name = "site"\nport = 9090\ndebug = false\n', result.stderr);
  } finally { askgate.stop(); }
});

// The permission prompt tool: `claude -p --permission-prompt-tool
// mcp__askgate__permission_prompt` with `askgate mcp` as an MCP server
// (docs/agents.md's --mcp-config) and no hooks. In `-p`'s default
// permission mode Bash is not allowed, so Claude Code asks the tool.

/// docs/agents.md's MCP configuration for the permission prompt tool.
function mcpConfig(askgateUrl, timeout = 330000, args = ['mcp']) {
  return { mcpServers: { askgate: { command: 'askgate', args, timeout,
    env: { ASKGATE_URL: askgateUrl, ASKGATE_TOKEN: AGENT_TOKEN } } } };
}

async function runClaudeWithPermissionTool({ askgateUrl, onPending, timeout, args, toolCall }) {
  const dir = tempDir('claude-mcp');
  const config = join(dir.dir, 'mcp.json');
  writeFileSync(config, JSON.stringify(mcpConfig(askgateUrl, timeout, args)));
  try {
    const run = await runAgent({
      askgateUrl,
      settings: {},
      prompt: 'Create the marker file.',
      args: ['--mcp-config', config, '--permission-prompt-tool', 'mcp__askgate__permission_prompt'],
      script: toolCall && (() => toolCall),
      onPending: onPending && (() => onPending()),
      after: (work) => existsSync(join(work, 'edited-marker')),
    });
    return { ...run, edited: run.seen };
  } finally {
    dir.remove();
  }
}

test('Claude Code permission prompt tool: approved, the command runs', { skip: claude.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { result, said, ran } = await runClaudeWithPermissionTool({ askgateUrl: askgate.url, onPending: async () => {
      const head = await nextApproval(askgate.url);
      await answer(askgate.url, head, 'once');
      return head;
    } });
    assert.equal(said.action.type, 'command');
    assert.match(said.action.command, /^touch .*marker$/);
    assert.match(said.action.cwd, /myproject$/);
    assert.equal(said.agent, 'claude-code');
    assert.ok(ran, `the approved command ran: ${result.stdout} ${result.stderr}`);
  } finally { askgate.stop(); }
});

test('Claude Code permission prompt tool: denied with a reason, nothing runs and the model reads it', { skip: claude.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const reason = 'use the make target instead';
    const { result, ran, toolResults } = await runClaudeWithPermissionTool({ askgateUrl: askgate.url, onPending: async () => {
      await answer(askgate.url, await nextApproval(askgate.url), 'deny', { reason });
    } });
    assert.ok(!ran, 'the denied command did not run');
    assert.ok(toolResults.some((text) => text.includes(reason)),
      `the model's next request carries the human's reason: ${JSON.stringify(toolResults)} ${result.stderr}`);
  } finally { askgate.stop(); }
});

test('Claude Code permission prompt tool: an edited command is the one that runs', { skip: claude.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const { result, ran, edited } = await runClaudeWithPermissionTool({ askgateUrl: askgate.url, onPending: async () => {
      const head = await nextApproval(askgate.url);
      const command = head.action.command.replace(/marker$/, 'edited-marker');
      await answer(askgate.url, head, 'once', { edited: { ...head.action, command } });
    } });
    assert.ok(!ran, `the command as asked did not run: ${result.stderr}`);
    assert.ok(edited, `the edited command ran: ${result.stdout} ${result.stderr}`);
  } finally { askgate.stop(); }
});

test('Claude Code permission prompt tool: past its MCP tool timeout, nothing runs', { skip: claude.skip }, async () => {
  const askgate = await startAskgate();
  try {
    // Claude Code's hard limit on the call (1 s), well before askgate's 300 s.
    const { result, said, ran, toolResults } = await runClaudeWithPermissionTool({ askgateUrl: askgate.url, timeout: 1000,
      onPending: () => nextApproval(askgate.url) });
    assert.equal(said.action.type, 'command');
    assert.ok(!ran, `nothing ran: ${JSON.stringify(toolResults)} ${result.stderr}`);
  } finally { askgate.stop(); }
});

/// The human's side of a clarify, as the page does it: the session's
/// pending question once there is one (a long-poll), then the answer.
async function answerClarify(url, sessionId, response) {
  const headers = { Authorization: `Bearer ${HUMAN_TOKEN}` };
  let since = 0;
  const end = Date.now() + 60000;
  while (Date.now() < end) {
    const poll = await (await fetch(`${url}/api/clarify/pending?session_id=${sessionId}&since=${since}&wait=30`, { headers })).json();
    if (poll.pending) {
      const reply = await fetch(`${url}/api/clarify/respond`, { method: 'POST',
        headers: { ...headers, 'Content-Type': 'application/json' },
        body: JSON.stringify({ session_id: sessionId, clarify_id: poll.pending.clarify_id, response }) });
      assert.equal(reply.status, 200, await reply.text());
      return poll.pending;
    }
    since = poll.version;
  }
  throw new Error(`no question in ${sessionId} within the deadline`);
}

test('Claude Code permission prompt tool: AskUserQuestion answered from askgate', { skip: claude.skip }, async () => {
  const askgate = await startAskgate();
  try {
    const questions = [{ question: 'Which database?', header: 'Database', multiSelect: false,
      options: [{ label: 'postgres', description: 'a server' }, { label: 'sqlite', description: 'a file' }] }];
    const { result, said, toolResults } = await runClaudeWithPermissionTool({ askgateUrl: askgate.url,
      args: ['mcp', '--session', 'questions'], toolCall: { name: 'AskUserQuestion', input: { questions } },
      onPending: () => answerClarify(askgate.url, 'questions', 'sqlite') });
    assert.equal(said.question, 'Which database?');
    assert.deepEqual(said.choices_offered, ['postgres', 'sqlite']);
    assert.ok(toolResults.some((text) => text.includes('sqlite')),
      `the model reads the human's answer: ${JSON.stringify(toolResults)} ${result.stderr}`);
  } finally { askgate.stop(); }
});
