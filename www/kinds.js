// kinds.js: the one table of the kinds of prompt the page knows.
//
// Every per-kind list in the page (the store's queues, the transport's
// streams and polls, the session badges, the cards' bookkeeping,
// notifications) is derived from KINDS; no other file lists the kinds (a
// tidy test, tests/it/tidy.rs, holds it, and that the names are the
// server's, src/core/kind.rs). In order of urgency: an approval outranks a
// question. Each kind says its id field and what it asks
// (docs/PROTOCOL.md §1), and how the page names it.

export const KINDS = Object.freeze(
  [
    { kind: 'approval', asks: 'command', one: 'approval', many: 'approvals' },
    { kind: 'clarify', asks: 'question', one: 'question', many: 'questions' },
  ].map((k) => Object.freeze({ ...k, idField: `${k.kind}_id`, countField: `${k.kind}_count` })),
);

// The kinds' names, most urgent first.
export const KIND_NAMES = Object.freeze(KINDS.map((k) => k.kind));

// The row of a kind by its name (undefined for a name the page does not know).
export function kindOf(name) {
  return KINDS.find((k) => k.kind === name);
}

// An object with one field per kind, each `make(kind)`.
export function perKind(make) {
  return Object.fromEntries(KIND_NAMES.map((kind) => [kind, make(kind)]));
}

// The sum of `count(kind)` over the kinds.
export function sumKinds(count) {
  return KIND_NAMES.reduce((sum, kind) => sum + count(kind), 0);
}
