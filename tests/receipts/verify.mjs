// A receipt verifier in another language than the server's, with nothing
// but node's standard library (docs/PROTOCOL.md §9): it shows a third party
// can check a receipt in a few lines. Run by tests/it/receipts.rs.
//
// usage: node verify.mjs PUBLIC_KEY_HEX [ACTION_JSON] < receipt.json
// ({"payload": "...", "signature": "..."}, or a wait's answer holding one);
// with ACTION_JSON (e.g. {"type":"command","command":"ls"}), also that the
// receipt lets that action run: its digest is `edited` when the human
// edited the action, else `action`. Prints the payload and exits 0 when
// valid, else says why and exits 1.
import { createHash, createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';

// Keys sorted, no whitespace, JSON.stringify's escaping (the same as
// serde_json's for strings and integers).
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const fields = Object.keys(value).sort().map((name) => `${JSON.stringify(name)}:${canonical(value[name])}`);
    return `{${fields.join(',')}}`;
  }
  return JSON.stringify(value);
}

function check(keyHex, receipt, action) {
  const key = createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(keyHex, 'hex').toString('base64url') },
    format: 'jwk',
  });
  const { payload, signature } = receipt;
  if (typeof payload !== 'string' || typeof signature !== 'string') return 'no payload and signature';
  if (!/^[0-9a-f]{128}$/.test(signature)) return 'the signature is not 128 hex digits';
  if (!verify(null, Buffer.from(payload, 'utf8'), key, Buffer.from(signature, 'hex'))) {
    return 'the signature does not verify';
  }
  const decision = JSON.parse(payload);
  for (const [name, value] of Object.entries(decision)) {
    if (typeof value !== 'string' && !Number.isSafeInteger(value)) return `${name} is neither a string nor an integer`;
  }
  if (canonical(decision) !== payload) return 'the payload is not canonical';
  if (decision.v !== 1) return 'an unknown version';
  if (action !== undefined) {
    const digest = createHash('sha256').update(canonical(JSON.parse(action)), 'utf8').digest('hex');
    const runs = decision.edited ?? decision.action;
    if (runs !== digest) return 'the receipt is for another action';
  }
  return null;
}

const keyHex = process.argv[2];
const input = JSON.parse(readFileSync(0, 'utf8'));
const receipt = input.receipt ?? input;
let why;
try {
  why = check(keyHex, receipt, process.argv[3]);
} catch (error) {
  why = `cannot check: ${error.message}`;
}
if (why) {
  console.error(`invalid: ${why}`);
  process.exit(1);
}
console.log(receipt.payload);
