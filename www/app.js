// app.js: what the person answering sees and does.
//
// It owns the selection (kept in the URL hash as #s=ID), the two cards of the
// selected session, the session list, the title marker and the connection
// indicator, and it sends the answers. Invariants: prompt text only ever goes
// in through textContent; a card is filled once per prompt id, so a frame that
// arrives while the user types never wipes what they typed; what the user
// typed survives a stale answer (409) and is offered again on the next card;
// "Allow session" and "Always allow" answer only after the human confirmed
// what the rule covers (rules.js), and only the prompt they confirmed it on;
// Enter answers "once" only while focus is on the approval card; keys 1-9
// pick the clarify card's numbered choices, never while a text field has
// focus, and never answer an approval. A card takes an answer only once
// armed (arming.js), and moving to a new prompt never puts focus on a
// button that approves, so a double tap cannot answer a prompt the human
// never saw. Every prompt string is shown through visible.js. The session
// list is ordered by what needs the human most; on a narrow screen it shows
// the first few and a button that shows the rest, so no session is out of
// reach. After an answer that empties the selected session, the page moves
// to the next session that waits. notify.js tells of new prompts,
// history.js shows the selected session's earlier ones. Signing in: a
// sign-in link's one-time code (#signin=CODE) leaves the address before
// anything else runs and is exchanged for the cookie; the sign-in box asks
// for the human token and says whether none was given or the one given is
// wrong; "Sign out" ends the sign-in.

import { createStore } from './store.js';
import { KIND_NAMES, KINDS, kindOf, perKind, sumKinds } from './kinds.js';
import { startTransport, requestJson, HttpError, loadConfig, refusalOf } from './transport.js';
import { askRuleScope, createRulesPanel } from './rules.js';
import { escapeVisible, showVisible } from './visible.js';
import { createArming } from './arming.js';
import { createNotifier } from './notify.js';
import { createHistory, ago } from './history.js';
import { startPresence } from './presence.js';
import { actionOf, editFields, renderAction } from './actions.js';
import { multipleForm, schemaForm } from './forms.js';
import { createTriage } from './triage.js';

const SESSION_ID = /^[A-Za-z0-9._:-]{1,128}$/;
// What a card says once its prompt expired or was answered elsewhere.
const staleText = (kind) => `That ${kindOf(kind).one} expired or was answered elsewhere.`;
// On a narrow screen the session list shows this many (and the selected
// one) until "Show N more" is pressed.
const COLLAPSED_SESSIONS = 4;
const AGES_EVERY_MS = 15000;
const BASE_TITLE = 'askgate';

const $ = (selector, root = document) => root.querySelector(selector);

const dom = {
  connection: $('#connection'),
  connectionLabel: $('#connection .connection-label'),
  sessionList: $('#session-list'),
  sessionsEmpty: $('#sessions-empty'),
  sessionsMore: $('#sessions-more'),
  sessionTitle: $('#session-title'),
  notice: $('#notice'),
  noticeMessage: $('#notice .notice-message'),
  noticeKept: $('#notice .notice-kept'),
  noticeKeptText: $('#notice .notice-kept-text'),
  ...perKind((kind) => $(`#${kind}-card`)), // each kind's card
  otherText: $('#clarify-other-text'),
  idle: $('#idle'),
  login: $('#login'),
  signOut: $('#sign-out'),
  refusal: $('#refusal'),
  refusalReason: $('#refusal .refusal-reason'),
  refusalHint: $('#refusal .refusal-hint'),
  ruleConfirm: $('#rule-confirm'),
  triage: $('#triage'),
  stopConfirm: $('#stop-confirm'),
};

const store = createStore();
const ui = {
  selected: null,
  drafts: new Map(), // session_id -> text typed in "Other"
  answered: new Set(), // prompt ids this tab answered or found stale
  shown: perKind(() => null), // {id, session_id} of each card on screen
  busy: perKind(() => false), // an answer of that kind is on its way
  clockOffsetMs: 0,
  approvalVersions: null, // sum of the approval queues' versions last rendered
  selectedVersion: null, // sum of the selected session's queue versions last rendered
  advance: false, // an answer was sent: move on once this session is done
  sessionsExpanded: false, // narrow screens: every session shown
  authOn: false, // the server checks credentials: "Sign out" means something
  denyReasons: [], // --deny-reasons: one-tap reasons in the deny box
  readEdit: null, // the open edit box's reader (actions.js)
  readForm: null, // the clarify card's form reader (forms.js), if it has one
};
// An answer's reason or note is at most this many bytes (docs/PROTOCOL.md §3.2).
const MAX_NOTE_BYTES = 2048;

const arming = createArming({
  ...perKind((kind) => dom[kind]),
  confirm: dom.ruleConfirm,
  triage: dom.triage,
  stop: dom.stopConfirm,
});

const notifier = createNotifier({
  favicon: $('#favicon'),
  announcer: $('#announcer'),
  notifyToggle: $('#notify-toggle'),
  soundToggle: $('#sound-toggle'),
  onOpen: (session_id) => select(session_id),
});

const sessionHistory = createHistory({
  section: $('#history'),
  list: $('#history-list'),
  now: () => (Date.now() + ui.clockOffsetMs) / 1000,
});

