// Gas of MetronomeFeed submissions on ganache 7.9.2 (shanghai, instamine), as the build compiled
// the contract. Gas does not depend on the machine or its load; keys, feed names, values and
// timestamps are fixed and signatures deterministic (RFC 6979), so a run repeats exactly. The 3
// rounds differ by a few gas: each uses other feed names, hence other calldata bytes (zero bytes
// cost 4 gas, others 16).
//
//   node bench/evm_gas.mjs --artifact build/contracts/MetronomeFeed.json
//
// Prints one JSON object:
//   gas_single             submit() of a feed that already holds a value (the steady state)
//   gas_batch10            submitBatch() of 10 such feeds
//   gas_per_feed_batch10   gas_batch10 / 10
//   gas_single_first       submit() of a feed's first value (storage slots written from zero)
//   gas_batch10_first      submitBatch() of 10 feeds' first values
//   gas_deploy             the deployment
// Each figure is the median of `rounds` (3) measurements, each on its own feeds.
import { Wallet } from "ethers";
import { deployFeed, feedId, readArtifact, signed, startChain } from "../tests/evm/chain.mjs";

const args = process.argv.slice(2);
let artifactPath = null;
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--artifact" && i + 1 < args.length) artifactPath = args[++i];
  else {
    console.error(`unknown argument ${args[i]}`);
    process.exit(2);
  }
}
if (!artifactPath) {
  console.error("usage: evm_gas.mjs --artifact build/contracts/MetronomeFeed.json");
  process.exit(2);
}

const ROUNDS = 3;
const BASE_MS = 1_764_000_000_000n; // 2025-11-24: in the past of any block, fixed
const oracle = new Wallet("0x" + "4d".repeat(32));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const chain = await startChain();
try {
  const owner = await chain.provider.getSigner(0);
  const feed = await deployFeed(readArtifact(artifactPath), owner, 10_000n);
  const gasDeploy = Number((await feed.deploymentTransaction().wait()).gasUsed);
  await (await feed.setSigner(oracle.address, true)).wait();

  const gas = async (txPromise) => Number((await (await txPromise).wait()).gasUsed);
  // Values of a realistic size (an 8-decimal price), different per feed and per step.
  const value = (i, step) => 300_000_000_000n + BigInt(i * 1_000 + step);
  const results = { single: [], single_first: [], batch10: [], batch10_first: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const one = `single_${r}`;
    const ten = Array.from({ length: 10 }, (_, i) => `batch_${r}_${i}`);
    for (const name of [one, ...ten]) await (await feed.configureFeed(feedId(name), 8, name)).wait();
    const s0 = await signed(oracle, one, 1n, BASE_MS, value(0, 0));
    const s1 = await signed(oracle, one, 2n, BASE_MS + 500n, value(0, 1));
    results.single_first.push(await gas(feed.submit(s0.feedId, s0.round, s0.timestampMs, s0.value, s0.signature)));
    results.single.push(await gas(feed.submit(s1.feedId, s1.round, s1.timestampMs, s1.value, s1.signature)));
    const b0 = await Promise.all(ten.map((n, i) => signed(oracle, n, 1n, BASE_MS, value(i, 0))));
    const b1 = await Promise.all(ten.map((n, i) => signed(oracle, n, 2n, BASE_MS + 500n, value(i, 1))));
    results.batch10_first.push(await gas(feed.submitBatch(b0)));
    results.batch10.push(await gas(feed.submitBatch(b1)));
  }
  const gasBatch10 = median(results.batch10);
  console.log(
    JSON.stringify({
      benchmark: "evm_gas",
      chain: "ganache 7.9.2 (shanghai)",
      rounds: ROUNDS,
      gas_single: median(results.single),
      gas_batch10: gasBatch10,
      gas_per_feed_batch10: Math.round(gasBatch10 / 10),
      gas_single_first: median(results.single_first),
      gas_batch10_first: median(results.batch10_first),
      gas_deploy: gasDeploy,
      all: results,
    }),
  );
} finally {
  await chain.close();
}
