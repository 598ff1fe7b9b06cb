// Generates EIP-1559 transactions signed by ethers, and MetronomeFeed calldata encoded by ethers,
// as JSON lines, for the C++ known-answer test (src/evm/ethers_tx_test.cc).
//   node tests/tools/evm_tx_vectors.mjs SEED COUNT
// Each line is {"kind":"tx", ...} or {"kind":"submit"|"submitBatch", ...}; all integers are
// "0x" hex text (exact, no JSON number rounding).
import { Wallet, Interface, getCreateAddress, hexlify } from "ethers";

let state = BigInt(process.argv[2] ?? 1) & 0xffffffffffffffffn;
function next64() {  // splitmix64: reproducible from the seed
  state = (state + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
  let z = state;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
  return z ^ (z >> 31n);
}
const below = (n) => Number(next64() % BigInt(n));
function bigBits(bits) {
  let v = 0n;
  for (let i = 0; i < Math.ceil(bits / 64); ++i) v = (v << 64n) | next64();
  return v & ((1n << BigInt(bits)) - 1n);
}
// Integers of every size class, with zero and the boundaries of RLP's one-byte form.
function uint(bits) {
  switch (below(8)) {
    case 0: return 0n;
    case 1: return BigInt(below(0x80));
    case 2: return BigInt(0x7f + below(3));
    case 3: return (1n << BigInt(bits)) - 1n;
    default: return bigBits(1 + below(bits));
  }
}
function bytes(n) {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; ++i) b[i] = below(256);
  return b;
}
function data() {
  switch (below(6)) {
    case 0: return new Uint8Array(0);
    case 1: return Uint8Array.of(below(0x80));        // one byte below 0x80: encoded as itself
    case 2: return bytes(1 + below(55));              // short string
    case 3: return bytes(56 + below(3));              // first long lengths
    case 4: return bytes(256 + below(100));           // two-byte length
    default: return bytes(below(3000));
  }
}
const hex = (v) => "0x" + v.toString(16);
function int256() {
  const v = bigBits(1 + below(255));
  return below(2) ? -v : v;
}
const iface = new Interface([
  "function submit(bytes32 feedId, uint64 round, uint64 timestampMs, int256 value, bytes signature)",
  "function submitBatch((bytes32,uint64,uint64,int256,bytes)[] items)",
]);
function submission() {
  const sigLen = below(4) === 0 ? below(100) : 65;
  return [hexlify(bytes(32)), uint(64), uint(64), int256(), hexlify(bytes(sigLen))];
}
const asJson = (s) => ({ feed_id: s[0], round: hex(s[1]), timestamp_ms: hex(s[2]),
                         value: s[3].toString(), signature: s[4] });

const count = Number(process.argv[3] ?? 500);
for (let i = 0; i < count; ++i) {
  let key;
  do { key = hexlify(bytes(32)); } while (BigInt(key) === 0n ||
           BigInt(key) >= 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n);
  const wallet = new Wallet(key);
  const chainIds = [1n, 5n, 31337n, 1337n, 11155111n, BigInt(1 + below(2 ** 52))];
  const tx = {
    type: 2,
    chainId: chainIds[below(chainIds.length)],
    nonce: Number(uint(53) % (2n ** 53n - 1n)),
    maxPriorityFeePerGas: 0n,
    maxFeePerGas: uint(64),
    gasLimit: uint(64),
    to: below(10) === 0 ? null : hexlify(bytes(20)),
    value: uint(256),
    data: hexlify(data()),
    accessList: [],
  };
  // ethers refuses a priority fee above the max fee (so do nodes).
  tx.maxPriorityFeePerGas = tx.maxFeePerGas === 0n ? 0n : uint(64) % (tx.maxFeePerGas + 1n);
  const serialized = await wallet.signTransaction(tx);
  console.log(JSON.stringify({
    kind: "tx", key, from: wallet.address, chain_id: hex(tx.chainId), nonce: hex(BigInt(tx.nonce)),
    max_priority_fee_per_gas: hex(tx.maxPriorityFeePerGas), max_fee_per_gas: hex(tx.maxFeePerGas),
    gas_limit: hex(tx.gasLimit), to: tx.to, value: hex(tx.value), data: tx.data, serialized,
    create_address: getCreateAddress({ from: wallet.address, nonce: tx.nonce }),
  }));
  const one = submission();
  console.log(JSON.stringify({ kind: "submit", item: asJson(one),
                               calldata: iface.encodeFunctionData("submit", one) }));
  const batch = Array.from({ length: below(12) }, submission);
  console.log(JSON.stringify({ kind: "submitBatch", items: batch.map(asJson),
                               calldata: iface.encodeFunctionData("submitBatch", [batch]) }));
}