const rules = createRulesPanel({
  list: $('#rule-list'),
  empty: $('#rules-empty'),
  onError: (message) => showNotice(message),
});

const triage = createTriage({
  panel: dom.triage,
  dialog: dom.stopConfirm,
  arming,
  heads: approvalHeads,
  readOnly: loadConfig()
    .then((config) => config.read_only_tools)
    .catch(() => ({})),
  onError: (message) => showNotice(message),
  onChange: () => render(),
});

// --- signing in ---------------------------------------------------------

function loginError(message) {
  $('.login-error', dom.login).textContent = message;
}

// What a failed sign-in says: the server's reason for a refused code, its
// hint for a refused page, else whether the token was wrong.
function signInFailure(failure, withCode) {
  const refusal = refusalOf(failure);
  if (refusal) return `The server refused this page: ${refusal.error}. ${refusal.hint}`.trim();
  if (!(failure instanceof HttpError)) return 'Could not reach the server; try again.';
  if (failure.status === 429) return 'Too many failed sign-ins; wait a minute and try again.';
  if (withCode && failure.status === 401) return `That sign-in link did not work: ${failure.message}.`;
  if (failure.status === 401) return 'That token is not right. The page needs the human token, not the agents\'.';
  return `Could not sign in: ${failure.message}.`;
}

async function signIn(body) {
  await requestJson('api/login', { method: 'POST', body });
  loginError('');
  store.setAuthRequired(false);
}

// A sign-in link (docs/PROTOCOL.md §7): the code is taken out of the
// address at once, before any request, so no history entry, bookmark or
// shared screen keeps it; then it is spent for the cookie before the
// transport's first request.
async function signInFromLink() {
  const match = /^#signin=(.*)$/.exec(location.hash);
  if (!match) return;
  history.replaceState(history.state, '', location.pathname + location.search);
  try {
    await signIn({ code: match[1] });
  } catch (failure) {
    loginError(signInFailure(failure, true));
  }
}

await signInFromLink();

const transport = startTransport(store, {
  onRole: (role) => {
    document.documentElement.dataset.role = role;
  },
  onStream: (state) => {
    document.documentElement.dataset.stream = state;
  },
});

// --- selection ------------------------------------------------------------

function sessionFromHash() {
  const match = /^#s=(.*)$/.exec(location.hash);
  if (!match) return null;
  let id;
  try {
    id = decodeURIComponent(match[1]);
  } catch {
    return null;
  }
  return SESSION_ID.test(id) ? id : null;
}

function select(session_id) {
  if (session_id === ui.selected) return;
  ui.advance = false; // a session chosen (by the human or by moving on) stays
  saveDraft();
  ui.selected = session_id;
  // Session ids only use characters that are safe in a fragment.
  const hash = session_id ? `#s=${session_id}` : '';
  if (location.hash !== hash) history.replaceState(null, '', hash || location.pathname + location.search);
  hideNotice();
  transport.announce(session_id);
  if (session_id) store.know([session_id]);
  ui.selectedVersion = null;
  sessionHistory.show(session_id);
  render();
}

function autoSelect() {
  if (ui.selected) return;
  const first = store.list().find((s) => s.attention);
  if (first) select(first.session_id);
}

// --- rendering ------------------------------------------------------------

function render() {
  advanceIfDone();
  autoSelect();
  renderConnection();
  renderTitle();
  renderSessions();
  renderApproval();
  renderClarify();
  renderIdle();
  renderRefusal();
  triage.render();
  noticeAnswers();
  noticeSelectedChanges();
  notifier.update(waitingHeads(), store.totalPending());
  dom.login.hidden = !store.authRequired;
  dom.signOut.hidden = !ui.authOn || store.authRequired;
}

// Prompts still waiting in `session_id`, not counting heads this tab
// answered (the stream catches up a moment later).
function stillWaiting(session_id) {
  let waiting = 0;
  for (const kind of KIND_NAMES) {
    const queue = store.queue(session_id, kind);
    const id = queue.pending && queue.pending[`${kind}_id`];
    waiting += Math.max(0, queue.pending_count - (id && ui.answered.has(id) ? 1 : 0));
  }
  return waiting;
}

// After an answer, once the selected session has nothing more, the next
// session that waits (the most urgent) is shown.
function advanceIfDone() {
  if (!ui.advance || !ui.selected) return;
  if (stillWaiting(ui.selected) > 0) {
    // More waits here; its next prompt shows in place once it arrives.
    if (KIND_NAMES.some((kind) => visibleHead(kind).head)) ui.advance = false;
    return;
  }
  ui.advance = false;
  const next = store.list().find((s) => s.session_id !== ui.selected && stillWaiting(s.session_id) > 0);
  if (next) select(next.session_id);
}

// Every head waiting now, for notify.js; a paused agent's are not.
function waitingHeads() {
  const heads = [];
  for (const session_id of store.sessionIds()) {
    for (const { kind, idField, asks } of KINDS) {
      const pending = store.queue(session_id, kind).pending;
      const id = pending && pending[idField];
      if (!id || triage.isPaused(pending)) continue;
      heads.push({ id, kind, session_id, text: String(pending[asks] ?? '') });
    }
  }
  return heads;
}

