// Verifies Metronome records with ethers (an independent implementation): for each record it
// recomputes the EIP-712 digest and recovers the signer with ethers.verifyTypedData. A record
// with a `proof` (a batch signature, ADR 0018) is recovered from the ObservationBatch(root)
// typed data, where root folds the digest with the proof's hashes, each pair hashed in ascending
// order (OpenZeppelin's MerkleProof.processProof).
//
//   node tests/tools/verify_records.mjs [--chain-id N] < records.json
//
// stdin: a JSON array of records, one record, or JSON lines. A record has feed, round, value,
// decimals, signer, signature, digest, and either slot_ms (milliseconds) or slot (ISO 8601 UTC, as
// the API and CLI print it); chain_id, if present, overrides --chain-id (default 1).
// Prints one JSON line per record ({index, ok, recovered, digest, error}) and exits 0 when every
// record verifies (recovered === signer and digest === record.digest), 1 otherwise.
// Run `npm ci` at the repository root first.
import {
  TypedDataEncoder,
  concat,
  keccak256,
  parseUnits,
  toUtf8Bytes,
  verifyTypedData,
} from "ethers";

let defaultChainId = 1n;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--chain-id" && i + 1 < args.length) {
    defaultChainId = BigInt(args[++i]);
  } else {
    console.error(`unknown argument ${args[i]}`);
    process.exit(2);
  }
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const text = Buffer.concat(chunks).toString("utf8").trim();
let records;
if (text.startsWith("[")) {
  records = JSON.parse(text);
} else if (text.length === 0) {
  records = [];
} else {
  try {
    records = [JSON.parse(text)];
  } catch {
    records = text.split("\n").filter((l) => l.trim().length).map((l) => JSON.parse(l));
  }
}

const types = {
  Observation: [
    { name: "feedId", type: "bytes32" },
    { name: "round", type: "uint64" },
    { name: "timestampMs", type: "uint64" },
    { name: "value", type: "int256" },
  ],
};

const batchTypes = { ObservationBatch: [{ name: "root", type: "bytes32" }] };

// The root that `leaf` and the proof's hashes fold into.
function foldProof(leaf, proofHex) {
  const digits = proofHex.replace(/^0x/i, "").toLowerCase();
  if (digits.length === 0 || digits.length % 64 !== 0) throw new Error(`malformed proof ${proofHex}`);
  let node = leaf.toLowerCase();
  for (let i = 0; i < digits.length; i += 64) {
    const sibling = "0x" + digits.slice(i, i + 64);
    node = node <= sibling ? keccak256(concat([node, sibling])) : keccak256(concat([sibling, node]));
  }
  return node;
}

let failures = 0;
records.forEach((r, index) => {
  const out = { index, ok: false };
  try {
    const slotMs = r.slot_ms !== undefined ? BigInt(r.slot_ms) : BigInt(Date.parse(r.slot));
    const chainId = r.chain_id !== undefined ? BigInt(r.chain_id) : defaultChainId;
    const domain = { name: "Metronome", version: "1", chainId };
    const message = {
      feedId: keccak256(toUtf8Bytes(r.feed)),
      round: BigInt(r.round),
      timestampMs: slotMs,
      value: parseUnits(String(r.value), Number(r.decimals ?? 0)),
    };
    out.digest = TypedDataEncoder.hash(domain, types, message);
    if (r.proof) {
      out.root = foldProof(out.digest, r.proof);
      out.recovered = verifyTypedData(domain, batchTypes, { root: out.root }, r.signature);
    } else {
      out.recovered = verifyTypedData(domain, types, message, r.signature);
    }
    if (out.digest !== String(r.digest).toLowerCase()) {
      out.error = `digest ${out.digest}, record says ${r.digest}`;
    } else if (out.recovered !== r.signer) {
      out.error = `recovered ${out.recovered}, record says ${r.signer}`;
    } else {
      out.ok = true;
    }
  } catch (e) {
    out.error = e.shortMessage ?? String(e.message ?? e);
  }
  if (!out.ok) failures++;
  console.log(JSON.stringify(out));
});
process.exit(failures === 0 ? 0 : 1);
