// Time from slot to inclusion on a 1 s-block chain: ganache (npm, pinned) on a free port, the real
// daemon with a 2 s feed whose evm sink submits every slot (deviation_pct = 0), for DURATION
// seconds. Each Observed event is seen by polling eth_getLogs every 50 ms; its latency is the wall
// time it was first seen minus its slot (timestampMs), i.e. slot -> signed -> sent -> mined ->
// visible. Prints JSON: {"samples", "p50_ms", "p99_ms", "max_ms", "loadavg"}.
//   node bench/evm_latency.mjs --binary build/metronome [--duration 40]
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, chmodSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, loadavg } from "node:os";
import { join, resolve } from "node:path";
import { id } from "ethers";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const binary = resolve(arg("--binary", "build/metronome"));
const duration = Number(arg("--duration", "40"));
const senderKey = "0x8f2a55949038a9610f50fb23b5883af3b4ecb3c3bb792cbcefbd1542c692be63";
const feedKey = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const freePort = () => new Promise((resolve) => {
  const s = createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
});

const port = await freePort();
const url = `http://127.0.0.1:${port}`;
const rpc = async (method, params) => {
  const r = await fetch(url, { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }) });
  return (await r.json()).result;
};
const ganache = spawn("node", ["node_modules/ganache/dist/node/cli.js", "--server.host", "127.0.0.1",
  "--server.port", String(port), "--chain.chainId", "31337", "--miner.blockTime", "1",
  "--wallet.accounts", `${senderKey},1000000000000000000000`, "--logging.quiet"], { stdio: "ignore" });
const dir = mkdtempSync(join(tmpdir(), "metronome-evm-bench-"));
let daemon;
try {
  for (let i = 0; i < 200; ++i) { try { if (await rpc("eth_chainId", [])) break; } catch {} await sleep(50); }
  writeFileSync(join(dir, "feed_key"), feedKey + "\n"); chmodSync(join(dir, "feed_key"), 0o600);
  writeFileSync(join(dir, "sender_key"), senderKey + "\n"); chmodSync(join(dir, "sender_key"), 0o600);
  const config = (contract) => `
[service]
listen = "127.0.0.1:0"
chain_id = 31337
[secrets.feed_key]
file = "feed_key"
[secrets.sender_key]
file = "sender_key"
[[feeds]]
id = "bench"
every = "2s"
secret = "feed_key"
source = { kind = "random_int", min = 1, max = 1000000 }
[[feeds.sinks]]
kind = "evm"
rpc_urls = ["${url}"]
contract = "${contract}"
sender_secret = "sender_key"
deviation_pct = "0"
heartbeat = "1h"
`;
  writeFileSync(join(dir, "m.toml"), config(""));
  const out = execFileSync(binary, ["--config", "m.toml", "evm", "deploy"], { cwd: dir }).toString();
  const contract = out.match(/contract (0x[0-9a-fA-F]{40})/)[1];
  writeFileSync(join(dir, "m.toml"), config(contract));
  daemon = spawn(binary, ["--config", "m.toml", "run"], { cwd: dir, stdio: "ignore" });
  const topic = id("Observed(bytes32,uint64,uint64,int256,address)");
  const seen = new Map();
  const end = Date.now() + duration * 1000;
  while (Date.now() < end) {
    const logs = await rpc("eth_getLogs", [{ address: contract, fromBlock: "0x0", toBlock: "latest", topics: [topic] }]);
    const now = Date.now();
    for (const log of logs ?? []) {
      const ts = Number(BigInt("0x" + log.data.slice(2 + 64, 2 + 128)));
      if (!seen.has(ts)) seen.set(ts, now - ts);
    }
    await sleep(50);
  }
  const lat = [...seen.values()].slice(1).sort((a, b) => a - b);  // the first includes start-up
  const pct = (p) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))];
  console.log(JSON.stringify({ samples: lat.length, p50_ms: pct(50), p99_ms: pct(99),
                               max_ms: lat[lat.length - 1], block_time_s: 1, slot_interval_s: 2,
                               loadavg: loadavg().map((x) => x.toFixed(2)) }));
} finally {
  if (daemon) daemon.kill("SIGTERM");
  ganache.kill("SIGKILL");
  await sleep(500);
  rmSync(dir, { recursive: true, force: true });
}