// Every approval head waiting, for the triage list (triage.js).
function approvalHeads() {
  const heads = [];
  for (const session_id of store.sessionIds()) {
    const head = store.queue(session_id, 'approval').pending;
    if (head && head.approval_id && !ui.answered.has(head.approval_id)) heads.push({ session_id, head });
  }
  return heads;
}

// The selected session changed on the server (an answer, a new prompt, an
// expiry): its history may have grown.
function noticeSelectedChanges() {
  if (!ui.selected) return;
  const version = sumKinds((kind) => store.queue(ui.selected, kind).version);
  if (ui.selectedVersion !== null && version !== ui.selectedVersion) sessionHistory.refreshSoon();
  ui.selectedVersion = version;
}

// The server refuses this page (403): say why and what to change there.
function renderRefusal() {
  const refusal = store.refusal;
  dom.refusal.hidden = !refusal;
  if (!refusal) return;
  dom.refusalReason.textContent = refusal.error;
  dom.refusalHint.textContent = refusal.hint;
}

// An approval answered anywhere (another tab, another browser) may have
// granted a rule: the Rules panel looks again.
function noticeAnswers() {
  let sum = 0;
  for (const id of store.sessionIds()) sum += Math.max(0, store.queue(id, 'approval').version);
  if (ui.approvalVersions !== null && sum !== ui.approvalVersions) rules.refreshSoon();
  ui.approvalVersions = sum;
}

function renderConnection() {
  const state = store.connection;
  dom.connection.dataset.state = state;
  dom.connectionLabel.textContent = state === 'signed-out' ? 'signed out' : state;
}

function renderTitle() {
  const total = store.totalPending();
  const title = total ? `(${total}) ${BASE_TITLE}` : BASE_TITLE;
  if (document.title !== title) document.title = title;
}

function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

function sessionItem(session_id) {
  const item = document.createElement('li');
  item.dataset.sessionId = session_id;
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'session';
  const name = document.createElement('span');
  name.className = 'session-name';
  showVisible(name, session_id);
  name.title = escapeVisible(session_id);
  const badges = document.createElement('span');
  badges.className = 'session-badges';
  for (const kind of KIND_NAMES) {
    const badge = document.createElement('span');
    badge.className = `badge badge-${kind}`;
    badges.append(badge);
  }
  const age = document.createElement('span');
  age.className = 'session-age';
  button.append(name, badges, age);
  button.addEventListener('click', () => select(session_id));
  item.append(button);
  return item;
}

function renderSessions() {
  const list = store.list();
  const items = new Map([...dom.sessionList.children].map((item) => [item.dataset.sessionId, item]));
  list.forEach((s, index) => {
    const item = items.get(s.session_id) || sessionItem(s.session_id);
    items.delete(s.session_id);
    const button = item.firstElementChild;
    if (s.session_id === ui.selected) button.setAttribute('aria-current', 'true');
    else button.removeAttribute('aria-current');
    button.dataset.attention = s.attention || '';
    for (const { kind, countField, one, many } of KINDS) {
      const badge = $(`.badge-${kind}`, button);
      badge.textContent = s[countField] ? plural(s[countField], one, many) : '';
      badge.hidden = !s[countField];
    }
    $('.session-age', button).textContent = s.waiting_since ? `asked ${ago(serverNow() - s.waiting_since)}` : '';
    item.toggleAttribute('data-more', index >= COLLAPSED_SESSIONS && s.session_id !== ui.selected);
    if (dom.sessionList.children[index] !== item) dom.sessionList.insertBefore(item, dom.sessionList.children[index] || null);
  });
  keepInView(dom.sessionList.querySelector('[aria-current="true"]'));
  for (const item of items.values()) item.remove();
  dom.sessionsEmpty.hidden = list.length > 0;
  renderMoreSessions(list);
}

// Narrow screens only (style.css): the button that shows the sessions past
// the first few, saying how many and how many of those wait.
function renderMoreSessions(list) {
  const more = list.filter((s, index) => index >= COLLAPSED_SESSIONS && s.session_id !== ui.selected);
  dom.sessionsMore.hidden = more.length === 0;
  dom.sessionList.toggleAttribute('data-expanded', ui.sessionsExpanded);
  dom.sessionsMore.setAttribute('aria-expanded', String(ui.sessionsExpanded));
  const waiting = more.filter((s) => s.attention).length;
  const label = ui.sessionsExpanded
    ? 'Show fewer sessions'
    : `Show ${plural(more.length, 'more session', 'more sessions')}${waiting ? ` (${waiting} waiting)` : ''}`;
  if (dom.sessionsMore.textContent !== label) dom.sessionsMore.textContent = label;
}

dom.sessionsMore.addEventListener('click', () => {
  ui.sessionsExpanded = !ui.sessionsExpanded;
  renderSessions();
});

function serverNow() {
  return (Date.now() + ui.clockOffsetMs) / 1000;
}

