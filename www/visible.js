// visible.js: prompt text as the human must see it, the one escaping every
// renderer shares (cards, history, rules and their confirmation, session
// names, notifications).
//
// Invariants: a character that does not show as itself is written as its
// escape (`\n`, `\u202E`), on screen in a marked span, so what the human
// reads is what the agent sent and what a rule matches. That covers
// controls, line and paragraph separators, bidi controls, zero-width and
// other invisible format characters, variation selectors, tags (the set the
// server's audit log escapes), and blank-rendering characters (no-break and
// typographic spaces, the Braille blank, Hangul fillers) that could pass for
// a space or push a command's tail out of sight. Plain spaces stay spaces.

const HIDDEN =
  /[\u0000-\u001F\u007F-\u009F\u00A0\u00AD\u034F\u061C\u115F\u1160\u1680\u17B4\u17B5\u180B-\u180F\u2000-\u200F\u2028-\u202F\u205F-\u206F\u2800\u3000\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFFB\u{1BCA0}-\u{1BCA3}\u{1D159}\u{1D173}-\u{1D17A}\u{E0000}-\u{E0FFF}]/u;
const NAMED = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

// True when `char` (one code point) does not show as itself.
export function isHidden(char) {
  return HIDDEN.test(char);
}

function escapeOne(char) {
  if (NAMED[char]) return NAMED[char];
  const code = char.codePointAt(0);
  const hex = code.toString(16).toUpperCase();
  return code <= 0xffff ? `\\u${hex.padStart(4, '0')}` : `\\u{${hex}}`;
}

// The text with every hidden character written as its escape, for places
// that take plain text only (an <option>, a notification, an explanation).
export function escapeVisible(text) {
  let out = '';
  for (const char of String(text ?? '')) out += isHidden(char) ? escapeOne(char) : char;
  return out;
}

// Fills `element` with the text, each hidden character as a marked span
// holding its escape, so it cannot pass for text the agent typed.
export function showVisible(element, text) {
  const nodes = [];
  let run = '';
  for (const char of String(text ?? '')) {
    if (!isHidden(char)) {
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
