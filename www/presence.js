// Presence (docs/PROTOCOL.md §8): this page tells the server whether it is
// visible, so the phone rings only when no page of askgate is. A visible
// page says so every PRESENCE_EVERY_MS (the server forgets it 75 s after it
// last did); a hidden or closing page says so at once, and the server
// waits its grace (--notify-grace-secs) before the phone rings.

export const PRESENCE_EVERY_MS = 30_000;

function randomPageId() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function startPresence({ fetchImpl = fetch, doc = document, win = window } = {}) {
  const page = randomPageId();
  let timer = null;
  const say = (visible) =>
    fetchImpl('api/presence', {
      method: 'POST',
      cache: 'no-store',
      keepalive: true,
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ page, visible }),
    }).catch(() => {});
  const update = () => {
    const visible = doc.visibilityState === 'visible';
    clearInterval(timer);
    timer = visible ? setInterval(() => say(true), PRESENCE_EVERY_MS) : null;
    say(visible);
  };
  doc.addEventListener('visibilitychange', update);
  win.addEventListener('pagehide', () => {
    clearInterval(timer);
    say(false);
  });
  win.addEventListener('pageshow', (event) => {
    if (event.persisted) update();
  });
  update();
  return { page };
}
