// transport.js: how the picture reaches every tab of this browser.
//
// One tab per browser is the leader: it holds the only EventSource on
// api/events (watching every session) and relays what it learns to the other
// tabs over a BroadcastChannel; the others never open a stream or a poll of
// their own. The leader is elected with the Web Locks API (a localStorage
// lease where that API is missing, as on plain http to a LAN address) and a
// new one takes over when its tab closes. When the stream is refused or
// breaks, the leader falls back to polling (GET api/sessions every second and
// two long-polls for the session the user last looked at), and tries the
// stream again after a backoff. Invariants: at most one stream and two parked
// long-polls per browser; a long-poll for a session nobody looks at is
// aborted; the health timer replaces a stream silent for 2.5 keepalives.
// Every URL is relative to the page, so it works behind a proxy at any path.
// A 403 (the server refuses this page: a Host or Origin it does not know)
// is shown with the server's hint, not as "offline"; a 401 (no sign-in, or
// one that ended) as "signed out".

import { KIND_NAMES, KINDS, sumKinds } from './kinds.js';

const CHANNEL_NAME = 'askgate';
const LOCK_NAME = 'askgate-stream';
const LEASE_KEY = 'askgate-stream-lease';
const LEASE_MS = 4000;
const DEFAULT_KEEPALIVE_SECS = 30;
const SESSIONS_POLL_MS = 1000;
const REFUSED_POLL_MS = 5000;
const LONG_POLL_WAIT_SECS = 25;
const LONG_POLL_REFUSED_MS = 10000;
const LONG_POLL_ERROR_MS = 2000;
const RECONNECT_GRACE_MS = 8000;
const READY_GRACE_MS = 2000;
const STREAM_RETRY_MS = [10000, 20000, 30000];
const SESSION_NAMES_REFRESH_MS = 5 * 60 * 1000;

export class HttpError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }

  // What the server says its operator could change (every 403 has one).
  get hint() {
    return (this.body && typeof this.body.hint === 'string' && this.body.hint) || '';
  }
}

// {error, hint} of a 403, or null for any other failure.
export function refusalOf(error) {
  if (!(error instanceof HttpError) || error.status !== 403) return null;
  return { error: error.message, hint: error.hint };
}

