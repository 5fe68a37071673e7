// history.js: what became of the selected session's earlier prompts.
//
// It owns the "Earlier in this session" list under the cards, drawn from
// GET api/history (docs/PROTOCOL.md §3.5): the server's kept outcomes,
// newest first, each with what was asked, the answer (a decision's reason,
// edited action and note too), and how long ago.
// Invariants: text only ever goes in through textContent, with hidden
// characters shown escaped as on the cards (an edited action drawn by the
// cards' own renderers, actions.js); a response for a session that
// is no longer selected is dropped; a failed fetch keeps what is shown.

import { renderAction } from './actions.js';
import { kindOf } from './kinds.js';
import { requestJson } from './transport.js';
import { showVisible } from './visible.js';

const LIMIT = 10;
const REFRESH_SOON_MS = 250;

const CHOICE_TEXT = {
  once: 'Allowed once',
  session: 'Allowed for the session',
  always: 'Always allowed',
  deny: 'Denied',
};

function outcomeText(entry) {
  if (entry.status === 'expired') return 'Expired';
  if (entry.status === 'cancelled') return 'Cancelled';
  // Who answered, by name (docs/PROTOCOL.md §3.5): "answered by anna"; the
  // legacy human token's answers read as before names.
  const by = entry.by && entry.by !== 'human' ? ` by ${entry.by}` : '';
  if (entry.kind === 'approval') {
    const text = CHOICE_TEXT[entry.choice] || String(entry.choice || 'Answered');
    return entry.auto ? `${text} by a rule` : `${text}${by}`;
  }
  return `Answered${by}`;
}

// "just now", "5 min ago", "3 h ago", "2 d ago"; `seconds` in the past.
export function ago(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 45) return 'just now';
  if (s < 3600) return `${Math.max(1, Math.round(s / 60))} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

// A labelled line of text: "Answer: …", "Reason: …", "Note: …".
function labelled(className, label, value) {
  const line = document.createElement('p');
  line.className = `history-answer ${className}`;
  const name = document.createElement('span');
  name.className = 'history-answer-label';
  name.textContent = `${label}: `;
  const text = document.createElement('span');
  showVisible(text, String(value ?? ''));
  line.append(name, text);
  return line;
}

// The command's block: the command asked, or an edited command approved.
function commandBlock(className, command) {
  const pre = document.createElement('pre');
  pre.className = className;
  const code = document.createElement('code');
  showVisible(code, String(command ?? ''));
  pre.append(code);
  return pre;
}

// What the human approved instead of what was asked (docs/PROTOCOL.md §3.2).
function editedBlock(edited) {
  const block = document.createElement('div');
  block.className = 'history-edited';
  const label = document.createElement('p');
  label.className = 'history-answer-label';
  label.textContent = 'Approved with an edit:';
  const shown = edited.type === 'command' ? [commandBlock('history-command', edited.command)] : renderAction(edited);
  block.append(label, ...shown);
  return block;
}

// A decision's reason, edited action and note, those it has.
function decisionNodes(entry) {
  const nodes = [];
  if (typeof entry.reason === 'string') nodes.push(labelled('history-reason', 'Reason', entry.reason));
  if (entry.edited && typeof entry.edited === 'object') nodes.push(editedBlock(entry.edited));
  if (typeof entry.note === 'string') nodes.push(labelled('history-note', 'Note', entry.note));
  return nodes;
}

function item(entry, nowSeconds) {
  const li = document.createElement('li');
  li.className = `history-item history-${kindOf(entry.kind)?.kind ?? 'unknown'}`;
  li.dataset.status = String(entry.status || '');
  const head = document.createElement('p');
  head.className = 'history-head';
  const outcome = document.createElement('span');
  outcome.className = 'history-outcome';
  outcome.textContent = outcomeText(entry);
  const when = document.createElement('time');
  when.className = 'history-when';
  const at = Number(entry.at) || 0;
  if (at) when.dateTime = new Date(at * 1000).toISOString();
  when.textContent = at ? ago(nowSeconds - at) : '';
  head.append(outcome, when);
  li.append(head);
  if (entry.kind === 'approval') {
    li.append(commandBlock('history-command', entry.command), ...decisionNodes(entry));
  } else {
    const question = document.createElement('p');
    question.className = 'history-question';
    showVisible(question, String(entry.question ?? ''));
    li.append(question);
    // A form's object or a list of picks is shown as its JSON.
    const response = typeof entry.response === 'string' ? entry.response : JSON.stringify(entry.response ?? '');
    if (entry.status === 'answered') li.append(labelled('history-response', 'Answer', response));
  }
  return li;
}

// `now()` is the server's clock in Unix seconds.
export function createHistory({ section, list, now }) {
  let session = null;
  let timer = null;
  let generation = 0;

  async function load() {
    timer = null;
    const wanted = session;
    const mine = ++generation;
    if (!wanted) return;
    try {
      const query = new URLSearchParams({ session_id: wanted, limit: String(LIMIT) });
      const { body } = await requestJson(`api/history?${query}`);
      if (mine !== generation || wanted !== session) return;
      const entries = Array.isArray(body.history) ? body.history : [];
      const nowSeconds = now();
      list.replaceChildren(...entries.map((entry) => item(entry, nowSeconds)));
      section.hidden = entries.length === 0;
    } catch {
      // Kept as it was; the next change of the session tries again.
    }
  }

  return {
    // Shows `session_id`'s history (null: none).
    show(session_id) {
      if (session_id === session) return;
      session = session_id;
      generation += 1;
      list.replaceChildren();
      section.hidden = true;
      clearTimeout(timer);
      timer = null;
      if (session) load();
    },

    // The selected session changed on the server: look again shortly.
    refreshSoon() {
      if (!session || timer) return;
      timer = setTimeout(load, REFRESH_SOON_MS);
    },
  };
}
