// triage.js: many agents at once (docs/PROTOCOL.md §3.6).
//
// It owns the "Agents waiting" panel: every agent with a prompt waiting (or
// paused), with its counts, a Pause/Resume button and a Stop button; above
// them "Approve N reads", which answers "Allow once" to every head that only
// reads (a tool the agent's own policy counts as read-only, from
// /api/config), and "Stop every agent". It shows once two agents wait, or
// one is paused. Invariants: a stop cancels only after the human confirmed
// it in its dialog, which arms like a card; "Approve N reads" arms anew
// whenever the set of reads changes, and answers exactly the heads it named
// when it was armed; a paused agent's prompts are hidden from the cards and
// the alerts (`isPaused`) until it is resumed. Agent names are shown through
// visible.js.

import { requestJson, HttpError } from './transport.js';
import { showVisible } from './visible.js';
import { KINDS, sumKinds } from './kinds.js';

const REFRESH_SOON_MS = 150;

// The agent a head belongs to: the credential that asked (docs/PROTOCOL.md §7).
export function agentOf(head) {
  return head && typeof head.agent_name === 'string' && head.agent_name ? head.agent_name : 'agent';
}

function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

// `panel`, `dialog`: the elements; `arming`: arming.js's, with kinds
// `triage` (the panel) and `stop` (the dialog); `heads()`: every approval
// head waiting, [{session_id, head}]; `readOnly`: a promise of
// /api/config's read_only_tools; `onError(message)`, `onChange()`.
export function createTriage({ panel, dialog, arming, heads, readOnly, onError, onChange }) {
  const list = panel.querySelector('.triage-list');
  const reads = panel.querySelector('.triage-reads');
  const stopAll = panel.querySelector('.triage-stop-all');
  const title = dialog.querySelector('.stop-confirm-title');
  const explain = dialog.querySelector('.stop-confirm-explain');
  const accept = dialog.querySelector('.stop-confirm-accept');
  const cancel = dialog.querySelector('.stop-confirm-cancel');
  let agents = [];
  let paused = new Set();
  let readTools = {};
  let shownReads = []; // [{session_id, approval_id}] "Approve N reads" names
  let readsKey = '';
  let stopping = null; // {agent} or {all: true}, while the dialog is open
  let soon = null;
  let loading = null;

  readOnly.then((tools) => {
    readTools = tools && typeof tools === 'object' ? tools : {};
    render();
  });

  function isRead(head) {
    const action = head && head.action;
    if (!action || action.type !== 'tool') return false;
    // Keyed by the program the agent says it is (claude-code, codex…).
    const tools = readTools[typeof head.agent === 'string' ? head.agent : agentOf(head)];
    return Array.isArray(tools) && tools.includes(action.name);
  }

  async function load() {
    try {
      const { body } = await requestJson('api/agents');
      agents = Array.isArray(body.agents) ? body.agents : [];
    } catch (error) {
      if (!(error instanceof HttpError)) return; // offline: keep what is shown
      agents = [];
    }
    const next = new Set(agents.filter((a) => a.paused).map((a) => a.agent));
    const changed = next.size !== paused.size || [...next].some((a) => !paused.has(a));
    paused = next;
    list.replaceChildren(...agents.map(item));
    render();
    if (changed) onChange();
  }

  function refresh() {
    if (!loading) loading = load().finally(() => (loading = null));
    return loading;
  }

  function refreshSoon() {
    clearTimeout(soon);
    soon = setTimeout(refresh, REFRESH_SOON_MS);
  }

  // How many prompts of `kind` the agent has waiting.
  const pendingOf = (agent, kind) => Number(agent.pending && agent.pending[kind]) || 0;
  const waitingOf = (agent) => sumKinds((kind) => pendingOf(agent, kind));

  function counts(agent) {
    const parts = [];
    for (const { kind, one, many } of KINDS) {
      const count = pendingOf(agent, kind);
      if (count) parts.push(plural(count, one, many));
    }
    if (!parts.length) parts.push('nothing waiting');
    return parts.join(', ');
  }

  function item(agent) {
    const li = document.createElement('li');
    li.className = 'triage-agent';
    li.dataset.agent = agent.agent;
    li.toggleAttribute('data-paused', agent.paused);
    const name = document.createElement('span');
    name.className = 'triage-name';
    showVisible(name, agent.agent);
    const what = document.createElement('span');
    what.className = 'triage-counts';
    what.textContent = agent.paused ? `paused: ${counts(agent)}` : counts(agent);
    const pause = document.createElement('button');
    pause.type = 'button';
    pause.className = 'triage-pause button-quiet';
    pause.textContent = agent.paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-label', `${agent.paused ? 'Resume' : 'Pause'} ${agent.agent}`);
    pause.addEventListener('click', () => setPaused(agent.agent, !agent.paused, pause));
    const stop = document.createElement('button');
    stop.type = 'button';
    stop.className = 'triage-stop button-quiet';
    stop.textContent = 'Stop';
    stop.setAttribute('aria-label', `Stop ${agent.agent}`);
    stop.addEventListener('click', () => askStop({ agent: agent.agent }));
    li.append(name, what, pause, stop);
    return li;
  }

  function render() {
    const waiting = agents.filter((a) => waitingOf(a) > 0);
    const show = waiting.length >= 2 || agents.some((a) => a.paused);
    panel.hidden = !show;
    stopAll.hidden = waiting.length === 0;
    const found = heads().filter(({ head }) => !paused.has(agentOf(head)) && isRead(head));
    const named = found.map(({ session_id, head }) => ({ session_id, approval_id: head.approval_id }));
    reads.hidden = !show || named.length < 2;
    // Armed anew whenever what the button would answer changes, and when
    // it shows at all (docs/PROTOCOL.md §3.6).
    const key = reads.hidden ? '' : named.map((r) => r.approval_id).sort().join(',');
    if (key !== readsKey) {
      readsKey = key;
      shownReads = named;
      reads.textContent = `Approve ${plural(named.length, 'read', 'reads')}`;
      arming.arm('triage', key || null);
    }
  }

  async function setPaused(agent, pause, button) {
    button.disabled = true;
    try {
      await requestJson('api/agents/pause', { method: 'POST', body: { agent, paused: pause } });
    } catch (error) {
      onError(`${agent} was not ${pause ? 'paused' : 'resumed'}: ${error instanceof HttpError ? error.message : 'the server could not be reached'}.`);
    }
    button.disabled = false;
    await refresh();
  }

  function askStop(target) {
    if (dialog.open) return;
    stopping = target;
    const agent = target.all ? null : agents.find((a) => a.agent === target.agent);
    const total = agent ? waitingOf(agent) : agents.reduce((sum, a) => sum + waitingOf(a), 0);
    title.textContent = target.all ? 'Stop every agent?' : `Stop ${target.agent}?`;
    explain.textContent = `This cancels ${plural(total, 'waiting prompt', 'waiting prompts')}${target.all ? ' of every agent' : ''}. Each agent is told its prompt was cancelled; nothing is approved.`;
    accept.textContent = target.all ? 'Stop every agent' : `Stop ${target.agent}`;
    dialog.showModal();
    cancel.focus();
    arming.arm('stop', target.all ? '*all*' : `agent:${target.agent}`);
  }

  async function stop(event) {
    const key = stopping && (stopping.all ? '*all*' : `agent:${stopping.agent}`);
    if (!stopping || !arming.takes('stop', key, event)) return;
    const body = stopping.all ? { all: true } : { agent: stopping.agent };
    stopping = null;
    dialog.close();
    arming.arm('stop', null);
    try {
      await requestJson('api/agents/stop', { method: 'POST', body });
    } catch (error) {
      onError(`Nothing was stopped: ${error instanceof HttpError ? error.message : 'the server could not be reached'}.`);
    }
    await refresh();
  }

  async function approveReads(event) {
    if (!arming.takes('triage', readsKey, event)) return;
    const answering = shownReads;
    readsKey = '';
    arming.arm('triage', null);
    reads.hidden = true;
    let failed = 0;
    for (const { session_id, approval_id } of answering) {
      try {
        await requestJson('api/approval/respond', { method: 'POST', body: { session_id, approval_id, choice: 'once' } });
      } catch {
        failed += 1; // answered elsewhere meanwhile (409), or offline
      }
    }
    if (failed) onError(`${plural(failed, 'read was', 'reads were')} not approved here: answered elsewhere, or the server could not be reached.`);
    await refresh();
  }

  reads.addEventListener('click', approveReads);
  stopAll.addEventListener('click', () => askStop({ all: true }));
  accept.addEventListener('click', stop);
  cancel.addEventListener('click', () => {
    stopping = null;
    dialog.close();
    arming.arm('stop', null);
  });
  dialog.addEventListener('close', () => {
    stopping = null;
  });

  refresh();
  return {
    refreshSoon,
    render,
    isPaused: (head) => paused.has(agentOf(head)),
  };
}
