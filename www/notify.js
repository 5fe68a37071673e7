// notify.js: telling the human that a prompt arrived while they look elsewhere.
//
// It owns the favicon badge (the count of waiting prompts, drawn as an SVG
// data URL), the polite screen-reader announcement of each new prompt, the
// "Notify me" toggle with the system notifications it allows, and the
// "Sound" toggle with its short WebAudio beep. Invariants: notification
// permission is asked only from a click on "Notify me", never on load; each
// prompt id is announced at most once per tab, and notified at most once
// and only when it arrived while the page was hidden (a prompt that arrived
// while the page was visible was shown, and is never notified later);
// notifications and the beep happen only while the page is hidden; sound is
// off until the human turns it on; prompt text reaches a notification as
// plain text with hidden characters escaped.

import { kindOf } from './kinds.js';
import { escapeVisible } from './visible.js';

const SOUND_KEY = 'askgate-sound';
const NOTIFY_KEY = 'askgate-notify';
const MAX_NOTIFIED_AT_ONCE = 3;
// Ids remembered; the oldest are forgotten past this, five times the
// prompts a server holds at its defaults (--max-prompts 10,000), so only
// ids that left long ago are forgotten (an id names one prompt, never reused).
const MAX_KNOWN = 50000;
const BODY_CHARS = 180;

function stored(key) {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return null;
  }
}

function store(key, value) {
  try {
    window.localStorage.setItem(key, value);
  } catch {
    // Private mode: the choice lasts as long as the tab.
  }
}

function notificationApi() {
  return typeof window.Notification === 'function' ? window.Notification : null;
}

// The favicon: the page's mark, with the count on it while anything waits.
export function faviconHref(count) {
  const label = count > 99 ? '99+' : String(count);
  const size = label.length > 2 ? 13 : label.length > 1 ? 17 : 21;
  const svg = count
    ? `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="8" fill="#b3261e"/>` +
      `<text x="16" y="${16 + size * 0.36}" font-family="Arial, sans-serif" font-size="${size}" font-weight="700" text-anchor="middle" fill="#ffffff">${label}</text></svg>`
    : `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="8" fill="#2f62c9"/>` +
      `<path d="M9 16.5l4.5 4.5L23 11.5" stroke="#ffffff" stroke-width="3.5" fill="none" stroke-linecap="round" stroke-linejoin="round"/></svg>`;
  return `data:image/svg+xml,${encodeURIComponent(svg)}`;
}

function clipped(text) {
  const visible = escapeVisible(text);
  return visible.length > BODY_CHARS ? `${visible.slice(0, BODY_CHARS - 1)}…` : visible;
}

// `onOpen(session_id)` shows a session when its notification is clicked.
export function createNotifier({ favicon, announcer, notifyToggle, soundToggle, onOpen }) {
  const known = new Set(); // prompt ids this tab has seen
  let lastCount = -1;
  let audio = null;
  let soundOn = stored(SOUND_KEY) === 'on';
  let notifyOn = stored(NOTIFY_KEY) !== 'off';

  const hidden = () => document.visibilityState === 'hidden';

  function renderToggles() {
    const api = notificationApi();
    notifyToggle.hidden = !api;
    if (api) {
      const permission = api.permission;
      const on = permission === 'granted' && notifyOn;
      notifyToggle.setAttribute('aria-pressed', String(on));
      notifyToggle.disabled = permission === 'denied';
      notifyToggle.textContent = permission === 'denied' ? 'Notifications blocked' : 'Notify me';
      notifyToggle.title =
        permission === 'denied'
          ? 'This browser blocks notifications from this page; allow them in its site settings'
          : 'A system notification for each new prompt while this page is in the background';
    }
    soundToggle.setAttribute('aria-pressed', String(soundOn));
    soundToggle.title = 'A short beep for each new prompt while this page is in the background';
  }

  async function toggleNotify() {
    const api = notificationApi();
    if (!api) return;
    if (api.permission === 'default') {
      // Asked only here, from the human's click.
      try {
        await api.requestPermission();
      } catch {
        // An old browser's callback form: the permission is read below.
      }
      notifyOn = true;
    } else if (api.permission === 'granted') {
      notifyOn = !notifyOn;
    }
    store(NOTIFY_KEY, notifyOn ? 'on' : 'off');
    renderToggles();
  }

  function audioContext() {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!audio && Context) audio = new Context();
    return audio;
  }

  function beep() {
    const context = audioContext();
    if (!context) return;
    if (context.state === 'suspended') context.resume().catch(() => {});
    const oscillator = context.createOscillator();
    const gain = context.createGain();
    const start = context.currentTime;
    oscillator.type = 'sine';
    oscillator.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, start);
    gain.gain.exponentialRampToValueAtTime(0.2, start + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.18);
    oscillator.connect(gain).connect(context.destination);
    oscillator.start(start);
    oscillator.stop(start + 0.2);
  }

  function toggleSound() {
    soundOn = !soundOn;
    store(SOUND_KEY, soundOn ? 'on' : 'off');
    // The click is the gesture that lets the page make sound later.
    if (soundOn) beep();
    renderToggles();
  }

  function announce(text) {
    // Emptied first, so the same words twice are read twice.
    announcer.textContent = '';
    requestAnimationFrame(() => {
      announcer.textContent = text;
    });
  }

  function notify(title, body, tag, session_id) {
    const api = notificationApi();
    if (!api || api.permission !== 'granted' || !notifyOn) return;
    let notification;
    try {
      notification = new api(title, { body, tag, lang: 'en' });
    } catch {
      return; // Android's Chrome allows only service-worker notifications.
    }
    notification.onclick = () => {
      window.focus();
      if (session_id) onOpen(session_id);
      notification.close();
    };
  }

  function alertHidden(fresh) {
    const shown = fresh.slice(0, fresh.length > MAX_NOTIFIED_AT_ONCE ? MAX_NOTIFIED_AT_ONCE - 1 : fresh.length);
    for (const prompt of shown) {
      const kind = kindOf(prompt.kind)?.one;
      notify(`New ${kind} from session ${prompt.session_id}`, clipped(prompt.text), prompt.id, prompt.session_id);
    }
    if (fresh.length > shown.length) {
      const rest = fresh.length - shown.length;
      notify(`${rest} more new prompts`, 'Open askgate to answer them.', 'askgate-more', null);
    }
    if (soundOn) beep();
  }

  notifyToggle.addEventListener('click', toggleNotify);
  soundToggle.addEventListener('click', toggleSound);
  renderToggles();

  return {
    // `prompts`: every head waiting now, [{id, kind, session_id, text}];
    // `count`: every prompt waiting, heads or not.
    update(prompts, count) {
      if (count !== lastCount) {
        lastCount = count;
        favicon.href = faviconHref(count);
        favicon.dataset.count = String(count);
      }
      const fresh = prompts.filter((prompt) => !known.has(prompt.id));
      if (!fresh.length) return;
      for (const prompt of fresh) known.add(prompt.id);
      for (const id of known) {
        if (known.size <= MAX_KNOWN) break;
        known.delete(id);
      }
      const first = fresh[0];
      const more = fresh.length > 1 ? ` and ${fresh.length - 1} more` : '';
      announce(`New ${kindOf(first.kind)?.one} from session ${first.session_id}${more}`);
      if (hidden()) alertHidden(fresh);
    },

    refresh: renderToggles,
  };
}
