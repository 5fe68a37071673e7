// actions.js: an approval's action as the human must read it, and the box
// that edits it before it is approved.
//
// It owns the renderers of the five action types (docs/PROTOCOL.md §5.2):
// a command with its cwd, an edit as a unified diff of each edit with its
// line counts, a write as path, size, line count and content, a fetch as
// method and URL, a tool as its name and every key and value of its input.
// Invariants: every string goes through visible.js (CRLF and bidi shown
// escaped); long content collapses behind "show all N lines", never cut
// silently; an edited action keeps every field of the one asked but the
// one the human may change (docs/PROTOCOL.md §3.2), and is checked before
// it is sent.

import { showVisible } from './visible.js';

// More lines than this collapse behind "show all N lines".
export const COLLAPSED_LINES = 40;

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) showVisible(node, text);
  return node;
}

// Lines split on "\n" only, so a "\r" stays in its line and shows escaped.
export function linesOf(text) {
  return String(text ?? '').split('\n');
}

function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

// `rows`: [{text, mark}] where mark is '+', '-' or ' '. A <pre> of the first
// COLLAPSED_LINES rows and, past them, a button that shows them all.
function linesBlock(rows, className) {
  const block = element('div', 'action-lines');
  const pre = element('pre', className);
  const code = document.createElement('code');
  pre.append(code);
  const fill = (count) => {
    code.replaceChildren(
      ...rows.slice(0, count).map((row) => {
        const line = element('span', `line line-${{ '+': 'add', '-': 'del', ' ': 'same' }[row.mark] || 'plain'}`);
        const text = element('span', 'line-text', row.text);
        if (row.mark) line.append(element('span', 'line-mark', row.mark));
        line.append(text, document.createTextNode('\n'));
        return line;
      }),
    );
  };
  block.append(pre);
  if (rows.length > COLLAPSED_LINES) {
    fill(COLLAPSED_LINES);
    const more = element('button', 'show-all');
    more.type = 'button';
    more.textContent = `show all ${rows.length} lines`;
    more.addEventListener('click', () => {
      fill(rows.length);
      more.remove();
    });
    block.append(element('p', 'action-collapsed', `${COLLAPSED_LINES} of ${rows.length} lines shown`), more);
  } else {
    fill(rows.length);
  }
  return block;
}

// One edit as a unified diff: the lines both sides share at the start and
// end as context, the rest removed and added.
export function diffRows(oldText, newText) {
  const a = linesOf(oldText);
  const b = linesOf(newText);
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) start += 1;
  let end = 0;
  while (end < a.length - start && end < b.length - start && a[a.length - 1 - end] === b[b.length - 1 - end]) end += 1;
  const rows = [];
  for (const text of a.slice(0, start)) rows.push({ text, mark: ' ' });
  for (const text of a.slice(start, a.length - end)) rows.push({ text, mark: '-' });
  for (const text of b.slice(start, b.length - end)) rows.push({ text, mark: '+' });
  for (const text of a.slice(a.length - end)) rows.push({ text, mark: ' ' });
  return rows;
}

function counts(rows) {
  const added = rows.filter((row) => row.mark === '+').length;
  const removed = rows.filter((row) => row.mark === '-').length;
  return `+${added} -${removed}`;
}

function field(label, value, className = '') {
  const row = element('p', `action-field ${className}`.trim());
  row.append(element('span', 'action-field-label', label), ' ');
  row.append(element('code', 'action-field-value', value));
  return row;
}

function renderEdit(action) {
  const edits = Array.isArray(action.edits) ? action.edits : [];
  const nodes = [field('Edit file', action.path)];
  edits.forEach((edit, at) => {
    const rows = diffRows(edit.old, edit.new);
    const head = element('p', 'diff-head');
    head.append(element('span', '', `${edits.length > 1 ? `Edit ${at + 1} of ${edits.length}` : 'Edit'} `));
    head.append(element('span', 'diff-counts', counts(rows)));
    nodes.push(head, linesBlock(rows, 'diff'));
  });
  return nodes;
}

function renderWrite(action) {
  const content = String(action.content ?? '');
  const lines = linesOf(content);
  const bytes = new TextEncoder().encode(content).length;
  return [
    field('Write file', action.path),
    element('p', 'write-size', `${plural(bytes, 'byte', 'bytes')} · ${plural(lines.length, 'line', 'lines')}`),
    linesBlock(lines.map((text) => ({ text, mark: '' })), 'write-content'),
  ];
}