// Scrolls the session list (not the page) so the selected session shows.
function keepInView(button) {
  const list = dom.sessionList;
  if (!button || list.scrollHeight <= list.clientHeight) return;
  const top = button.offsetTop - list.offsetTop;
  if (top < list.scrollTop) list.scrollTop = top;
  else if (top + button.offsetHeight > list.scrollTop + list.clientHeight) list.scrollTop = top + button.offsetHeight - list.clientHeight;
}

// The head of `kind` in the selected session, unless this tab already
// answered it (the stream catches up a moment later).
function visibleHead(kind) {
  if (!ui.selected) return { head: null, count: 0 };
  const queue = store.queue(ui.selected, kind);
  const id = queue.pending && queue.pending[`${kind}_id`];
  // A paused agent's prompt waits unseen (triage.js).
  if (!id || ui.answered.has(id) || triage.isPaused(queue.pending)) return { head: null, count: queue.pending_count };
  return { head: queue.pending, count: queue.pending_count };
}

function cardChanged(kind, head) {
  const shown = ui.shown[kind];
  const id = head ? head[`${kind}_id`] : null;
  if (shown && shown.id === id && shown.session_id === ui.selected) return false;
  ui.shown[kind] = id ? { id, session_id: ui.selected, at: performance.now() } : null;
  return true;
}

function renderApproval() {
  const { head, count } = visibleHead('approval');
  const card = dom.approval;
  if (cardChanged('approval', head)) {
    // A confirmation is about the card it was opened on, and goes with it.
    if (dom.ruleConfirm.open) dom.ruleConfirm.close();
    card.hidden = !head;
    if (head) fillApproval(head);
    arming.arm('approval', head ? head.approval_id : null);
  }
  if (head) $('.card-position', card).textContent = `1 of ${Math.max(count, 1)}`;
}

// The command as it will run: every line shown (no scrolling box hides
// any), hidden characters escaped in marked spans, and how many lines
// there are said above it, so a long run of blank lines cannot push what
// follows out of sight.
function showCommand(card, command) {
  const lines = command.split('\n');
  const code = $('.approval-command code', card);
  const nodes = [];
  lines.forEach((line, at) => {
    if (at > 0) nodes.push(document.createTextNode('\n'));
    const span = document.createElement('span');
    showVisible(span, line);
    nodes.push(span);
  });
  code.replaceChildren(...nodes);
  const notice = $('.approval-lines', card);
  notice.textContent = lines.length > 1 ? `${lines.length} lines` : '';
  notice.hidden = lines.length <= 1;
}

// The agent's name on a card (docs/PROTOCOL.md §7): the credential the
// server names (`agent_name`), never only what the agent calls itself
// (`agent`), which is shown beside it when it differs.
function showAgent(card, entry) {
  const name = String(entry.agent_name || '');
  const declared = entry.agent ? String(entry.agent) : '';
  const label = declared && declared !== name ? `${name} (${declared})` : name;
  const node = $('.card-agent', card);
  showVisible(node, label);
  node.hidden = !label;
}

function fillApproval(entry) {
  const card = dom.approval;
  showAgent(card, entry);
  card.dataset.approvalId = entry.approval_id;
  card.dataset.expiresAt = String(Number(entry.expires_at) || 0);
  const description = $('.approval-description', card);
  showVisible(description, entry.description || '');
  description.hidden = !entry.description;
  const action = actionOf(entry);
  const isCommand = action.type === 'command';
  showCommand(card, isCommand ? String(action.command ?? entry.command ?? '') : '');
  $('.approval-command', card).hidden = !isCommand;
  if (!isCommand) $('.approval-lines', card).hidden = true;
  const cwd = $('.approval-cwd', card);
  const where = (isCommand && action.cwd) || entry.cwd || '';
  showVisible(cwd, where ? `in ${where}` : '');
  cwd.hidden = !where;
  const shownAction = $('.approval-action', card);
  shownAction.replaceChildren(...renderAction(action));
  shownAction.hidden = isCommand;
  shownAction.dataset.type = action.type;
  $('.approval-claim-label', card).textContent = entry.agent ? `The agent (${escapeVisible(entry.agent)}) says` : 'The agent says';
  const reason = $('.approval-reason', card);
  showVisible(reason, entry.reason || '');
  reason.hidden = !entry.reason;
  closeBoxes();
  $('#approval-note').value = '';
  const keys = Array.isArray(entry.pattern_keys) ? entry.pattern_keys : entry.pattern_key ? [entry.pattern_key] : [];
  const list = $('.pattern-keys', card);
  list.replaceChildren(
    ...keys.map((key) => {
      const item = document.createElement('li');
      showVisible(item, String(key));
      return item;
    }),
  );
  $('.pattern-keys-block', card).hidden = keys.length === 0;
  setBusy(card, false);
  updateCountdown(card);
  // Focus the card itself (its heading is its name), never a button that
  // approves, unless the user is busy elsewhere (typing, or on the clarify
  // card). Enter on the card answers "once" only once it is armed.
  const focused = document.activeElement;
  const free = !focused || focused === document.body || card.contains(focused) || dom.sessionList.contains(focused);
  if (free) card.focus({ preventScroll: true });
}

