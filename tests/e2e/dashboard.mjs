// End-to-end test of the dashboard (GET / of the daemon) in headless Chromium, driven by
// playwright-core (pinned in package.json), against a real `metronome run` with a 200 ms feed.
//
//   node tests/e2e/dashboard.mjs --binary build/src/metronome --artifacts build/e2e-artifacts
//
// Checks: the page loads without console errors; the latest value changes within 1 s; the values
// and lateness charts have points; the slot strip shows published slots and a click shows the
// slot's details; usable at 1280x800 and at phone width (no horizontal scrolling); with the
// database made read-only (chattr +i, root only) the DLQ fills and the page shows it and the
// alarm, and Redrive with the admin token (asked once by the page) empties it.
// Screenshots of both sizes go to --artifacts. Exit 0: passed; 1: failed; 77: skipped (no
// /usr/bin/chromium).
import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const CHROMIUM = "/usr/bin/chromium";
const TOKEN = "e2e-admin-token-4f2a";

const args = process.argv.slice(2);
let binary = null;
let artifacts = null;
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--binary" && i + 1 < args.length) binary = args[++i];
  else if (args[i] === "--artifacts" && i + 1 < args.length) artifacts = args[++i];
  else {
    console.error(`unknown argument ${args[i]}`);
    process.exit(2);
  }
}
if (!binary || !artifacts) {
  console.error("usage: dashboard.mjs --binary PATH --artifacts DIR");
  process.exit(2);
}
if (!fs.existsSync(CHROMIUM)) {
  console.log(`SKIP: ${CHROMIUM} is not installed (apt-get install chromium; scripts/setup.sh --test does)`);
  process.exit(77);
}
const { chromium } = await import("playwright-core");

const failures = [];
function check(ok, what) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- the daemon ----
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "metronome-e2e-"));
fs.mkdirSync(path.join(dir, "secrets"));
fs.writeFileSync(path.join(dir, "secrets/oracle_key"), "ab".repeat(32) + "\n", { mode: 0o600 });
fs.writeFileSync(path.join(dir, "secrets/admin"), TOKEN + "\n", { mode: 0o600 });
fs.writeFileSync(
  path.join(dir, "metronome.toml"),
  `[service]
listen = "127.0.0.1:0"
admin_token_secret = "admin"
[store]
path = "var/metronome.db"
[secrets.oracle_key]
file = "secrets/oracle_key"
[secrets.admin]
file = "secrets/admin"
[[feeds]]
id = "fast"
every = "200ms"
window = "2s"
retries = 2
secret = "oracle_key"
source = { kind = "random_int", min = 0, max = 1000000 }
[alarms]
dlq_depth = 1
`,
);
const logPath = path.join(dir, "daemon.log");
const logFd = fs.openSync(logPath, "w");
const daemon = spawn(path.resolve(binary), ["run", "--config", "metronome.toml"], {
  cwd: dir,
  stdio: ["ignore", logFd, logFd],
});
const log = () => fs.readFileSync(logPath, "utf8");

