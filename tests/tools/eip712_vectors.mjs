// Known-answer vectors for Metronome's signatures, computed by ethers (an independent
// implementation of EIP-712, Keccak and secp256k1).
//
//   node tests/tools/eip712_vectors.mjs SEED COUNT
//
// Prints COUNT JSON lines, deterministic for a SEED: the fields of a record, a private key, and
// what ethers computes for them (digest, 65-byte signature, EIP-55 address). The C++ test
// src/sign/ethers_vectors_test.cc signs the same records and compares byte for byte.
// Run `npm ci` at the repository root first (ethers is pinned in package-lock.json).
import { SigningKey, TypedDataEncoder, Wallet, keccak256, parseUnits, toUtf8Bytes } from "ethers";

const [seedArg, countArg] = process.argv.slice(2);
if (seedArg === undefined || countArg === undefined || !/^\d+$/.test(countArg)) {
  console.error("usage: node eip712_vectors.mjs SEED COUNT");
  process.exit(2);
}
const count = Number(countArg);

// Deterministic stream: each draw is keccak256 of the previous state.
let state = keccak256(toUtf8Bytes(`metronome-eip712-vectors:${seedArg}`));
function rand256() {
  state = keccak256(state);
  return BigInt(state);
}
function randBelow(n) {  // uniform enough for test data; n is a BigInt > 0
  return rand256() % n;
}
function randInt(n) {  // 0 <= r < n, n a Number
  return Number(randBelow(BigInt(n)));
}
function pick(list) {
  return list[randInt(list.length)];
}

const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const TWO_255 = 1n << 255n;
const TWO_63 = 1n << 63n;
const TWO_64 = 1n << 64n;

function randomAscii(len) {
  let s = "";
  for (let i = 0; i < len; i++) s += String.fromCharCode(0x20 + randInt(0x5f));
  return s;
}
function randomUnicode(len) {
  // Code points from several planes (no surrogates): Latin-1, Greek, CJK, emoji.
  const ranges = [[0xa1, 0xff], [0x391, 0x3c9], [0x4e00, 0x9fff], [0x1f300, 0x1f5ff], [0x20, 0x7e]];
  let s = "";
  for (let i = 0; i < len; i++) {
    const [lo, hi] = pick(ranges);
    s += String.fromCodePoint(lo + randInt(hi - lo + 1));
  }
  return s;
}

function feedFor(i) {
  switch (i % 10) {
    case 0: return "random_int";
    case 1: return "eth/usd";
    case 2: return "x".repeat(1000 + randInt(2000));  // long ids
    case 3: return "température/€";
    case 4: return "日本語のフィード/🚀🌕";
    case 5: return "";
    case 6: return randomUnicode(1 + randInt(300));
    default: return randomAscii(1 + randInt(200));
  }
}
function roundFor(i) {
  switch (i % 7) {
    case 0: return 0n;
    case 1: return TWO_63 - 1n;
    case 2: return randBelow(1n << 32n);
    default: return randBelow(TWO_63);
  }
}
function slotFor(i) {
  switch (i % 6) {
    case 0: return 0n;
    case 1: return TWO_63 - 1n;
    case 2: return 1795813000000n + 2000n * randBelow(1000000n);
    default: return randBelow(TWO_63);
  }
}
function decimalsFor(i) {
  switch (i % 5) {
    case 0: case 1: return 0;
    case 2: case 3: return 18;
    default: return pick([1, 2, 6, 8, 30, 76, 77, 80]);
  }
}
function valueFor(i) {  // the int256 the record's text must scale to
  switch (i % 13) {
    case 0: return 0n;
    case 1: return TWO_255 - 1n;
    case 2: return -TWO_255;
    case 3: return TWO_255 - 1n - randBelow(1000n);
    case 4: return -TWO_255 + randBelow(1000n);
    case 5: return -1n;
    case 6: return 1n;
    case 7: return -randBelow(1001n);
    case 8: return randBelow(1001n);
    case 9: return (randInt(2) ? -1n : 1n) * randBelow(1n << BigInt(1 + randInt(254)));
    default: return randBelow(1n << 256n) - TWO_255;  // anywhere in [-2^255, 2^255)
  }
}
function chainFor(i) {
  switch (i % 9) {
    case 0: return TWO_64 - 1n;
    case 1: return 31337n;
    case 2: return 137n;
    case 3: return randBelow(1n << 53n);
    default: return 1n;
  }
}
function keyFor(i) {
  if (i === 0) return 1n;
  if (i === 1) return N - 1n;
  for (;;) {
    const k = rand256();
    if (k !== 0n && k < N) return k;
  }
}

// The text form of v / 10^decimals, as a source would write it.
function decimalText(v, decimals, style) {
  const negative = v < 0n;
  let digits = (negative ? -v : v).toString();
  if (decimals === 0) {
    return (negative ? "-" : "") + digits + (style === 2 ? ".000" : "");
  }
  digits = digits.padStart(decimals + 1, "0");
  const integer = digits.slice(0, digits.length - decimals);
  let fraction = digits.slice(digits.length - decimals);
  if (style === 1) fraction = fraction.replace(/0+$/, "");  // "12.5" rather than "12.50"
  if (style === 2) fraction += "00";                         // extra zeros beyond decimals
  return (negative ? "-" : "") + integer + (fraction.length ? "." + fraction : "");
}

const types = {
  Observation: [
    { name: "feedId", type: "bytes32" },
    { name: "round", type: "uint64" },
    { name: "timestampMs", type: "uint64" },
    { name: "value", type: "int256" },
  ],
};

for (let i = 0; i < count; i++) {
  const feed = feedFor(i);
  const round = roundFor(i);
  const slotMs = slotFor(i);
  const decimals = decimalsFor(i);
  const valueInt = valueFor(i);
  const style = randInt(4) === 0 ? 2 : randInt(2);
  const value = decimalText(valueInt, decimals, style);
  if (parseUnits(value, decimals) !== valueInt) {
    throw new Error(`generator bug: ${value} with ${decimals} decimals is not ${valueInt}`);
  }
  const chainId = chainFor(i);
  const key = "0x" + keyFor(i).toString(16).padStart(64, "0");

  const domain = { name: "Metronome", version: "1", chainId };
  const message = { feedId: keccak256(toUtf8Bytes(feed)), round, timestampMs: slotMs, value: valueInt };
  const digest = TypedDataEncoder.hash(domain, types, message);
  const signature = new SigningKey(key).sign(digest).serialized;
  const address = new Wallet(key).address;
  console.log(JSON.stringify({
    i, feed, round: round.toString(), slot_ms: slotMs.toString(), value, decimals,
    value_int: valueInt.toString(), chain_id: chainId.toString(), key, digest, signature, address,
  }));
}
