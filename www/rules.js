// rules.js: the rules the human owns, and what one will cover before it exists.
//
// It owns the Rules panel (GET api/rules, a Revoke button per rule that
// POSTs api/rules/revoke) and the confirmation "Allow session" and "Always
// allow" open: it shows exactly what the rule would cover (the exact command
// by default, or a prefix of its leading words the human picks) and answers
// only once confirmed. Invariants: rule and command text only ever goes in
// through textContent, with control, bidi and other invisible characters
// shown escaped (`\n`, `\u202E`) in a marked span, so what the human reads is
// what the rule matches; a prefix is offered only where the server would
// accept it (docs/PROTOCOL.md §3.2). URLs are relative, so the page works
// under a sub-path.

import { requestJson, HttpError } from './transport.js';

// Characters that do not show as themselves (the server's audit log escapes
// the same set): controls, line and paragraph separators, bidi controls,
// zero-width and other invisible format characters, variation selectors, tags.
const HIDDEN =
  /[\u0000-\u001F\u007F-\u009F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u2028-\u202E\u2060-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFFB\u{1D173}-\u{1D17A}\u{E0000}-\u{E0FFF}]/u;
const NAMED = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
// Shell control characters: none may follow a prefix for a rule to cover a
// command (the server's rule, docs/PROTOCOL.md §3.2).
const SHELL_CONTROL = /[\n\r;&|`<>()$\\'"]/;
const MAX_PREFIXES = 6;
const REFRESH_SOON_MS = 300;
const REFRESH_EVERY_MS = 30000;

function escapeOne(char) {
  if (NAMED[char]) return NAMED[char];
  const code = char.codePointAt(0);
  const hex = code.toString(16).toUpperCase();
  return code <= 0xffff ? `\\u${hex.padStart(4, '0')}` : `\\u{${hex}}`;
}

// The text with every hidden character written as its escape.
export function escapeVisible(text) {
  let out = '';
  for (const char of String(text)) out += HIDDEN.test(char) ? escapeOne(char) : char;
  return out;
}

// Fills `element` with the text, each hidden character as a marked span
// holding its escape, so it cannot pass for text the agent typed.
export function showVisible(element, text) {
  const nodes = [];
  let run = '';
  for (const char of String(text)) {
    if (!HIDDEN.test(char)) {
      run += char;
      continue;
    }
    if (run) nodes.push(document.createTextNode(run));
    run = '';
    const mark = document.createElement('span');
    mark.className = 'escaped';
    mark.textContent = escapeOne(char);
    mark.title = `hidden character U+${char.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
    nodes.push(mark);
  }
  if (run) nodes.push(document.createTextNode(run));
  element.replaceChildren(...nodes);
}

// The prefixes of `command` a rule may be widened to: its leading words, up
// to MAX_PREFIXES, none when the command holds a shell control character
// anywhere (the server accepts no prefix whose rest holds one, and a prefix
// that holds one would not be one simple command).
export function prefixChoices(command) {
  if (SHELL_CONTROL.test(command)) return [];
  const prefixes = [];
  for (let at = command.indexOf(' '); at > 0 && prefixes.length < MAX_PREFIXES; at = command.indexOf(' ', at + 1)) {
    const prefix = command.slice(0, at).trimEnd();
    const fits = prefix.trim() && command.slice(prefix.length).startsWith(' ');
    if (fits && !prefixes.includes(prefix)) prefixes.push(prefix);
  }
  return prefixes;
}

const LIFETIME = {
  session: { title: 'Allow for the rest of this session', confirm: 'Allow session' },
  always: { title: 'Always allow, in every session', confirm: 'Always allow' },
};

function explain(choice, session_id, prefix) {
  const what =
    prefix === null
      ? 'Covers exactly this command, character for character.'
      : 'Covers this prefix alone, or followed by a space and arguments without shell control characters (; & | ` $ ( ) < > \\ \' " or a line break).';
  const where =
    choice === 'session' ? `in session ${escapeVisible(session_id)} until it ends or you revoke the rule` : 'in every session until you revoke the rule';
  return `${what} Later approvals it covers are answered without asking, ${where}.`;
}

