// store.js: the page's picture of the server, one per tab.
//
// It owns, per session, the head and count of each prompt queue (one per
// kind, kinds.js) with the version of the change that produced them, plus the
// connection state shared by every tab. Invariants: an update older than what
// is already known never overwrites it (versions only move forward, except a
// full snapshot, which replaces everything); every change is announced to the
// listeners once, after it is applied. It does no I/O.

import { KIND_NAMES, KINDS, perKind, sumKinds } from './kinds.js';

const EMPTY_QUEUE = Object.freeze({ pending: null, pending_count: 0, version: -1 });

// The requested_at of the oldest head waiting in session `s`, or null.
function waitingSince(s) {
  let oldest = null;
  for (const kind of KIND_NAMES) {
    const queue = s[kind];
    const at = Number(queue.pending_count > 0 && queue.pending && queue.pending.requested_at);
    if (at > 0 && (oldest === null || at < oldest)) oldest = at;
  }
  return oldest;
}

function byUrgency(a, b) {
  const urgency = (attention) => (attention ? KIND_NAMES.indexOf(attention) : KIND_NAMES.length);
  const rank = urgency(a.attention) - urgency(b.attention);
  if (rank) return rank;
  const since = (a.waiting_since ?? Infinity) - (b.waiting_since ?? Infinity);
  if (since) return since;
  return a.session_id < b.session_id ? -1 : a.session_id > b.session_id ? 1 : 0;
}

export function createStore() {
  const sessions = new Map();
  const listeners = new Set();
  let connection = 'connecting';
  let authRequired = false;
  let refusal = null; // {error, hint} while the server answers 403

  function session(session_id) {
    let s = sessions.get(session_id);
    if (!s) {
      s = { session_id, ...perKind(() => EMPTY_QUEUE) };
      sessions.set(session_id, s);
    }
    return s;
  }

  function emit() {
    for (const listener of listeners) listener();
  }

  // One queue state: {session_id, kind, pending, pending_count, version}.
  function put(update, force) {
    if (!KIND_NAMES.includes(update.kind) || typeof update.session_id !== 'string') return false;
    const s = session(update.session_id);
    const known = s[update.kind];
    const version = Number.isFinite(update.version) ? update.version : known.version;
    if (!force && version < known.version) return false;
    s[update.kind] = {
      pending: update.pending || null,
      pending_count: Math.max(0, Number(update.pending_count) || 0),
      version,
    };
    return true;
  }

  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },

    // Applies queue states in order; returns the ones that took effect.
    apply(updates, { force = false } = {}) {
      const applied = updates.filter((update) => put(update, force));
      if (applied.length) emit();
      return applied;
    },

    // Replaces the whole picture with `updates`: every queue not named in it
    // becomes empty. Session names are kept so the list does not flicker.
    replace(updates) {
      for (const s of sessions.values()) Object.assign(s, perKind(() => EMPTY_QUEUE));
      for (const update of updates) put(update, true);
      emit();
    },

    // Makes sessions known by name (from api/sessions) without touching queues.
    know(session_ids) {
      let added = false;
      for (const id of session_ids) {
        if (!sessions.has(id)) {
          session(id);
          added = true;
        }
      }
      if (added) emit();
    },

    queue(session_id, kind) {
      const s = sessions.get(session_id);
      return s ? s[kind] : EMPTY_QUEUE;
    },

    sessionIds() {
      return [...sessions.keys()];
    },

    // Every queue state, for handing the picture to another tab.
    snapshot() {
      const updates = [];
      for (const s of sessions.values()) {
        for (const kind of KIND_NAMES) updates.push({ session_id: s.session_id, kind, ...s[kind] });
      }
      return updates;
    },

    // [{session_id, <kind>_count for each kind, attention, waiting_since}]
    // in the order the human should look at them: by the most urgent kind
    // waiting (kinds.js: approvals, then questions), then the rest; within each, the one
    // waiting longest first (waiting_since: the oldest head's requested_at,
    // null when nothing waits or no head is known), then by name.
    list() {
      return [...sessions.values()]
        .map((s) => {
          const counts = Object.fromEntries(KINDS.map((k) => [k.countField, s[k.kind].pending_count]));
          const attention = KIND_NAMES.find((kind) => s[kind].pending_count > 0) ?? null;
          return { session_id: s.session_id, ...counts, attention, waiting_since: waitingSince(s) };
        })
        .sort(byUrgency);
    },

    totalPending() {
      let total = 0;
      for (const s of sessions.values()) total += sumKinds((kind) => s[kind].pending_count);
      return total;
    },

    get connection() {
      return connection;
    },

    setConnection(state) {
      if (state === connection) return;
      connection = state;
      emit();
    },

    get authRequired() {
      return authRequired;
    },

    setAuthRequired(required) {
      if (required === authRequired) return;
      authRequired = required;
      emit();
    },

    get refusal() {
      return refusal;
    },

    setRefusal(next) {
      const same = next === refusal || (next && refusal && next.error === refusal.error && next.hint === refusal.hint);
      if (same) return;
      refusal = next ? { error: String(next.error || ''), hint: String(next.hint || '') } : null;
      emit();
    },
  };
}