let browser = null;
const immutable = [];
function chattr(file, on) {
  return spawnSync("chattr", [on ? "+i" : "-i", file]).status === 0;
}
async function cleanup() {
  for (const f of immutable) chattr(f, false);
  if (browser) await browser.close().catch(() => {});
  if (daemon.exitCode === null) {
    daemon.kill("SIGTERM");
    for (let i = 0; i < 100 && daemon.exitCode === null; i++) await sleep(100);
    if (daemon.exitCode === null) daemon.kill("SIGKILL");
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

try {
  let base = null;
  for (let i = 0; i < 200 && !base; i++) {
    const m = log().match(/API listening on ([0-9.]+:\d+)/);
    if (m) base = `http://${m[1]}/`;
    else await sleep(50);
  }
  if (!base) throw new Error(`the daemon did not start listening:\n${log()}`);
  for (let i = 0; i < 100 && !log().includes("published feed=fast"); i++) await sleep(50);

  fs.mkdirSync(artifacts, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });

  const consoleErrors = [];
  async function openPage(width, height, { live = true, errors = consoleErrors } = {}) {
    const page = await browser.newPage({ viewport: { width, height } });
    page.on("console", (m) => {
      if (m.type() === "error") errors.push(`${width}px: ${m.text()}`);
    });
    page.on("pageerror", (e) => errors.push(`${width}px: ${e.message}`));
    page.on("dialog", (d) => {
      // The admin token prompt of Redrive / Purge.
      d.accept(TOKEN).catch(() => {});
    });
    await page.goto(base);
    if (live) await page.waitForSelector("#conn.live", { timeout: 10000 });
    return page;
  }

  // ---- desktop ----
  const page = await openPage(1280, 800);
  const valueSel = '.card[data-feed="fast"] [data-role="value"]';
  await page.waitForFunction((s) => /\d/.test(document.querySelector(s).textContent), valueSel, {
    timeout: 5000,
  });
  const shown = () =>
    page.$eval(valueSel, (e) => `${e.textContent} ${e.title}`);  // value and round
  const before = await shown();
  const t0 = Date.now();
  let changed = null;
  while (Date.now() - t0 < 1000) {
    const now = await shown();
    if (now !== before) {
      changed = Date.now() - t0;
      break;
    }
    await sleep(20);
  }
  check(changed !== null, `latest value changes within 1 s (took ${changed} ms: '${before}')`);
  const signer = await page.$eval('.card[data-feed="fast"] [data-role="signer"]', (e) => e.textContent);
  check(/signer 0x[0-9a-fA-F]{40}/.test(signer), `the card shows the signer ('${signer}')`);

  await page.waitForFunction(() => Number(document.querySelector("#values-chart").dataset.points) > 3, null, {
    timeout: 5000,
  }).catch(() => {});
  const points = await page.$eval("#values-chart", (e) => Number(e.dataset.points || 0));
  check(points > 3, `the values chart has points (${points})`);
  check((await page.$$("#values-chart canvas")).length > 0, "the values chart is drawn (canvas)");
  await page.waitForFunction(() => Number(document.querySelector("#lateness-chart").dataset.points) > 3, null, {
    timeout: 5000,
  }).catch(() => {});
  const lateness = await page.$eval("#lateness-stats", (e) => e.textContent);
  check(/p50 \d+ µs, p99 \d+ µs/.test(lateness), `the lateness chart marks p50 and p99 ('${lateness}')`);

  await page.waitForSelector('#strip button[data-outcome="published"]', { timeout: 5000 }).catch(() => {});
  const published = await page.$$('#strip button[data-outcome="published"]');
  check(published.length > 0, `the slot strip shows published slots (${published.length})`);
  if (published.length) {
    // A locator: the strip is redrawn as slots arrive, and a locator finds the button again.
    await page.locator('#strip button[data-outcome="published"]').first().click();
    const details = await page.$eval("#slot-details", (e) => (e.hidden ? "" : e.textContent));
    check(details.includes('"outcome": "published"') && details.includes("lateness_us"),
      "clicking a slot shows its details");
  }
  const legend = await page.$eval("#outcome-legend", (e) => e.textContent);
  check(["published", "failed", "missed", "skipped"].every((o) => legend.includes(o)), "the strip has a legend");
  const overflowDesktop = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflowDesktop <= 0, `no horizontal scrolling at 1280x800 (${overflowDesktop} px)`);
  await page.screenshot({ path: path.join(artifacts, "dashboard-1280x800.png") });

  // ---- polling fallback: every event stream taken, the page polls ----
  // (Before any page is closed: a closed page's stream would free a place at its next heartbeat.)
  {
    const http = await import("node:http");
    const held = [];
    let refused = false;
    for (let i = 0; i < 8 && !refused; i++) {
      const res = await new Promise((resolve, reject) =>
        http.get(base + "v1/events", resolve).on("error", reject));
      if (res.statusCode === 200) held.push(res);
      else {
        refused = res.statusCode === 503;
        res.resume();
      }
    }
    check(refused, `event streams are capped with 503 (after ${held.length} open)`);
    const pollErrors = [];
    const polled = await openPage(1280, 800, { live: false, errors: pollErrors });
    await polled.waitForFunction(() => /polling/.test(document.querySelector("#conn").textContent), null, {
      timeout: 10000,
    }).catch(() => {});
    const conn = await polled.$eval("#conn", (e) => e.textContent);
    check(/polling/.test(conn), `without an event stream the page says it polls ('${conn}')`);
    const first = await polled.$eval(valueSel, (e) => e.title);
    const polledChange = await polled.waitForFunction((s, v) => document.querySelector(s).title !== v,
      valueSel, first, { timeout: 5000 }).then(() => true, () => false);
    check(polledChange, "the latest value still changes by polling");
    // The only error allowed: the browser's own report of the refused event stream.
    const unexpected = pollErrors.filter((e) => !/503|EventSource|event-stream/i.test(e));
    check(unexpected.length === 0, `no other console errors while polling${unexpected.length ? ": " + unexpected.join(" | ") : ""}`);
    await polled.close();
    for (const r of held) r.destroy();
    // The server notices a closed stream at its next heartbeat (5 s) and frees its place.
    await sleep(5500);
  }

  // ---- phone ----
  const phone = await openPage(390, 844);
  await phone.waitForSelector('#strip button[data-outcome="published"]', { timeout: 5000 }).catch(() => {});
  await phone.waitForFunction(() => Number(document.querySelector("#values-chart").dataset.points) > 3, null, {
    timeout: 5000,
  }).catch(() => {});
  const overflowPhone = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflowPhone <= 0, `no horizontal scrolling at 390x844 (${overflowPhone} px)`);
  const phoneValue = await phone.$eval(valueSel, (e) => e.getBoundingClientRect().width > 0 && /\d/.test(e.textContent));
  check(phoneValue, "the latest value is visible at phone width");
  await phone.screenshot({ path: path.join(artifacts, "dashboard-390x844.png"), fullPage: true });
  await phone.close();

  // ---- the DLQ: a read-only database, then Redrive ----
  const db = path.join(dir, "var/metronome.db");
  const probe = path.join(dir, "chattr-probe");
  fs.writeFileSync(probe, "x");
  if (!chattr(probe, true)) {
    console.log("SKIP (part): the DLQ check needs root with CAP_LINUX_IMMUTABLE (chattr +i); CI runs as root");
  } else {
    chattr(probe, false);
    for (const f of [db, db + "-wal"]) {
      if (fs.existsSync(f) && chattr(f, true)) immutable.push(f);
    }
    await page.waitForFunction(() => document.querySelectorAll("#dlq tbody tr").length >= 2, null, {
      timeout: 10000,
    }).catch(() => {});
    for (const f of immutable.splice(0)) chattr(f, false);
    await sleep(600);  // the slots in flight finish (into the DLQ or stored)
    const rows = await page.$$eval("#dlq tbody tr", (r) => r.length);
    const depth = await page.$eval("#dlq-depth", (e) => Number(e.textContent));
    check(rows >= 2 && depth >= rows, `the DLQ fills and the page shows it (${rows} rows, depth ${depth})`);
    const reason = rows ? await page.$eval("#dlq tbody tr td.reason", (e) => e.textContent) : "";
    check(reason.length > 0, `each DLQ message shows its reason ('${reason.slice(0, 80)}')`);
    await page.waitForSelector('#alarms tr[data-alarm="dlq_not_empty"] .state-ALARM', { timeout: 10000 }).catch(() => {});
    check((await page.$$('#alarms tr[data-alarm="dlq_not_empty"] .state-ALARM')).length === 1,
      "the dlq_not_empty alarm shows ALARM");
    await page.screenshot({ path: path.join(artifacts, "dashboard-dlq-1280x800.png"), fullPage: true });

    // Redrive every message; the page asks for the token once (the dialog handler answers it).
    let prompts = 0;
    const actions = { redrive: 0, purge: 0 };
    page.on("dialog", () => prompts++);
    // Slots that were in flight when the database became writable again may still add messages:
    // redrive until the queue stays empty.
    for (let i = 0, empty = 0; i < 200 && empty < 3; i++) {
      // Redrive what has a record; a message without one (a failure before the value existed)
      // has Redrive disabled and is purged.
      const [id, action] = await page.evaluate(() => {
        const b = document.querySelector('#dlq tbody tr button[data-action="redrive"]:not([disabled])') ||
          document.querySelector('#dlq tbody tr button[data-action="purge"]:not([disabled])');
        return b ? [b.closest("tr").dataset.id, b.dataset.action] : [null, null];
      });
      if (id === null) {
        empty++;
        await sleep(500);
        continue;
      }
      empty = 0;
      // The table is redrawn on every DLQ event: a locator finds the row's button again.
      await page.locator(`#dlq tbody tr[data-id="${id}"] button[data-action="${action}"]`).click({ timeout: 5000 });
      actions[action]++;
      await page.waitForFunction((x) => !document.querySelector(`#dlq tbody tr[data-id="${x}"]`), id, {
        timeout: 5000,
      }).catch(() => {});
    }
    const left = await page.$$eval("#dlq tbody tr", (r) => r.length);
    const message = await page.$eval("#dlq-message", (e) => e.textContent);
    check(left === 0 && actions.redrive > 0,
      `Redrive with the token empties the DLQ (${actions.redrive} redriven, ${actions.purge} without a record purged, ${left} left; '${message}')`);
    check(prompts === 1, `the token was asked once (${prompts} prompts)`);
    check((await page.$eval("#dlq-depth", (e) => e.textContent)) === "0", "the DLQ depth shows 0");
  }

  check(consoleErrors.length === 0, `no console errors${consoleErrors.length ? ": " + consoleErrors.join(" | ") : ""}`);
} catch (e) {
  failures.push(String(e && e.stack ? e.stack : e));
  console.log(`FAIL ${e && e.stack ? e.stack : e}`);
  console.log(`daemon log (tail):\n${log().split("\n").slice(-30).join("\n")}`);
} finally {
  await cleanup();
}
if (failures.length) {
  console.log(`${failures.length} check(s) failed`);
  process.exit(1);
}
console.log("dashboard e2e: all checks passed");