// Opens the confirmation for a `choice` of "session" or "always" on `entry`.
// Resolves with {scope} (null for the exact command, or the prefix picked)
// once confirmed, or null when cancelled or closed.
export function askRuleScope(dialog, choice, entry) {
  const $ = (selector) => dialog.querySelector(selector);
  const select = $('.rule-confirm-choice');
  const command = String(entry.command || '');
  $('.rule-confirm-title').textContent = LIFETIME[choice].title;
  $('.rule-confirm-accept').textContent = LIFETIME[choice].confirm;
  // An action that is not a command is covered exactly, or not at all
  // (docs/PROTOCOL.md §3.2): no prefixes of its one-line summary.
  const isCommand = !entry.action || entry.action.type === 'command';
  const options = [new Option(isCommand ? 'Exactly this command' : 'Exactly this action', '')];
  const prefixes = isCommand ? prefixChoices(command) : [];
  for (const prefix of prefixes) options.push(new Option(`Starts with: ${escapeVisible(prefix)}`, prefix));
  select.replaceChildren(...options);
  select.disabled = options.length === 1;
  const show = () => {
    const prefix = select.value === '' ? null : select.value;
    showVisible($('.rule-confirm-scope code'), prefix === null ? command : prefix);
    $('.rule-confirm-scope').dataset.match = prefix === null ? 'exact' : 'prefix';
    $('.rule-confirm-explain').textContent = explain(choice, entry.session_id, prefix);
  };
  show();
  return new Promise((resolve) => {
    const finish = (result) => {
      select.removeEventListener('change', show);
      $('.rule-confirm-accept').onclick = null;
      $('.rule-confirm-cancel').onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(result);
    };
    select.addEventListener('change', show);
    $('.rule-confirm-accept').onclick = () => finish({ scope: select.value === '' ? null : select.value });
    $('.rule-confirm-cancel').onclick = () => finish(null);
    dialog.onclose = () => finish(null);
    dialog.showModal();
    (select.disabled ? $('.rule-confirm-cancel') : select).focus();
  });
}

function formatTime(seconds) {
  const date = new Date(Number(seconds) * 1000);
  return Number.isFinite(date.getTime()) ? date.toLocaleString() : '';
}

// The Rules panel: `list` (a <ul>) and `empty` (shown when there are none);
// `onError(message)` reports a revoke that failed.
export function createRulesPanel({ list, empty, onError }) {
  let loading = null;
  let again = false;
  let soon = null;

  function item(rule) {
    const li = document.createElement('li');
    li.className = 'rule';
    li.dataset.ruleId = rule.rule_id;
    const head = document.createElement('p');
    head.className = 'rule-head';
    const lifetime = document.createElement('span');
    lifetime.className = 'rule-lifetime';
    lifetime.dataset.lifetime = rule.lifetime;
    lifetime.textContent = rule.lifetime === 'always' ? 'Always' : `Session ${rule.session_id}`;
    const match = document.createElement('span');
    match.className = 'rule-match';
    const prefix = rule.scope && typeof rule.scope.prefix === 'string';
    match.textContent = prefix ? 'commands starting with' : 'exactly';
    head.append(lifetime, match);
    const scope = document.createElement('code');
    scope.className = 'rule-scope';
    // An action rule ({"action": {...}}) is shown by its summary, `command`.
    const exact = rule.scope && typeof rule.scope.exact === 'string' ? rule.scope.exact : rule.command;
    showVisible(scope, prefix ? rule.scope.prefix : exact);
    const meta = document.createElement('p');
    meta.className = 'rule-meta';
    meta.textContent = `granted ${formatTime(rule.granted_at)}`;
    const children = [head, scope, meta];
    if (prefix) {
      const from = document.createElement('p');
      from.className = 'rule-command';
      const label = document.createElement('span');
      label.textContent = 'on: ';
      const command = document.createElement('code');
      showVisible(command, rule.command);
      from.append(label, command);
      children.push(from);
    }
    const revoke = document.createElement('button');
    revoke.type = 'button';
    revoke.className = 'rule-revoke button-quiet';
    revoke.textContent = 'Revoke';
    revoke.addEventListener('click', () => revokeRule(rule.rule_id, revoke));
    children.push(revoke);
    li.append(...children);
    return li;
  }

  function render(rules) {
    list.replaceChildren(...rules.map(item));
    empty.hidden = rules.length > 0;
  }

  async function load() {
    try {
      const { body } = await requestJson('api/rules');
      render(Array.isArray(body.rules) ? body.rules : []);
    } catch (error) {
      if (!(error instanceof HttpError)) return; // offline: keep what is shown
    }
  }

  // Loads the list; a refresh asked for while one runs runs once after it.
  function refresh() {
    if (loading) {
      again = true;
      return loading;
    }
    loading = load().finally(() => {
      loading = null;
      if (again) {
        again = false;
        refresh();
      }
    });
    return loading;
  }

  function refreshSoon() {
    clearTimeout(soon);
    soon = setTimeout(refresh, REFRESH_SOON_MS);
  }

  async function revokeRule(rule_id, button) {
    button.disabled = true;
    try {
      await requestJson('api/rules/revoke', { method: 'POST', body: { rule_id } });
    } catch (error) {
      // 404: it is gone already (revoked elsewhere, or left with its session).
      if (!(error instanceof HttpError && error.status === 404)) {
        onError(`The rule was not revoked: ${error instanceof HttpError ? error.message : 'the server could not be reached'}.`);
        button.disabled = false;
        return;
      }
    }
    list.querySelector(`[data-rule-id="${CSS.escape(rule_id)}"]`)?.remove();
    empty.hidden = list.children.length > 0;
    refresh();
  }

  setInterval(() => {
    if (document.visibilityState === 'visible') refresh();
  }, REFRESH_EVERY_MS);
  refresh();
  return { refresh, refreshSoon };
}
