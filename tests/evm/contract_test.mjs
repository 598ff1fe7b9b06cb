// The feed contract (contracts/MetronomeFeed.sol, as the build compiled it) on a throwaway ganache
// chain (instamine, chain id 1337), with ethers; both pinned in package.json.
//
//   node tests/evm/contract_test.mjs --artifact build/contracts/MetronomeFeed.json \
//     --header build/generated/evm/metronome_feed_contract.h --binary build/src/metronome
//
// Checks: owner-only administration; the contract's domain separator and digest equal ethers';
// records signed by ethers' signTypedData AND by the metronome binary (a real daemon run with
// chain_id 1337) are accepted; a tampered value, a replayed or older observation, a timestamp too
// far in the future, an unauthorised or revoked signer, a high-s or malformed signature and an
// unconfigured feed are rejected, each by its revert reason, leaving the stored observation as it
// was; a batch of 10 feeds is accepted, and a batch with one bad item reverts as a whole (mined
// with status 0, no feed changed) with that item's reason; latestRoundData, latestObservation,
// decimals and description answer what was submitted. Prints the gas of a single submit and of a
// batch of 10. Exit 0: passed; 1: failed.
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Signature, TypedDataEncoder, Wallet, parseUnits } from "ethers";
import {
  CHAIN_ID,
  OBSERVATION_TYPES,
  deployFeed,
  domain,
  feedId,
  observationDigest,
  readArtifact,
  signed,
  startChain,
} from "./chain.mjs";

const args = process.argv.slice(2);
let artifactPath = null;
let binary = null;
let headerPath = null;
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--artifact" && i + 1 < args.length) artifactPath = args[++i];
  else if (args[i] === "--binary" && i + 1 < args.length) binary = args[++i];
  else if (args[i] === "--header" && i + 1 < args.length) headerPath = args[++i];
  else {
    console.error(`unknown argument ${args[i]}`);
    process.exit(2);
  }
}
if (!artifactPath || !binary || !headerPath) {
  console.error("usage: contract_test.mjs --artifact MetronomeFeed.json --header metronome_feed_contract.h --binary PATH/metronome");
  process.exit(2);
}

const MAX_FUTURE_MS = 10_000n;
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

const T0 = Date.now();
const failures = [];
function check(ok, what) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what} [${((Date.now() - T0) / 1000).toFixed(1)} s]`);
  if (!ok) failures.push(what);
  return ok;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The Error(string) reason of a failed eth_call, as ethers decoded it. (Rejections are checked
// with staticCall, an eth_call: ganache's eth_estimateGas errors carry no revert data; a mined
// reverted transaction is checked once, for the batch.)
function reasonOf(e) {
  return e?.reason ?? e?.revert?.args?.[0] ?? null;
}
async function reverts(what, fn, reason) {
  try {
    await fn();
    check(false, `${what}: expected revert "${reason}", it succeeded`);
  } catch (e) {
    const got = reasonOf(e);
    check(got === reason, `${what}: reverts "${reason}"${got === reason ? "" : ` (got ${got ?? e.shortMessage ?? e.message})`}`);
  }
}
function same(a, b) {
  return JSON.stringify(a, (_, v) => (typeof v === "bigint" ? v.toString() : v)) ===
    JSON.stringify(b, (_, v) => (typeof v === "bigint" ? v.toString() : v));
}
async function observation(contract, name) {
  const o = await contract.latestObservation(feedId(name));
  return { round: o.round, timestampMs: o.timestampMs, value: o.value, updatedAt: o.updatedAt };
}
function args5(s) {
  return [s.feedId, s.round, s.timestampMs, s.value, s.signature];
}

// ---- records signed by the metronome binary: a daemon run of ~2 s with two 500 ms feeds ----
// eth_usd observes a negative value with 8 decimals (a two's-complement int256 on chain),
// random_int an integer with 0 decimals. Returns the records, oldest first.
async function daemonRecords(key) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "metronome-evm-"));
  try {
    fs.writeFileSync(path.join(dir, "key"), key.slice(2) + "\n", { mode: 0o600 });
    fs.writeFileSync(path.join(dir, "eth_usd"), "-1234.56789012\n");
    fs.writeFileSync(
      path.join(dir, "metronome.toml"),
      `[service]