export async function requestJson(url, { method = 'GET', body, signal } = {}) {
  const init = { method, signal, cache: 'no-store', headers: { Accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!response.ok) throw new HttpError(response.status, parsed);
  return { status: response.status, body: parsed || {}, headers: response.headers };
}

let configPromise = null;

// {keepalive_secs, clock_offset_ms, rule_runners}: the server's keepalive
// interval, how far its clock is ahead of ours (from the Date header, whole
// seconds), and the programs a rule's prefix may not end at (null when
// unknown; docs/PROTOCOL.md §3.2).
export function loadConfig() {
  if (!configPromise) {
    const sentAt = Date.now();
    configPromise = requestJson('api/config')
      .then(({ body, headers }) => {
        const keepalive_secs = Number(body.keepalive_secs) > 0 ? Number(body.keepalive_secs) : DEFAULT_KEEPALIVE_SECS;
        const date = Date.parse(headers.get('Date') || '');
        const offset = Number.isFinite(date) ? date - (sentAt + Date.now()) / 2 : 0;
        const rule_runners = Array.isArray(body.rule_runners) ? body.rule_runners : null;
        const deny_reasons = Array.isArray(body.deny_reasons) ? body.deny_reasons.filter((r) => typeof r === 'string') : [];
        const read_only_tools = body.read_only_tools && typeof body.read_only_tools === 'object' ? body.read_only_tools : {};
        return { keepalive_secs, clock_offset_ms: Math.abs(offset) > 2000 ? offset : 0, auth: body.auth === true, rule_runners, deny_reasons, read_only_tools };
      })
      .catch((error) => {
        configPromise = null;
        if (error instanceof HttpError && error.status === 401) throw error;
        return { keepalive_secs: DEFAULT_KEEPALIVE_SECS, clock_offset_ms: 0, auth: false, rule_runners: null, deny_reasons: [], read_only_tools: {} };
      });
  }
  return configPromise;
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

function queueUpdate(session_id, kind, body, version) {
  return {
    session_id,
    kind,
    pending: body.pending || null,
    pending_count: body.pending_count,
    version: Number(body.version ?? version),
  };
}

function randomId() {
  return Math.random().toString(36).slice(2) + Date.now().toString(36);
}

// The leader's half: the stream, the polling fallback, and the relay.
function createLeader(store, post, firstActiveSession, onStream) {
  let keepaliveSecs = DEFAULT_KEEPALIVE_SECS;
  let source = null;
  let lastEventId = null;
  let healthTimer = null;
  let reconnectTimer = null;
  let retryTimer = null;
  let retryCount = 0;
  let retryAt = 0;
  let namesTimer = null;
  let polling = null;
  let activeSession = firstActiveSession;
  let stopped = false;

  function setConnection(state) {
    store.setConnection(state);
    post({ t: 'connection', connection: state });
  }

  function setAuthRequired(required) {
    store.setAuthRequired(required);
    post({ t: 'auth', required });
  }

  function setRefusal(refusal) {
    store.setRefusal(refusal);
    post({ t: 'refusal', refusal });
  }

  function publish(updates) {
    if (!updates.length) return;
    store.apply(updates);
    post({ t: 'updates', updates });
  }

  function publishReplace(updates) {
    store.replace(updates);
    sendSnapshot();
  }

  function sendSnapshot() {
    post({
      t: 'snapshot',
      updates: store.snapshot(),
      connection: store.connection,
      authRequired: store.authRequired,
      refusal: store.refusal,
    });
  }

  function failed(error) {
    if (error instanceof HttpError && error.status === 401) {
      setAuthRequired(true);
      setRefusal(null);
      setConnection('signed-out');
      return;
    }
    const refusal = refusalOf(error);
    setRefusal(refusal);
    setConnection(refusal ? 'refused' : 'offline');
  }

  // Session names (including ones with nothing pending) for the list.
  async function refreshSessionNames() {
    clearTimeout(namesTimer);
    namesTimer = setTimeout(refreshSessionNames, SESSION_NAMES_REFRESH_MS);
    try {
      const { body } = await requestJson('api/sessions');
      const ids = (body.sessions || []).map((s) => s.session_id);
      store.know(ids);
      post({ t: 'names', ids });
    } catch {
      // The stream or the poller reports the connection state.
    }
  }

  // --- the stream -------------------------------------------------------

  function armHealthTimer() {
    clearTimeout(healthTimer);
    healthTimer = setTimeout(() => {
      if (source && !stopped) openStream(lastEventId);
    }, keepaliveSecs * 2500);
  }

  function closeStream() {
    clearTimeout(healthTimer);
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (source) source.close();
    source = null;
    onStream('none');
  }

  // Opens the stream; with `resumeFrom` it asks only for what changed since.
  function openStream(resumeFrom) {
    closeStream();
    clearTimeout(retryTimer);
    const url = resumeFrom == null ? 'api/events' : `api/events?last_event_id=${encodeURIComponent(resumeFrom)}`;
    const stream = new EventSource(url);
    source = stream;
    onStream('connecting');
    let fullExpected = resumeFrom == null;
    let buffer = [];
    let ready = false;
    let readyTimer = null;

    const current = () => source === stream && !stopped;

    function finishSnapshot(full) {
      clearTimeout(readyTimer);
      ready = true;
      const updates = buffer;
      buffer = [];
      onStream('ready');
      if (full) {
        publishReplace(updates);
        refreshSessionNames();
      } else {
        publish(updates);
      }
    }

    stream.onopen = () => {
      if (!current()) return;
      clearTimeout(reconnectTimer);
      reconnectTimer = null;
      retryCount = 0;
      retryAt = 0;
      buffer = [];
      ready = false;
      clearTimeout(readyTimer);
      readyTimer = setTimeout(() => current() && !ready && finishSnapshot(false), READY_GRACE_MS);
      onStream('open');
      stopPolling();
      setAuthRequired(false);
      setRefusal(null);
      setConnection('live');
      armHealthTimer();
    };

    const onQueue = (kind) => (event) => {
      if (!current()) return;
      armHealthTimer();
      if (event.lastEventId) lastEventId = event.lastEventId;
      const data = parseJson(event.data);
      if (!data || typeof data.session_id !== 'string') return;
      const update = queueUpdate(data.session_id, kind, data, event.lastEventId);
      if (ready) publish([update]);
      else buffer.push(update);
    };
    for (const kind of KIND_NAMES) stream.addEventListener(kind, onQueue(kind));

    stream.addEventListener('ready', (event) => {
      if (!current()) return;
      armHealthTimer();
      if (event.lastEventId) lastEventId = event.lastEventId;
      const data = parseJson(event.data) || {};
      const full = typeof data.full === 'boolean' ? data.full : fullExpected;
      fullExpected = false;
      finishSnapshot(full);
    });
    stream.addEventListener('ping', () => current() && armHealthTimer());
    stream.onmessage = () => current() && armHealthTimer();

    stream.onerror = () => {
      if (!current()) return;
      clearTimeout(healthTimer);
      if (stream.readyState === EventSource.CLOSED) {
        streamFailed();
        return;
      }
      // The browser reconnects by itself after `retry`; give it a moment.
      if (!reconnectTimer) {
        reconnectTimer = setTimeout(() => {
          reconnectTimer = null;
          if (current() && stream.readyState !== EventSource.OPEN) streamFailed();
        }, RECONNECT_GRACE_MS);
      }
    };
  }

  function streamFailed() {
    closeStream();
    startPolling();
    clearTimeout(retryTimer);
    const base = STREAM_RETRY_MS[Math.min(retryCount, STREAM_RETRY_MS.length - 1)];
    retryCount += 1;
    const delay = base * (0.8 + Math.random() * 0.4);
    retryAt = Date.now() + delay;
    retryTimer = setTimeout(retryStream, delay);
  }

  // This tab's own parked long-polls hold places the stream may need, so they
  // are set to end by the time of the retry, and none starts again until the
  // stream has answered.
  async function retryStream() {
    const state = polling;
    if (state) {
      state.paused = true;
      await Promise.all(state.runs);
    }
    if (stopped || polling !== state) return;
    openStream(null);
  }

  function untilRetryMs() {
    return retryAt ? Math.max(0, retryAt - Date.now()) : Infinity;
  }

  // --- polling ----------------------------------------------------------

  function startPolling() {
    if (stopped) return;
    if (polling) {
      if (polling.paused) {
        polling.paused = false;
        startLongPolls();
      }
      return;
    }
    polling = { controller: new AbortController(), longPolls: null, runs: [], paused: false, versions: new Map() };
    sessionsLoop(polling);
    startLongPolls();
  }

  function stopPolling() {
    if (!polling) return;
    polling.controller.abort();
    polling.longPolls?.abort();
    polling = null;
  }

  function startLongPolls() {
    const state = polling;
    if (!state) return;
    state.longPolls?.abort();
    state.longPolls = null;
    state.runs = [];
    if (!activeSession || state.paused) return;
    const controller = new AbortController();
    state.longPolls = controller;
    state.runs = KIND_NAMES.map((kind) => longPoll(state, kind, activeSession, controller.signal));
  }

  async function sessionsLoop(state) {
    const { signal } = state.controller;
    while (!signal.aborted) {
      try {
        const { body } = await requestJson('api/sessions', { signal });
        if (signal.aborted) return;
        setAuthRequired(false);
        setRefusal(null);
        setConnection('polling');
        await catchUp(body.sessions || [], state.versions, signal);
      } catch (error) {
        if (signal.aborted) return;
        failed(error);
      }
      // Refused (403), asking again soon cannot help until the server's
      // configuration changes.
      await sleep(store.refusal ? REFUSED_POLL_MS : SESSIONS_POLL_MS, signal);
    }
  }

  // Fetches the queues of every session whose version moved since last time.
  async function catchUp(listed, versions, signal) {
    const ids = listed.map((s) => s.session_id);
    store.know(ids);
    post({ t: 'names', ids });
    const stale = [];
    for (const s of listed) {
      if (versions.get(s.session_id) === s.version) continue;
      const known = sumKinds((kind) => store.queue(s.session_id, kind).pending_count);
      if (KINDS.some((k) => s[k.countField]) || known) stale.push(s);
      else versions.set(s.session_id, s.version);
    }
    const listedIds = new Set(ids);
    for (const session_id of store.sessionIds()) {
      const pending = sumKinds((kind) => store.queue(session_id, kind).pending_count);
      if (pending && !listedIds.has(session_id)) stale.push({ session_id, version: null });
    }
    for (const s of stale) {
      if (signal.aborted) return;
      await refreshSession(s.session_id, signal);
      versions.set(s.session_id, s.version);
    }
  }

  async function refreshSession(session_id, signal) {
    const query = `session_id=${encodeURIComponent(session_id)}`;
    const updates = await Promise.all(
      KIND_NAMES.map(async (kind) => {
        const { body } = await requestJson(`api/${kind}/pending?${query}`, { signal });
        return queueUpdate(session_id, kind, body);
      }),
    );
    if (!signal?.aborted) publish(updates);
  }

  async function longPoll(state, kind, session_id, signal) {
    let since = null;
    let quickReturns = 0;
    while (!signal.aborted && !state.paused) {
      let query = `session_id=${encodeURIComponent(session_id)}`;
      if (since != null) {
        const wait = Math.max(1, Math.min(LONG_POLL_WAIT_SECS, Math.ceil(untilRetryMs() / 1000)));
        query += `&since=${encodeURIComponent(since)}&wait=${wait}`;
      }
      const startedAt = Date.now();
      try {
        const { body } = await requestJson(`api/${kind}/pending?${query}`, { signal });
        if (signal.aborted) return;
        publish([queueUpdate(session_id, kind, body)]);
        // A server answering long-polls at once must not make this loop spin.
        quickReturns = since != null && Date.now() - startedAt < 250 ? quickReturns + 1 : 0;
        since = body.version ?? null;
        if (quickReturns >= 3) await sleep(1000, signal);
      } catch (error) {
        if (signal.aborted) return;
        since = null;
        const pause = error instanceof HttpError && error.status === 503 ? LONG_POLL_REFUSED_MS : LONG_POLL_ERROR_MS;
        await sleep(Math.max(250, Math.min(pause, untilRetryMs())), signal);
      }
    }
  }

  return {
    async start() {
      try {
        keepaliveSecs = (await loadConfig()).keepalive_secs;
      } catch (error) {
        failed(error);
      }
      if (!stopped) openStream(null);
    },

    stop() {
      stopped = true;
      closeStream();
      stopPolling();
      clearTimeout(retryTimer);
      clearTimeout(namesTimer);
    },

    setActiveSession(session_id) {
      if (session_id === activeSession) return;
      activeSession = session_id;
      startLongPolls();
    },

    // Someone answered in `session_id`: when polling, look at it now.
    poke(session_id) {
      if (polling && session_id) refreshSession(session_id, polling.controller.signal).catch(() => {});
    },

    loggedIn() {
      if (stopped) return;
      setAuthRequired(false);
      if (!source) openStream(null);
    },

    // Signed out (api/logout done): nothing more is read until a sign-in,
    // and what was shown goes.
    loggedOut() {
      if (stopped) return;
      closeStream();
      stopPolling();
      clearTimeout(retryTimer);
      clearTimeout(namesTimer);
      publishReplace([]);
      setRefusal(null);
      setAuthRequired(true);
      setConnection('signed-out');
    },

    sendSnapshot,
  };
}

// Calls onLead when this tab becomes the leader and onStepDown if it stops
// being one (only possible with the localStorage lease).
function elect(tabId, hasChannel, onLead, onStepDown) {
  if (!hasChannel) {
    onLead();
    return;
  }
  if (navigator.locks && typeof navigator.locks.request === 'function') {
    navigator.locks.request(LOCK_NAME, () => {
      onLead();
      return new Promise(() => {}); // held until this tab goes away
    });
    return;
  }
  let storage = null;
  try {
    storage = window.localStorage;
    storage.getItem(LEASE_KEY);
  } catch {
    storage = null;
  }
  if (!storage) {
    onLead();
    return;
  }
  electByLease(storage, tabId, onLead, onStepDown);
}

function electByLease(storage, tabId, onLead, onStepDown) {
  let leading = false;
  const read = () => parseJson(storage.getItem(LEASE_KEY) || 'null');
  const write = () => storage.setItem(LEASE_KEY, JSON.stringify({ id: tabId, until: Date.now() + LEASE_MS }));

  function tick(confirming) {
    const lease = read();
    if (lease && lease.id === tabId) {
      write();
      if (!leading && confirming) {
        leading = true;
        onLead();
      } else if (!leading) {
        setTimeout(() => tick(true), 150);
      }
      return;
    }
    if (leading) {
      leading = false;
      onStepDown();
    }
    if (!lease || !(lease.until > Date.now())) {
      write();
      setTimeout(() => tick(true), 100 + Math.random() * 100);
    }
  }

  setInterval(() => tick(false), 1000);
  tick(false);
  window.addEventListener('storage', (event) => {
    if (event.key === LEASE_KEY && event.newValue === null) setTimeout(() => tick(false), Math.random() * 200);
  });
  window.addEventListener('pagehide', () => {
    if (leading && read()?.id === tabId) storage.removeItem(LEASE_KEY);
  });
}

// Starts this tab's share of the transport. `onRole` hears 'leader' or
// 'follower'; `onStream` hears the state of this tab's own stream ('none',
// 'connecting', 'open', 'ready'). Returns what the page needs to steer it.
export function startTransport(store, { onRole = () => {}, onStream = () => {} } = {}) {
  const tabId = randomId();
  const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(CHANNEL_NAME) : null;
  let leader = null;
  let activeSession = null;

  const post = (message) => channel?.postMessage(message);

  function followerMessage(message) {
    switch (message.t) {
      case 'updates':
        store.apply(message.updates);
        break;
      case 'snapshot':
        store.replace(message.updates);
        store.setConnection(message.connection);
        store.setAuthRequired(message.authRequired);
        store.setRefusal(message.refusal || null);
        break;
      case 'connection':
        store.setConnection(message.connection);
        break;
      case 'auth':
        store.setAuthRequired(message.required);
        break;
      case 'refusal':
        store.setRefusal(message.refusal || null);
        break;
      case 'names':
        store.know(message.ids);
        break;
      case 'leader':
        if (document.visibilityState === 'visible') post({ t: 'active', session_id: activeSession });
        break;
    }
  }

  function leaderMessage(message) {
    switch (message.t) {
      case 'hello':
        leader.sendSnapshot();
        break;
      case 'active':
        leader.setActiveSession(message.session_id || null);
        break;
      case 'poke':
        leader.poke(message.session_id);
        break;
      case 'login':
        leader.loggedIn();
        break;
      case 'logout':
        leader.loggedOut();
        break;
    }
  }

  if (channel) {
    channel.onmessage = ({ data }) => {
      if (!data || typeof data.t !== 'string') return;
      if (leader) leaderMessage(data);
      else followerMessage(data);
    };
  }

  elect(
    tabId,
    Boolean(channel),
    () => {
      leader = createLeader(store, post, activeSession, onStream);
      onRole('leader');
      post({ t: 'leader' });
      leader.start();
    },
    () => {
      leader?.stop();
      leader = null;
      onStream('none');
      onRole('follower');
      post({ t: 'hello' });
    },
  );
  if (!leader) {
    onRole('follower');
    post({ t: 'hello' });
  }

  return {
    // The session this tab shows; the leader long-polls the last one announced.
    announce(session_id) {
      activeSession = session_id || null;
      if (leader) leader.setActiveSession(activeSession);
      else post({ t: 'active', session_id: activeSession });
    },

    poke(session_id) {
      if (leader) leader.poke(session_id);
      else post({ t: 'poke', session_id });
    },

    loggedIn() {
      if (leader) leader.loggedIn();
      else post({ t: 'login' });
    },

    loggedOut() {
      if (leader) leader.loggedOut();
      else post({ t: 'logout' });
    },
  };
}