function renderFetch(action) {
  return [field('Fetch', `${action.method || 'GET'} ${action.url ?? ''}`, 'fetch-line')];
}

function shown(value) {
  return typeof value === 'string' ? value : JSON.stringify(value, null, 2);
}

function renderTool(action) {
  const input = action.input && typeof action.input === 'object' ? action.input : {};
  const list = element('dl', 'tool-input');
  for (const [key, value] of Object.entries(input)) {
    list.append(element('dt', '', key));
    const dd = document.createElement('dd');
    dd.append(linesBlock(linesOf(shown(value)).map((text) => ({ text, mark: '' })), 'tool-value'));
    list.append(dd);
  }
  const nodes = [field('Tool', action.name)];
  if (Object.keys(input).length) nodes.push(list);
  else nodes.push(element('p', 'tool-empty', 'No input.'));
  return nodes;
}

// The nodes that show an action that is not a command (a command keeps the
// card's own block).
export function renderAction(action) {
  switch (action.type) {
    case 'edit':
      return renderEdit(action);
    case 'write':
      return renderWrite(action);
    case 'fetch':
      return renderFetch(action);
    case 'tool':
      return renderTool(action);
    default:
      return [];
  }
}

// The action on an approval entry: `action`, or its `command` as one.
export function actionOf(entry) {
  if (entry.action && typeof entry.action === 'object' && typeof entry.action.type === 'string') return entry.action;
  return { type: 'command', command: String(entry.command ?? '') };
}

// --- edit and approve ---------------------------------------------------------

function textField(id, label, value, { multiline = true } = {}) {
  const wrap = element('div', 'edit-field');
  const name = element('label', '', label);
  name.htmlFor = id;
  const input = document.createElement(multiline ? 'textarea' : 'input');
  input.id = id;
  input.value = value;
  input.spellcheck = false;
  if (multiline) input.rows = Math.min(12, Math.max(2, linesOf(value).length));
  else input.type = 'text';
  wrap.append(name, input);
  return { wrap, input };
}

// The fields of the edit box for `action`, prefilled, and `read()`, which
// gives {edited} or {error}.
export function editFields(action) {
  switch (action.type) {
    case 'command': {
      const f = textField('edit-command', 'Command', String(action.command ?? ''));
      return { nodes: [f.wrap], read: () => nonEmpty(f.input.value, 'The command', () => ({ ...action, command: f.input.value })) };
    }
    case 'edit': {
      const edits = Array.isArray(action.edits) ? action.edits : [];
      const fields = edits.map((edit, at) => textField(`edit-new-${at}`, `New text of edit ${at + 1} of ${edits.length}`, String(edit.new ?? '')));
      return {
        nodes: fields.map((f) => f.wrap),
        read: () => ({ edited: { ...action, edits: edits.map((edit, at) => ({ ...edit, new: fields[at].input.value })) } }),
      };
    }
    case 'write': {
      const f = textField('edit-content', 'Content', String(action.content ?? ''));
      return { nodes: [f.wrap], read: () => nonEmpty(f.input.value, 'The content', () => ({ ...action, content: f.input.value })) };
    }
    case 'fetch': {
      const f = textField('edit-url', 'URL', String(action.url ?? ''), { multiline: false });
      return { nodes: [f.wrap], read: () => nonEmpty(f.input.value, 'The URL', () => ({ ...action, url: f.input.value.trim() })) };
    }
    case 'tool': {
      const f = textField('edit-input', 'Input (JSON object)', JSON.stringify(action.input ?? {}, null, 2));
      return { nodes: [f.wrap], read: () => toolInput(action, f.input.value) };
    }
    default:
      return { nodes: [], read: () => ({ error: 'This action cannot be edited here.' }) };
  }
}

function nonEmpty(value, what, build) {
  if (!value.trim()) return { error: `${what} must not be empty.` };
  return { edited: build() };
}

function toolInput(action, text) {
  let input;
  try {
    input = JSON.parse(text);
  } catch {
    return { error: 'The input is not valid JSON.' };
  }
  if (!input || typeof input !== 'object' || Array.isArray(input)) return { error: 'The input must be a JSON object.' };
  return { edited: { ...action, input } };
}
