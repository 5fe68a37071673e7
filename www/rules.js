// rules.js: the rules the human owns, and what one will cover before it exists.
//
// It owns the Rules panel (GET api/rules, a Revoke button per rule that
// POSTs api/rules/revoke) and the confirmation "Allow session" and "Always
// allow" open: it shows exactly what the rule would cover (the exact command
// or action by default, or a prefix of its leading words the human picks;
// for another action its tool with any input, a URL prefix or a directory,
// said in plain words) and answers only once confirmed, with an "and any options" box that says what ticking
// it allows. Invariants: rule and command text only ever goes in through
// textContent, with control, bidi, invisible and blank-rendering characters
// shown escaped (`\n`, `\u202E`) in a marked span (visible.js's escaping,
// shared by every renderer), so what the human reads is what the rule
// matches; a prefix is offered only where the server would accept it
// (docs/PROTOCOL.md §3.2): plain words that do not end at a program that
// runs others, from the server's own list (`rule_runners` of GET
// api/config; none is offered while it is unknown). URLs are relative, so
// the page works under a sub-path.

import { requestJson, HttpError, loadConfig } from './transport.js';
import { escapeVisible, showVisible } from './visible.js';

// What is not a plain word to the shell: control, quoting, expansion,
// redirection, wildcard and comment characters, and control characters but
// the tab. A prefix and what follows it must hold none (the server's rule,
// docs/PROTOCOL.md §3.2).
const NOT_PLAIN = /[;&|`<>()$\\'"*?[\]{}#!^\u0000-\u0008\u000A-\u001F\u007F-\u009F]/;
const ASSIGNMENT = /^[A-Za-z_][A-Za-z0-9_]*=/;
const MAX_PREFIXES = 6;
const REFRESH_SOON_MS = 300;
const REFRESH_EVERY_MS = 30000;

// The positions of the words after a program that are its operands: not
// options, not the word right after an option without `=` (it may be its
// argument), not assignments; every word after `--`.
function operandPositions(words) {
  const positions = [];
  let afterOption = false;
  let ended = false;
  words.forEach((word, at) => {
    if (ended) positions.push(at);
    else if (word === '--') ended = true;
    else if (word.startsWith('-')) {
      afterOption = !word.includes('=');
      return;
    } else if (!afterOption && !ASSIGNMENT.test(word)) positions.push(at);
    afterOption = false;
  });
  return positions;
}

// Whether a prefix ends at a program that runs others without naming what
// it runs (`sudo`, `sudo -u root`, `env A=1`, `docker run img`), as the
// server reads it (src/core/rules.rs, docs/PROTOCOL.md §3.2), with the
// server's list of such programs.
export function endsAtRunner(prefix, runners) {
  const words = prefix.split(/[ \t]/).filter(Boolean);
  let at = 0;
  while (at < words.length && ASSIGNMENT.test(words[at])) at += 1;
  for (;;) {
    if (at >= words.length) return true;
    const program = words[at].split('/').pop();
    const after = words.slice(at + 1);
    const operands = operandPositions(after);
    let runner = null;
    for (const candidate of runners) {
      const names = String(candidate.runs).split(' ');
      const fits = names[0] === program && names.slice(1).every((name, i) => i >= operands.length || after[operands[i]] === name);
      if (fits && (!runner || candidate.runs.length > runner.runs.length)) runner = candidate;
    }
    if (!runner) return false;
    const skipped = runner.runs.split(' ').length - 1 + Number(runner.operands);
    if (skipped >= operands.length) return true;
    at += 1 + operands[skipped];
  }
}

// The prefixes of `command` a rule may be widened to: its leading words, up
// to MAX_PREFIXES, none when the command holds a character that is not plain
// (the server accepts no prefix that holds one or whose rest does), and
// none that ends at one of `runners` (all of them while the list is
// unknown).
export function prefixChoices(command, runners) {
  if (NOT_PLAIN.test(command) || !Array.isArray(runners)) return [];
  const prefixes = [];
  for (let at = command.indexOf(' '); at > 0 && prefixes.length < MAX_PREFIXES; at = command.indexOf(' ', at + 1)) {
    const prefix = command.slice(0, at).trimEnd();
    const fits = prefix.trim() && command.slice(prefix.length).startsWith(' ') && !endsAtRunner(prefix, runners);
    if (fits && !prefixes.includes(prefix)) prefixes.push(prefix);
  }
  return prefixes;
}

// The wider scopes a rule on an action that is not a command may take
// (docs/PROTOCOL.md §3.2), each as {label, scope (the respond body's),
// shown (the text the rule holds), covers (what it covers, in plain
// words)}. Only what the server would accept for this very action: URLs
// and paths with a user, `\`, `..`, `.`, `//` or an encoded separator are
// offered none (the server reads them strictly and would refuse).
const UNCLEAN_URL = /[@\\]|%2e|%2f|%5c/i;
const UNCLEAN_PATH = /(^|\/)\.{1,2}(\/|$)|\/\/|\u0000/;

export function widerScopes(action, cwd) {
  if (!action || typeof action !== 'object') return [];
  if (action.type === 'tool' && typeof action.name === 'string') {
    return [{ label: `This tool with any input: ${escapeVisible(action.name)}`, scope: { tool: action.name }, shown: action.name,
      covers: `Covers the tool ${escapeVisible(action.name)} called with any input at all, not only the input shown.` }];
  }
  if (action.type === 'fetch') return urlScopes(String(action.url || ''), action.method || 'GET');
  if (action.type === 'edit' || action.type === 'write') return directoryScopes(action.type, String(action.path || ''), cwd);
  return [];
}

function urlScopes(url, method) {
  const match = /^(https?):\/\/([^/?#]*)([^?#]*)/i.exec(url);
  if (!match || UNCLEAN_URL.test(url)) return [];
  const scheme = match[1].toLowerCase();
  const [host, port] = match[2].toLowerCase().split(/:(?=\d+$)/);
  if (!host || !/^[a-z0-9.-]+$/.test(host)) return [];
  const defaultPort = scheme === 'http' ? '80' : '443';
  const origin = `${scheme}://${host}${port && Number(port) !== Number(defaultPort) ? `:${Number(port)}` : ''}`;
  const path = match[3] || '/';
  const segments = path.split('/').slice(1);
  if (segments.some((segment, at) => segment === '.' || segment === '..' || (segment === '' && at < segments.length - 1))) return [];
  const scopes = [];
  for (let end = path.lastIndexOf('/'); end >= 0 && scopes.length < MAX_PREFIXES; end = path.lastIndexOf('/', end - 1)) {
    const prefix = `${origin}${path.slice(0, end + 1)}`;
    scopes.push({ label: `URLs under: ${escapeVisible(prefix)}`, scope: { url_prefix: prefix }, shown: prefix,
      covers: `Covers ${escapeVisible(method)} requests to any URL under this prefix: the same scheme, host and port, any path under it, any query. Other methods, hosts (${escapeVisible(host)}.evil too) and paths with .. are still asked.` });
    if (end === 0) break;
  }
  return scopes;
}

function directoryScopes(type, path, cwd) {
  const file = path.startsWith('/') ? path : typeof cwd === 'string' && cwd.startsWith('/') && !path.startsWith('~') ? `${cwd.replace(/\/$/, '')}/${path}` : null;
  if (!file || file.endsWith('/') || UNCLEAN_PATH.test(file)) return [];
  const scopes = [];
  for (let end = file.lastIndexOf('/'); end > 0 && scopes.length < MAX_PREFIXES; end = file.lastIndexOf('/', end - 1)) {
    const directory = file.slice(0, end + 1);
    scopes.push({ label: `Files under: ${escapeVisible(directory)}`, scope: { directory }, shown: directory,
      covers: `Covers ${type}s of any file under this directory, by name: paths with .. are still asked, but symlinks are not followed, so a link under it that points elsewhere is covered too. Other action types are still asked.` });
  }
  return scopes;
}

const LIFETIME = {
  session: { title: 'Allow for the rest of this session', confirm: 'Allow session' },
  always: { title: 'Always allow, in every session', confirm: 'Always allow' },
};

// What ticking "and any options" allows, in plain words.
export const ANY_OPTIONS_MEANS =
  'Ticked, the agent may also add any option after the prefix (a word starting with -), ' +
  'such as --output=FILE or -c: options can make a program write any file or run another program. ' +
  'Unticked, it may add only plain words that are not options.';

function explain(choice, command, session_id, prefix, options) {
  const shell = 'never shell control characters (; & | ` $ ( ) < > \\ \' " * ? or a line break)';
  const what =
    prefix === null
      ? 'Covers exactly this command, character for character.'
      : options
        ? `Covers this prefix alone, or followed by any further words, options (-x, --flag) included, but ${shell}.`
        : `Covers this prefix alone, or followed by further plain words: no options (words starting with -), and ${shell}.`;
  return `${what} ${later(choice, session_id)}${uncovered(command, prefix, options)}`;
}

// Where and how long a rule answers, in plain words.
function later(choice, session_id) {
  const where =
    choice === 'session' ? `in session ${escapeVisible(session_id)} until it ends or you revoke the rule` : 'in every session until you revoke the rule';
  return `Later approvals it covers are answered without asking, ${where}.`;
}

// Said when the rule would not cover the very command it is granted on:
// the command adds options after the prefix and "and any options" is unticked.
function uncovered(command, prefix, options) {
  if (prefix === null || options) return '';
  const added = command.slice(prefix.length).split(/[ \t]/);
  return added.some((word) => word.startsWith('-'))
    ? ' This command adds options after the prefix, so the rule would not cover it: it is answered now, and asked again if repeated.'
    : '';
}

// Opens the confirmation for a `choice` of "session" or "always" on `entry`.
// Resolves with {scope} once confirmed (null for the exact command, the
// prefix picked, or {prefix, options: true} with "and any options"
// ticked), or null when cancelled or closed.
export async function askRuleScope(dialog, choice, entry) {
  const $ = (selector) => dialog.querySelector(selector);
  const select = $('.rule-confirm-choice');
  const anyOptions = $('.rule-confirm-any-options');
  const command = String(entry.command || '');
  const config = await loadConfig().catch(() => ({}));
  $('.rule-confirm-title').textContent = LIFETIME[choice].title;
  $('.rule-confirm-accept').textContent = LIFETIME[choice].confirm;
  // An action that is not a command is covered exactly, or by a wider
  // scope of its own (docs/PROTOCOL.md §3.2): no prefixes of its summary.
  const isCommand = !entry.action || entry.action.type === 'command';
  const options = [new Option(isCommand ? 'Exactly this command' : 'Exactly this action', '')];
  const prefixes = isCommand ? prefixChoices(command, config.rule_runners) : [];
  for (const prefix of prefixes) options.push(new Option(`Starts with: ${escapeVisible(prefix)}`, prefix));
  const wider = isCommand ? [] : widerScopes(entry.action, entry.cwd);
  wider.forEach((scope, at) => options.push(new Option(scope.label, `wider:${at}`)));
  select.replaceChildren(...options);
  select.disabled = options.length === 1;
  anyOptions.checked = false;
  $('.rule-confirm-options-means').textContent = ANY_OPTIONS_MEANS;
  const widerPicked = () => (select.value.startsWith('wider:') ? wider[Number(select.value.slice(6))] : null);
  const picked = () => (select.value === '' || widerPicked() ? null : select.value);
  const show = () => {
    const scope = widerPicked();
    if (scope) {
      $('.rule-confirm-options').hidden = true;
      anyOptions.checked = false;
      showVisible($('.rule-confirm-scope code'), scope.shown);
      $('.rule-confirm-scope').dataset.match = Object.keys(scope.scope)[0];
      $('.rule-confirm-explain').textContent = `${scope.covers} ${later(choice, entry.session_id)}`;
      return;
    }
    const prefix = picked();
    $('.rule-confirm-options').hidden = prefix === null;
    if (prefix === null) anyOptions.checked = false;
    showVisible($('.rule-confirm-scope code'), prefix === null ? command : prefix);
    $('.rule-confirm-scope').dataset.match = prefix === null ? 'exact' : anyOptions.checked ? 'prefix-any-options' : 'prefix';
    $('.rule-confirm-explain').textContent = explain(choice, command, entry.session_id, prefix, anyOptions.checked);
  };
  show();
  return new Promise((resolve) => {
    const finish = (result) => {
      select.removeEventListener('change', show);
      anyOptions.removeEventListener('change', show);
      $('.rule-confirm-accept').onclick = null;
      $('.rule-confirm-cancel').onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(result);
    };
    select.addEventListener('change', show);
    anyOptions.addEventListener('change', show);
    $('.rule-confirm-accept').onclick = () => {
      if (widerPicked()) return finish({ scope: widerPicked().scope });
      const prefix = picked();
      const scope = prefix !== null && anyOptions.checked ? { prefix, options: true } : prefix;
      finish({ scope });
    };
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
    lifetime.textContent = rule.lifetime === 'always' ? 'Always' : `Session ${escapeVisible(rule.session_id)}`;
    const match = document.createElement('span');
    match.className = 'rule-match';
    const prefix = rule.scope && typeof rule.scope.prefix === 'string';
    const anyOptions = prefix && rule.scope.options === true;
    // A wider action rule ({"tool"}, {"url_prefix"}, {"directory"}) is
    // said in the server's plain words (`covers`) and shown by what it holds.
    const widerText = rule.scope && ['tool', 'url_prefix', 'directory'].map((key) => rule.scope[key]).find((text) => typeof text === 'string');
    const wider = typeof widerText === 'string';
    match.textContent = wider
      ? String(rule.covers || '')
      : prefix
        ? anyOptions
          ? 'commands, any options included, starting with'
          : 'commands starting with'
        : 'exactly';
    head.append(lifetime, match);
    const scope = document.createElement('code');
    scope.className = 'rule-scope';
    // An action rule ({"action": {...}}) is shown by its summary, `command`.
    const exact = rule.scope && typeof rule.scope.exact === 'string' ? rule.scope.exact : rule.command;
    showVisible(scope, wider ? widerText : prefix ? rule.scope.prefix : exact);
    const meta = document.createElement('p');
    meta.className = 'rule-meta';
    meta.textContent = `granted ${formatTime(rule.granted_at)}`;
    const children = [head, scope, meta];
    if (prefix || wider) {
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