data_dir = "var"
listen = "127.0.0.1:0"
chain_id = ${CHAIN_ID}
[store]
path = "var/metronome.db"
[secrets.k]
file = "key"
[[feeds]]
id = "eth_usd"
every = "500ms"
window = "10s"
secret = "k"
decimals = 8
source = { kind = "file", path = "eth_usd" }
[[feeds]]
id = "random_int"
every = "500ms"
window = "10s"
secret = "k"
decimals = 0
source = { kind = "random_int", min = 0, max = 1000000 }
`,
    );
    const logPath = path.join(dir, "daemon.log");
    const logFd = fs.openSync(logPath, "w");
    const daemon = spawn(path.resolve(binary), ["run", "--config", "metronome.toml"], {
      cwd: dir,
      stdio: ["ignore", logFd, logFd],
    });
    const exited = new Promise((resolve) => daemon.on("exit", (code, signal) => resolve({ code, signal })));
    const values = () => {
      const r = spawnSync(path.resolve(binary), ["values", "--config", "metronome.toml", "--format", "json", "--limit", "1000"], {
        cwd: dir,
        encoding: "utf8",
      });
      if (r.status !== 0) return null;
      try {
        const parsed = JSON.parse(r.stdout);
        return Array.isArray(parsed) ? parsed : [parsed];
      } catch {
        return null;
      }
    };
    let records = [];
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      await sleep(500);
      records = values() ?? [];
      const perFeed = (f) => records.filter((r) => r.feed === f).length;
      if (perFeed("eth_usd") >= 4 && perFeed("random_int") >= 4) break;
    }
    daemon.kill("SIGTERM");
    const { code } = await exited;
    fs.closeSync(logFd);
    check(code === 0, `daemon exits 0 on SIGTERM (code ${code})`);
    if (records.length < 8) {
      console.log(fs.readFileSync(logPath, "utf8").slice(-4000));
    }
    const slotMs = (r) => (r.slot_ms !== undefined ? BigInt(r.slot_ms) : BigInt(Date.parse(r.slot)));
    return records.map((r) => ({ ...r, slotMs: slotMs(r) })).sort((a, b) => (a.slotMs < b.slotMs ? -1 : a.slotMs > b.slotMs ? 1 : 0));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const artifact = readArtifact(artifactPath);
// The C++ header (what the daemon deploys and encodes calls with) holds this very ABI and bytecode.
{
  const header = fs.readFileSync(headerPath, "utf8");
  const abi = header.match(/kMetronomeFeedAbi = R"metronome_abi\((.*)\)metronome_abi";/s)?.[1];
  const bytecode = header.match(/kMetronomeFeedBytecode = "([0-9a-f]*)";/)?.[1];
  check(abi !== undefined && same(JSON.parse(abi), artifact.abi), "the header's kMetronomeFeedAbi is the tested ABI");
  check(bytecode !== undefined && "0x" + bytecode === artifact.bytecode, "the header's kMetronomeFeedBytecode is the tested bytecode");
}
const chain = await startChain();
try {
  const { provider } = chain;
  const owner = await provider.getSigner(0);
  const stranger = await provider.getSigner(1);
  const oracle = Wallet.createRandom();
  const intruder = Wallet.createRandom();

  // ---- deployment and administration ----
  const feed = await deployFeed(artifact, owner, MAX_FUTURE_MS);
  const asStranger = feed.connect(stranger);
  check((await feed.owner()) === (await owner.getAddress()), "owner() is the deployer");
  check((await feed.maxFutureMs()) === MAX_FUTURE_MS, `maxFutureMs() is ${MAX_FUTURE_MS}`);
  check((await feed.isSigner(oracle.address)) === false, "a signer is not authorised before setSigner");
  await (await feed.setSigner(oracle.address, true)).wait();
  check((await feed.isSigner(oracle.address)) === true, "setSigner(signer, true) authorises it");
  await reverts("setSigner by a stranger", () => asStranger.setSigner.staticCall(intruder.address, true), "not owner");
  await reverts("configureFeed by a stranger", () => asStranger.configureFeed.staticCall(feedId("x"), 8, "X"), "not owner");

  await (await feed.configureFeed(feedId("eth_usd"), 8, "ETH / USD")).wait();
  check((await feed.decimals(feedId("eth_usd"))) === 8n, "decimals(eth_usd) is 8");
  check((await feed.description(feedId("eth_usd"))) === "ETH / USD", "description(eth_usd) is 'ETH / USD'");
  await (await feed.configureFeed(feedId("eth_usd"), 8, "ETH / USD (Metronome)")).wait();
  check((await feed.description(feedId("eth_usd"))) === "ETH / USD (Metronome)", "configureFeed changes the description");
  await reverts("configureFeed changing decimals", () => feed.configureFeed.staticCall(feedId("eth_usd"), 6, "ETH / USD"), "decimals fixed");
  await reverts("decimals of an unconfigured feed", () => feed.decimals(feedId("nope")), "unknown feed");
  await reverts("description of an unconfigured feed", () => feed.description(feedId("nope")), "unknown feed");
  await reverts("latestRoundData of an unconfigured feed", () => feed.latestRoundData(feedId("nope")), "unknown feed");
  await reverts("latestRoundData before any submission", () => feed.latestRoundData(feedId("eth_usd")), "no data");

  // ---- the contract's EIP-712 digest is ethers' ----
  check((await feed.domainSeparator()) === TypedDataEncoder.hashDomain(domain()), "domainSeparator() equals ethers' for chain 1337");
  for (const [round, ts, value] of [
    [1n, 1n, 0n],
    [(1n << 64n) - 1n, (1n << 64n) - 1n, -1n],
    [887n, 1764290000000n, (1n << 255n) - 1n],
    [3n, 4n, -(1n << 255n)],
  ]) {
    const message = { feedId: feedId("eth_usd"), round, timestampMs: ts, value };
    check(
      (await feed.observationDigest(message.feedId, round, ts, value)) === observationDigest(message),
      `observationDigest(round ${round}, value ${value}) equals ethers' TypedDataEncoder.hash`,
    );
  }

  // ---- a single submission signed by ethers ----
  const now = BigInt(Date.now());
  const first = await signed(oracle, "eth_usd", 100n, now - 10_000n, parseUnits("3012.5", 8));
  const tx = await feed.submit(...args5(first));
  const receipt = await tx.wait();
  const gasSingleFirst = receipt.gasUsed;
  const block = await provider.getBlock(receipt.blockNumber);
  const events = receipt.logs.map((l) => feed.interface.parseLog(l)).filter((e) => e?.name === "Observed");
  check(
    events.length === 1 &&
      events[0].args.feedId === first.feedId &&
      events[0].args.round === 100n &&
      events[0].args.timestampMs === first.timestampMs &&
      events[0].args.value === first.value &&
      events[0].args.signer === oracle.address,
    "submit emits Observed(feedId, round, timestampMs, value, signer)",
  );
  const rd = await feed.latestRoundData(feedId("eth_usd"));
  check(
    rd.roundId === 100n &&
      rd.answer === first.value &&
      rd.startedAt === first.timestampMs / 1000n &&
      rd.updatedAt === BigInt(block.timestamp) &&
      rd.answeredInRound === 100n,
    `latestRoundData = (100, ${first.value}, ${first.timestampMs / 1000n}, ${block.timestamp}, 100)`,
  );
  const stored = await observation(feed, "eth_usd");
  check(
    same(stored, { round: 100n, timestampMs: first.timestampMs, value: first.value, updatedAt: BigInt(block.timestamp) }),
    "latestObservation = (100, timestampMs, value, block time)",
  );

  // A newer observation (steady state: the feed's slots are already written).
  const second = await signed(oracle, "eth_usd", 101n, now - 9_500n, parseUnits("3013", 8));
  const gasSingle = (await (await feed.submit(...args5(second))).wait()).gasUsed;
  const afterSecond = await observation(feed, "eth_usd");
  check(afterSecond.round === 101n && afterSecond.value === second.value, "a newer observation replaces the stored one");

  // ---- rejections, each by its reason; the stored observation stays ----
  const tampered = { ...(await signed(oracle, "eth_usd", 102n, now - 9_000n, 300000000000n)) };
  tampered.value += 1n;
  await reverts("a tampered value (recovers another address)", () => feed.submit.staticCall(...args5(tampered)), "unauthorised signer");
  await reverts("the same observation replayed", () => feed.submit.staticCall(...args5(second)), "not newer");
  await reverts("an older observation", () => feed.submit.staticCall(...args5(first)), "not newer");
  const older = await signed(oracle, "eth_usd", 99n, now - 20_000n, 5n);
  await reverts("an older, never submitted, observation", () => feed.submit.staticCall(...args5(older)), "not newer");
  const sameTime = await signed(oracle, "eth_usd", 101n, second.timestampMs, 7n);
  await reverts("another value for the same timestamp", () => feed.submit.staticCall(...args5(sameTime)), "not newer");
  const head = await provider.getBlock("latest");
  const future = await signed(oracle, "eth_usd", 200n, BigInt(head.timestamp) * 1000n + MAX_FUTURE_MS + 60_000n, 5n);
  await reverts("a timestamp maxFutureMs + 60 s ahead of the block", () => feed.submit.staticCall(...args5(future)), "too far in future");
  const byIntruder = await signed(intruder, "eth_usd", 102n, now - 9_000n, 5n);
  await reverts("a signer never authorised", () => feed.submit.staticCall(...args5(byIntruder)), "unauthorised signer");

  // High s: (r, n - s, v ^ 1) recovers the same address; the contract refuses the malleable twin.
  const sig = Signature.from((await signed(oracle, "eth_usd", 102n, now - 9_000n, 5n)).signature);
  const highS = "0x" + sig.r.slice(2) + (SECP256K1_N - BigInt(sig.s)).toString(16).padStart(64, "0") + (sig.v === 27 ? "1c" : "1b");
  const good102 = await signed(oracle, "eth_usd", 102n, now - 9_000n, 5n);
  await reverts("a high-s signature", () => feed.submit.staticCall(...args5({ ...good102, signature: highS })), "bad signature");
  await reverts("a 64-byte signature", () => feed.submit.staticCall(...args5({ ...good102, signature: good102.signature.slice(0, 130) })), "bad signature");
  const v29 = good102.signature.slice(0, 130) + "1d";
  await reverts("v = 29", () => feed.submit.staticCall(...args5({ ...good102, signature: v29 })), "bad signature");
  const unknown = await signed(oracle, "not_configured", 1n, now - 9_000n, 5n);
  await reverts("a feed never configured", () => feed.submit.staticCall(...args5(unknown)), "unknown feed");
  check(same(await observation(feed, "eth_usd"), afterSecond), "after the rejections the stored observation is unchanged");

  // Revocation, then the same signer authorised again.
  await (await feed.setSigner(oracle.address, false)).wait();
  await reverts("a revoked signer", () => feed.submit.staticCall(...args5(good102)), "unauthorised signer");
  await (await feed.setSigner(oracle.address, true)).wait();
  await (await feed.submit(...args5(good102))).wait();
  check((await observation(feed, "eth_usd")).round === 102n, "the signer authorised again submits");

  // Up to maxFutureMs ahead is accepted (clock skew between the oracle and the chain).
  await (await feed.configureFeed(feedId("skewed"), 0, "skewed clock")).wait();
  const ahead = await signed(oracle, "skewed", 1n, BigInt((await provider.getBlock("latest")).timestamp) * 1000n + MAX_FUTURE_MS - 4_000n, 42n);
  await (await feed.submit(...args5(ahead))).wait();
  check((await observation(feed, "skewed")).value === 42n, "a timestamp maxFutureMs - 4 s ahead is accepted");

  // ---- a batch of 10 feeds ----
  const names = Array.from({ length: 10 }, (_, i) => `batch_${i}`);
  const configured = [];
  for (const n of names) configured.push(await feed.configureFeed(feedId(n), 2, n.toUpperCase()));
  await Promise.all(configured.map((t) => t.wait()));
  const batchAt = async (offsetMs, round) =>
    Promise.all(names.map((n, i) => signed(oracle, n, round, now + offsetMs, BigInt(i * 100 + Number(round)))));
  const batch1 = await batchAt(-8_000n, 1n);
  const r1 = await (await feed.submitBatch(batch1)).wait();
  const gasBatch10First = r1.gasUsed;
  const observed = r1.logs.map((l) => feed.interface.parseLog(l)).filter((e) => e?.name === "Observed");
  check(observed.length === 10, `a batch of 10 emits 10 Observed (got ${observed.length})`);
  let allStored = true;
  for (const [i, n] of names.entries()) {
    const o = await observation(feed, n);
    allStored &&= o.round === 1n && o.value === batch1[i].value && o.timestampMs === batch1[i].timestampMs;
  }
  check(allStored, "a batch of 10 stores every feed's observation");
  check((await feed.decimals(feedId("batch_3"))) === 2n && (await feed.description(feedId("batch_3"))) === "BATCH_3", "decimals/description per feed");
  const batch2 = await batchAt(-7_000n, 2n);
  const gasBatch10 = (await (await feed.submitBatch(batch2)).wait()).gasUsed;
  const before = await Promise.all(names.map((n) => observation(feed, n)));

  // One bad item (the 8th, tampered) reverts the whole batch with its reason, mined or not.
  const batch3 = await batchAt(-6_000n, 3n);
  batch3[7] = { ...batch3[7], value: batch3[7].value + 1n };
  await reverts("a batch with a tampered 8th item", () => feed.submitBatch.staticCall(batch3), "unauthorised signer");
  const minedBad = await feed.submitBatch(batch3, { gasLimit: 2_000_000n });
  let status = null;
  try {
    status = (await minedBad.wait()).status;
  } catch (e) {
    status = e.receipt?.status ?? null;
  }
  check(status === 0, `the bad batch, sent with a fixed gas limit, is mined with status 0 (got ${status})`);
  const after = await Promise.all(names.map((n) => observation(feed, n)));
  check(same(before, after), "after the reverted batch no feed changed (items 1-7 were not applied)");
  const batch4 = await batchAt(-5_000n, 4n);
  batch4[3] = batch2[3];
  await reverts("a batch replaying one item", () => feed.submitBatch.staticCall(batch4), "not newer");
  await reverts("an empty batch", () => feed.submitBatch.staticCall([]), "empty batch");

  // ---- records signed by the metronome binary ----
  const daemonKey = Wallet.createRandom();
  const records = await daemonRecords(daemonKey.privateKey);
  check(records.length >= 8, `the daemon published ${records.length} records (>= 8)`);
  check(records.every((r) => r.signer === daemonKey.address), `every record's signer is the key's address ${daemonKey.address}`);
  await (await feed.setSigner(daemonKey.address, true)).wait();
  // eth_usd is configured (8 decimals) and holds the ethers-signed observations above, all older.
  await (await feed.configureFeed(feedId("random_int"), 0, "random integer")).wait();
  for (const name of ["eth_usd", "random_int"]) {
    const mine = records.filter((r) => r.feed === name);
    if (!check(mine.length >= 4, `${name}: ${mine.length} records from the binary (>= 4)`)) continue;
    let accepted = 0;
    let digestsEqual = 0;
    for (const r of mine) {
      const s = {
        feedId: feedId(name),
        round: BigInt(r.round),
        timestampMs: r.slotMs,
        value: parseUnits(String(r.value), Number(r.decimals)),
        signature: r.signature,
      };
      if ((await feed.observationDigest(s.feedId, s.round, s.timestampMs, s.value)) === String(r.digest).toLowerCase()) digestsEqual++;
      const rcpt = await (await feed.submit(...args5(s))).wait();
      const ev = rcpt.logs.map((l) => feed.interface.parseLog(l)).find((e) => e?.name === "Observed");
      if (rcpt.status === 1 && ev?.args.signer === daemonKey.address && ev.args.value === s.value) accepted++;
    }
    check(digestsEqual === mine.length, `${name}: the contract's digest equals the record's for ${digestsEqual}/${mine.length} records`);
    check(accepted === mine.length, `${name}: ${accepted}/${mine.length} records signed by the binary accepted on chain, Observed names the signer`);
    const last = mine[mine.length - 1];
    const o = await observation(feed, name);
    check(
      o.round === BigInt(last.round) && o.timestampMs === last.slotMs && o.value === parseUnits(String(last.value), Number(last.decimals)),
      `${name}: latestObservation is the newest record (round ${last.round}, value ${last.value})`,
    );
    const firstRec = mine[0];
    await reverts(
      `${name}: the binary's oldest record again`,
      () => feed.submit.staticCall(feedId(name), BigInt(firstRec.round), firstRec.slotMs, parseUnits(String(firstRec.value), Number(firstRec.decimals)), firstRec.signature),
      "not newer",
    );
  }
  check((await feed.latestRoundData(feedId("eth_usd"))).answer === -123456789012n, "eth_usd from the binary: answer is -1234.56789012 × 10^8 (negative int256)");

  console.log(
    JSON.stringify({
      gas_single: Number(gasSingle),
      gas_single_first_write: Number(gasSingleFirst),
      gas_batch10: Number(gasBatch10),
      gas_batch10_first_write: Number(gasBatch10First),
      gas_per_feed_batch10: Math.round(Number(gasBatch10) / 10),
    }),
  );
} catch (e) {
  check(false, `unexpected error: ${e.stack ?? e}`);
} finally {
  await chain.close();
}
if (failures.length) {
  console.log(`${failures.length} check(s) failed:\n  ${failures.join("\n  ")}`);
  process.exit(1);
}
console.log("all checks passed");
process.exit(0);
