// arming.js: a card takes an answer only once the human could have read it.
//
// It owns each card's arming (and the rule confirmation's, which arms like a
// card when it opens): when a card shows a new prompt (or shows again after
// the page was hidden), its answering controls are aria-disabled, with
// a bar under them that fills, for ARM_MS; only then does the card take an
// answer. Invariants: nothing answers a card before it is armed, whatever
// the input (click, tap, key); a click from a pointer counts only when its
// press began on the armed card, so the press that answered the card before
// cannot answer the next one; a press on a control that is not armed does
// not focus it, so a key pressed next cannot answer through it.

// Long enough to read a card, longer than a double click or a double tap.
export const ARM_MS = 1000;
// The controls that answer a card.
const ANSWERING = 'button[data-choice], button[data-opens], button.choice, button[type="submit"], button.rule-confirm-accept';

// `cards` maps each kind to its card element.
export function createArming(cards) {
  const kinds = Object.keys(cards);
  const shown = Object.fromEntries(kinds.map((kind) => [kind, null])); // id each card shows
  const armed = { ...shown }; // id each card takes answers for
  const timers = { ...shown };
  let pressed = { ...armed }; // `armed` when the last pointer press began

  const mark = (card, arming) => {
    for (const control of card.querySelectorAll(ANSWERING)) {
      if (arming) control.setAttribute('aria-disabled', 'true');
      else control.removeAttribute('aria-disabled');
    }
  };

  // The card of `kind` now shows prompt `id` (null: none); it arms anew.
  function arm(kind, id) {
    const card = cards[kind];
    clearTimeout(timers[kind]);
    shown[kind] = id;
    armed[kind] = null;
    card.removeAttribute('data-arming');
    if (!id) return;
    void card.offsetWidth; // the bar starts again from empty
    card.style.setProperty('--arm-ms', `${ARM_MS}ms`);
    card.setAttribute('data-arming', '');
    mark(card, true);
    timers[kind] = setTimeout(() => {
      armed[kind] = id;
      card.removeAttribute('data-arming');
      mark(card, false);
    }, ARM_MS);
  }

  // Whether the card of `kind` takes this answer (`event`: the click, if
  // one) for prompt `id`. A click from a pointer has detail > 0; keys and
  // keyboard clicks (detail 0) count once the card is armed.
  function takes(kind, id, event = null) {
    if (!id || cards[kind].hidden || armed[kind] !== id) return false;
    if (event && event.type === 'click' && event.detail > 0) return pressed[kind] === id;
    return true;
  }

  document.addEventListener(
    'pointerdown',
    () => {
      pressed = { ...armed };
    },
    true,
  );
  document.addEventListener(
    'mousedown',
    (event) => {
      const control = event.target instanceof Element && event.target.closest(ANSWERING);
      if (control && control.getAttribute('aria-disabled') === 'true') event.preventDefault();
    },
    true,
  );
  // A page that was hidden was not read: its cards arm again.
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState !== 'visible') return;
    for (const kind of kinds) if (shown[kind] && !cards[kind].hidden) arm(kind, shown[kind]);
  });

  return { arm, takes };
}