function renderClarify() {
  const previous = ui.shown.clarify;
  const { head, count } = visibleHead('clarify');
  const card = dom.clarify;
  if (cardChanged('clarify', head)) {
    noticeIfVanished(previous);
    card.hidden = !head;
    if (head) fillClarify(head);
    arming.arm('clarify', head ? head.clarify_id : null);
  }
  if (head) $('.card-position', card).textContent = count > 1 ? `1 of ${count}` : '';
}

// A card this tab did not answer went away while the user had typed an
// answer: say so, and keep the text.
function noticeIfVanished(previous) {
  if (!previous || previous.session_id !== ui.selected || ui.answered.has(previous.id)) return;
  const draft = (ui.drafts.get(previous.session_id) || '').trim();
  if (draft) showNotice(staleText('clarify'), draft);
}

function fillClarify(entry) {
  const card = dom.clarify;
  showAgent(card, entry);
  card.dataset.clarifyId = entry.clarify_id;
  card.dataset.expiresAt = String(Number(entry.expires_at) || 0);
  showVisible($('.clarify-question', card), entry.question || '');
  const offered = Array.isArray(entry.choices_offered) ? entry.choices_offered : [];
  const form = entry.schema ? schemaForm(entry.schema) : entry.multiple ? multipleForm(offered) : null;
  fillForm(card, form);
  const choices = form ? [] : offered;
  $('.clarify-choices', card).replaceChildren(...choices.map(choiceItem));
  $('.clarify-choices', card).hidden = choices.length === 0;
  $('.clarify-other-label', card).textContent = choices.length ? 'Other' : 'Your answer';
  dom.otherText.value = ui.drafts.get(ui.selected) || '';
  autoGrow(dom.otherText);
  setBusy(card, false);
  updateCountdown(card);
  const keys = Math.min(choices.length, 9);
  $('.card-hint', card).textContent = form
    ? 'Fill in the form, then Send'
    : keys
    ? `${keys > 1 ? `Keys 1–${keys}` : 'Key 1'} ${keys > 1 ? 'pick a choice' : 'picks the choice'} · Enter to send · Shift+Enter for a new line`
    : 'Enter to send · Shift+Enter for a new line';
  // With choices, focus stays off the text box so their keys work; without,
  // the text box takes it.
  const focused = document.activeElement;
  const idle = !focused || focused === document.body || focused === card;
  if (idle && dom.approval.hidden && matchMedia('(pointer: fine)').matches) {
    if (choices.length) card.focus({ preventScroll: true });
    else dom.otherText.focus({ preventScroll: true });
  }
}

// A form (a schema, or several choices to pick) takes the place of the
// choices and the text box (forms.js).
function fillForm(card, form) {
  const box = $('.clarify-form', card);
  $('.clarify-form-fields', box).replaceChildren(...(form ? form.nodes : []));
  $('.clarify-form-error', box).textContent = '';
  box.hidden = !form;
  $('.clarify-other', card).hidden = Boolean(form);
  ui.readForm = form ? form.read : null;
}

$('.clarify-form', dom.clarify).addEventListener('submit', (event) => {
  event.preventDefault();
  if (!takes('clarify') || !ui.readForm) return;
  const result = ui.readForm();
  $('.clarify-form-error', dom.clarify).textContent = result.error || '';
  if (!result.error) answerClarify(result.value);
});

function choiceItem(choice, index) {
  const item = document.createElement('li');
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'choice';
  const number = document.createElement('span');
  number.className = 'choice-number';
  number.textContent = String(index + 1);
  if (index < 9) button.setAttribute('aria-keyshortcuts', String(index + 1));
  const text = document.createElement('span');
  text.className = 'choice-text';
  showVisible(text, String(choice));
  button.append(number, text);
  button.addEventListener('click', (event) => {
    if (takes('clarify', event)) answerClarify(String(choice));
  });
  item.append(button);
  return item;
}

function renderIdle() {
  const anyCard = KIND_NAMES.some((kind) => !dom[kind].hidden);
  dom.idle.hidden = anyCard;
  if (!ui.selected) {
    dom.sessionTitle.textContent = store.list().length ? 'Choose a session' : 'Nothing to answer';
    dom.idle.textContent = 'When an agent asks something, it shows up here.';
  } else {
    showVisible(dom.sessionTitle, ui.selected);
    const elsewhere = store.list().some((s) => s.attention && s.session_id !== ui.selected);
    dom.idle.textContent = elsewhere
      ? 'Nothing is waiting in this session. Sessions with a badge in the list are waiting for you.'
      : 'Nothing is waiting in this session.';
  }
}

// --- countdown --------------------------------------------------------------

function formatRemaining(seconds) {
  if (seconds <= 0) return 'expired';
  if (seconds < 60) return `expires in ${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  const rest = String(seconds % 60).padStart(2, '0');
  return `expires in ${minutes}:${rest}`;
}

function updateCountdown(card) {
  const label = $('.countdown', card);
  const expiresAt = Number(card.dataset.expiresAt) || 0;
  if (card.hidden || !expiresAt) {
    label.textContent = '';
    delete label.dataset.urgent;
    return;
  }
  const seconds = Math.max(0, Math.ceil((expiresAt * 1000 - (Date.now() + ui.clockOffsetMs)) / 1000));
  label.textContent = formatRemaining(seconds);
  if (seconds <= 15) label.dataset.urgent = 'true';
  else delete label.dataset.urgent;
}

setInterval(() => {
  updateCountdown(dom.approval);
  updateCountdown(dom.clarify);
}, 1000);

// --- notices ----------------------------------------------------------------

function showNotice(message, kept = '') {
  dom.noticeMessage.textContent = message;
  dom.noticeKeptText.textContent = kept;
  dom.noticeKept.hidden = !kept;
  dom.notice.hidden = false;
}

function hideNotice() {
  dom.notice.hidden = true;
}

$('.notice-close', dom.notice).addEventListener('click', hideNotice);
$('.notice-copy', dom.notice).addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText(dom.noticeKeptText.textContent);
  } catch {
    const range = document.createRange();
    range.selectNodeContents(dom.noticeKeptText);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
  }
});

// Whether the card of `kind` takes this answer now (arming.js).
function takes(kind, event = null) {
  return arming.takes(kind, ui.shown[kind]?.id, event);
}

// --- answering --------------------------------------------------------------

function setBusy(card, busy) {
  card.toggleAttribute('aria-busy', busy);
  for (const control of card.querySelectorAll('button, textarea, input, select')) control.disabled = busy;
}

// The "Other" box belongs to the clarify card on screen; with no card, the
// draft kept for the session stays as it is.
function saveDraft() {
  if (!ui.selected || dom.clarify.hidden) return;
  const text = dom.otherText.value;
  if (text) ui.drafts.set(ui.selected, text);
  else ui.drafts.delete(ui.selected);
}

function failedToAnswer(error) {
  if (error instanceof HttpError && error.status === 401) {
    store.setAuthRequired(true);
    return;
  }
  const refusal = refusalOf(error);
  if (refusal) {
    // Trying again cannot help: the server's configuration has to change.
    showNotice(`The server refused your answer: ${refusal.error}. ${refusal.hint || ''}`.trim());
    return;
  }
  const reason = error instanceof HttpError ? error.message : 'the server could not be reached';
  showNotice(`Your answer was not sent: ${reason}. Try again.`);
}

function stale(kind, entry) {
  ui.answered.add(entry[`${kind}_id`]);
  if (kind === 'clarify') {
    saveDraft();
    showNotice(staleText('clarify'), (ui.drafts.get(entry.session_id) || '').trim());
  } else {
    showNotice(staleText('approval'));
  }
}

// The entry on the clarify card, if it is still the one shown.
function shownClarify() {
  const shown = ui.shown.clarify;
  const entry = shown && store.queue(shown.session_id, 'clarify').pending;
  return entry && entry.clarify_id === shown.id ? entry : null;
}

// `response`: a text, or a form's object or list of picks (sent as is).
async function answerClarify(response) {
  const entry = shownClarify();
  const text = typeof response === 'string' ? response.trim() : response;
  if (ui.busy.clarify || !entry) return;
  if (!text) {
    dom.otherText.focus();
    return;
  }
  saveDraft();
  ui.busy.clarify = true;
  setBusy(dom.clarify, true);
  try {
    await requestJson('api/clarify/respond', {
      method: 'POST',
      body: { session_id: entry.session_id, clarify_id: entry.clarify_id, response: text },
    });
    ui.answered.add(entry.clarify_id);
    ui.advance = true;
    ui.drafts.delete(entry.session_id);
    dom.otherText.value = '';
    hideNotice();
    transport.poke(entry.session_id);
  } catch (error) {
    if (error instanceof HttpError && error.status === 409) stale('clarify', entry);
    else failedToAnswer(error);
  } finally {
    ui.busy.clarify = false;
    setBusy(dom.clarify, false);
    render();
  }
}

// The entry on the approval card, if it is still the one shown.
function shownApproval() {
  const shown = ui.shown.approval;
  const entry = shown && store.queue(shown.session_id, 'approval').pending;
  return entry && entry.approval_id === shown.id ? entry : null;
}

// Answers the approval on the card; with `expected`, only if it is still
// that one. `scope` is the prefix a confirmed rule covers (null: exact).
async function answerApproval(choice, { scope = null, expected = null, reason = '', edited = null } = {}) {
  const entry = shownApproval();
  if (ui.busy.approval || !entry || (expected && entry.approval_id !== expected)) return;
  const note = choice === 'deny' ? '' : $('#approval-note').value.trim();
  if (bytes(note) > MAX_NOTE_BYTES) {
    showNotice(`The note is longer than ${MAX_NOTE_BYTES} bytes; shorten it.`);
    return;
  }
  ui.busy.approval = true;
  setBusy(dom.approval, true);
  try {
    const body = { session_id: entry.session_id, approval_id: entry.approval_id, choice };
    if (scope !== null) body.scope = scope;
    if (reason) body.reason = reason;
    if (edited) body.edited = edited;
    if (note) body.note = note;
    const { body: answer } = await requestJson('api/approval/respond', { method: 'POST', body });
    if (answer.ok === false || answer.stale_cleared) {
      stale('approval', entry);
    } else {
      ui.answered.add(entry.approval_id);
      ui.advance = true;
      hideNotice();
      if (choice === 'session' || choice === 'always') rules.refresh();
    }
    transport.poke(entry.session_id);
  } catch (error) {
    failedToAnswer(error);
  } finally {
    ui.busy.approval = false;
    setBusy(dom.approval, false);
    render();
  }
}

function isTextField(element) {
  return element.matches('textarea, input, select, [contenteditable=""], [contenteditable="true"]');
}

// "Allow session" and "Always allow": first the confirmation of what the
// rule covers, then the answer, for the prompt it was confirmed on.
async function confirmRule(choice) {
  const entry = shownApproval();
  if (ui.busy.approval || !entry || dom.ruleConfirm.open) return;
  const asked = askRuleScope(dom.ruleConfirm, choice, entry);
  arming.arm('confirm', entry.approval_id); // open now: it arms like a card
  const confirmed = await asked;
  arming.arm('confirm', null);
  if (!confirmed) {
    const button = $(`[data-choice="${choice}"]`, dom.approval);
    if (!dom.approval.hidden && document.activeElement === document.body) button.focus({ preventScroll: true });
    return;
  }
  await answerApproval(choice, { scope: confirmed.scope, expected: entry.approval_id });
}

// The confirmation's button that makes the rule takes a click only once the
// confirmation has armed (arming.js), like a card's buttons.
dom.ruleConfirm.addEventListener(
  'click',
  (event) => {
    if (!(event.target instanceof Element) || !event.target.closest('.rule-confirm-accept')) return;
    if (arming.takes('confirm', shownApproval()?.approval_id, event)) return;
    event.preventDefault();
    event.stopImmediatePropagation();
  },
  true,
);

for (const button of dom.approval.querySelectorAll('[data-choice]')) {
  button.addEventListener('click', (event) => {
    if (!takes('approval', event)) return;
    const choice = button.dataset.choice;
    if (choice === 'session' || choice === 'always') confirmRule(choice);
    else if (choice === 'deny') openDeny();
    else answerApproval(choice);
  });
}

function bytes(text) {
  return new TextEncoder().encode(text).length;
}

const denyBox = $('.deny-box', dom.approval);
const editBox = $('.edit-box', dom.approval);
const cardHint = $('.card-hint', dom.approval);
const CARD_HINT = cardHint.textContent;
const BOX_HINT = {
  deny: 'Enter in the reason = Send deny (Shift+Enter: a new line)',
  edit: 'Enter adds a line; nothing is approved until Approve edited',
};

// The deny box and the edit box belong to the prompt they were opened on.
function closeBoxes() {
  denyBox.hidden = true;
  editBox.hidden = true;
  $('#deny-reason').value = '';
  $('.deny-error', denyBox).textContent = '';
  $('.edit-error', editBox).textContent = '';
  $('.edit-fields', editBox).replaceChildren();
  ui.readEdit = null;
  cardHint.textContent = CARD_HINT;
}

// "Deny": the box with the --deny-reasons chips (a tap fills the reason)
// and a free-text reason (docs/PROTOCOL.md §3.2).
function openDeny() {
  editBox.hidden = true;
  const chips = ui.denyReasons.map((text) => {
    const chip = document.createElement('button');
    chip.type = 'button';
    chip.className = 'deny-chip';
    showVisible(chip, text);
    chip.addEventListener('click', () => {
      $('#deny-reason').value = text;
      $('#deny-reason').focus();
    });
    return chip;
  });
  $('.deny-chips', denyBox).replaceChildren(...chips);
  $('.deny-chips', denyBox).hidden = chips.length === 0;
  denyBox.hidden = false;
  cardHint.textContent = BOX_HINT.deny;
  $('#deny-reason').focus({ preventScroll: false });
}

// "Edit and approve": the action prefilled; checked before it is sent.
function openEdit() {
  const entry = shownApproval();
  if (!entry) return;
  denyBox.hidden = true;
  const { nodes, read } = editFields(actionOf(entry));
  $('.edit-fields', editBox).replaceChildren(...nodes);
  $('.edit-error', editBox).textContent = '';
  ui.readEdit = read;
  editBox.hidden = false;
  cardHint.textContent = BOX_HINT.edit;
  editBox.querySelector('textarea, input')?.focus();
}

$('[data-opens="edit"]', dom.approval).addEventListener('click', (event) => {
  if (takes('approval', event)) openEdit();
});

for (const cancel of dom.approval.querySelectorAll('.box-cancel')) {
  cancel.addEventListener('click', () => {
    closeBoxes();
    dom.approval.focus({ preventScroll: true });
  });
}

denyBox.addEventListener('submit', (event) => {
  event.preventDefault();
  if (!takes('approval')) return;
  const reason = $('#deny-reason').value.trim();
  if (bytes(reason) > MAX_NOTE_BYTES) {
    $('.deny-error', denyBox).textContent = `The reason is longer than ${MAX_NOTE_BYTES} bytes; shorten it.`;
    return;
  }
  answerApproval('deny', { reason });
});

editBox.addEventListener('submit', (event) => {
  event.preventDefault();
  if (!takes('approval') || !ui.readEdit) return;
  const result = ui.readEdit();
  $('.edit-error', editBox).textContent = result.error || '';
  if (result.error) return;
  answerApproval('once', { edited: result.edited });
});

// A box's "Send" is an answering button like the card's others.
for (const send of dom.approval.querySelectorAll('.deny-send, .edit-send')) {
  send.addEventListener('click', (event) => {
    if (!takes('approval', event)) event.preventDefault();
  });
}

// Enter in the deny reason sends the deny, with its reason, and nothing
// else (Shift+Enter: a new line); Enter in the edit box never approves (a
// text area takes a new line, a one-line field nothing: only "Approve
// edited" sends the edit).
$('#deny-reason').addEventListener('keydown', (event) => {
  if (event.key !== 'Enter' || event.shiftKey || event.isComposing) return;
  event.preventDefault();
  if (!event.repeat) denyBox.requestSubmit();
});
editBox.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && event.target instanceof HTMLInputElement) event.preventDefault();
});

// Enter answers "once" only from the approval card itself (or text on it),
// never from elsewhere on the page, nor while its deny or edit box is open;
// its buttons answer for themselves.
document.addEventListener('keydown', (event) => {
  if (event.key !== 'Enter' || event.repeat || event.isComposing) return;
  if (event.shiftKey || event.altKey || event.ctrlKey || event.metaKey) return;
  const target = event.target;
  if (!(target instanceof Element) || !dom.approval.contains(target)) return;
  if (isTextField(target) || target.closest('button, a, summary')) return;
  if (dom.approval.hidden) return;
  event.preventDefault();
  if (!denyBox.hidden || !editBox.hidden) return;
  if (takes('approval')) answerApproval('once');
});

// Keys 1-9 pick the clarify card's numbered choices, unless a text field
// has focus or a dialog is open.
document.addEventListener('keydown', (event) => {
  if (!/^[1-9]$/.test(event.key) || event.repeat || event.isComposing) return;
  if (event.altKey || event.ctrlKey || event.metaKey) return;
  const target = event.target;
  if (target instanceof Element && isTextField(target)) return;
  if (dom.clarify.hidden || dom.ruleConfirm.open || !dom.login.hidden || ui.busy.clarify) return;
  const entry = shownClarify();
  if (!entry || entry.schema || entry.multiple) return; // a form answers by its Send only
  const choice = Array.isArray(entry.choices_offered) ? entry.choices_offered[Number(event.key) - 1] : undefined;
  if (choice === undefined) return;
  event.preventDefault();
  if (takes('clarify')) answerClarify(String(choice));
});

// "Send" is an answering button like the others.
for (const send of dom.clarify.querySelectorAll('button[type="submit"]')) {
  send.addEventListener('click', (event) => {
    if (!takes('clarify', event)) event.preventDefault();
  });
}

$('.clarify-other', dom.clarify).addEventListener('submit', (event) => {
  event.preventDefault();
  answerClarify(dom.otherText.value);
});

function autoGrow(textarea) {
  textarea.style.height = 'auto';
  textarea.style.height = `${Math.min(textarea.scrollHeight + 2, 240)}px`;
}

dom.otherText.addEventListener('input', () => {
  saveDraft();
  autoGrow(dom.otherText);
});

dom.otherText.addEventListener('keydown', (event) => {
  if (event.key !== 'Enter' || event.shiftKey || event.isComposing) return;
  event.preventDefault();
  if (takes('clarify')) answerClarify(dom.otherText.value);
});

// --- login ------------------------------------------------------------------

$('.login-form', dom.login).addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = $('#login-token');
  loginError('');
  if (!input.value.trim()) {
    loginError('Paste the human token first, or open a sign-in link.');
    input.focus();
    return;
  }
  try {
    await signIn({ token: input.value.trim() });
    input.value = '';
    transport.loggedIn();
  } catch (failure) {
    loginError(signInFailure(failure, false));
  }
});

dom.signOut.addEventListener('click', async () => {
  try {
    await requestJson('api/logout', { method: 'POST', body: {} });
  } catch {
    // Signed out here all the same: the page forgets what it showed.
  }
  loginError('');
  $('.login-status', dom.login).textContent = 'Signed out.';
  transport.loggedOut();
});

// --- start ------------------------------------------------------------------

function announceIfVisible() {
  if (document.visibilityState === 'visible') transport.announce(ui.selected);
}

window.addEventListener('hashchange', () => {
  const fromHash = sessionFromHash();
  if (fromHash) select(fromHash);
});
window.addEventListener('focus', () => {
  announceIfVisible();
  rules.refresh();
});
document.addEventListener('visibilitychange', () => {
  announceIfVisible();
  if (document.visibilityState === 'visible') rules.refresh();
  notifier.refresh();
});

// "asked 3 min ago" moves on.
setInterval(renderSessions, AGES_EVERY_MS);

store.subscribe(render);
store.subscribe(() => triage.refreshSoon());
startPresence();
loadConfig()
  .then((config) => {
    ui.clockOffsetMs = config.clock_offset_ms;
    ui.authOn = config.auth;
    ui.denyReasons = config.deny_reasons || [];
    render();
  })
  .catch(() => {});

const initial = sessionFromHash();
if (initial) select(initial);
render();
