// Drives the live page (GET /) in Debian's Chromium for test_page.py.
//
//   node page_test.js --url URL [--chromium /usr/bin/chromium] [--playwright DIR]
//
// URL is the page with #token=... in the fragment. The script launches a
// headless Chromium (a temporary profile, a new context), loads the page, waits
// for the first rates, and then answers commands, one JSON object per line
// on stdin, with one JSON object per line on stdout:
//
//   {"cmd":"cell","exchange":"binance","pair":"BTC_USDT"}  -> the cell as the page shows it
//   {"cmd":"wait_bid","exchange","pair","text","timeout_ms"}
//   {"cmd":"wait_stale","exchange","pair","timeout_ms"}
//   {"cmd":"wait_status","exchange","states":["degraded","error"],"timeout_ms"}
//   {"cmd":"wait_gone","exchange","timeout_ms"}      column and status entry removed
//   {"cmd":"screenshot","path":"..."}
//   {"cmd":"quit"}
//
// Every answer has "ok" (and "error" when false) and "ms", the time the
// command took in this process. Waits are bounded by their timeout_ms and
// re-check the DOM every 20 ms (no fixed sleeps). The first line is
// {"event":"ready",...} once the page shows any rate, or {"event":"fatal"}.
// Console errors, uncaught exceptions and failed requests of the page are
// collected and returned by "quit" (and by "cell").
"use strict";

const fs = require("fs");
const path = require("path");
const readline = require("readline");

function arg(name, dflt) {
  const i = process.argv.indexOf("--" + name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const url = arg("url");
const chromiumPath = arg("chromium", "/usr/bin/chromium");
const pwDir = arg("playwright", path.join(__dirname, "../../.tools/node_modules/playwright-core"));
const readyTimeout = Number(arg("ready-timeout-ms", "60000"));
const POLL_MS = 20;  // how often a wait re-checks the DOM (Playwright has no mutation polling)

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

if (!url) {
  out({ event: "fatal", error: "usage: page_test.js --url URL" });
  process.exit(2);
}

let browser = null;

async function cleanup() {
  if (browser) {
    try { await browser.close(); } catch (e) { /* already gone */ }
    browser = null;
  }
}

// In the page: the cell of (exchange, pair), or null.
function cellState(args) {
  const td = document.querySelector(
    `td[data-exchange="${CSS.escape(args.exchange)}"][data-pair="${CSS.escape(args.pair)}"]`);
  if (!td) { return null; }
  // What is on screen: a hidden element (the stale flag of a fresh cell) reads "".
  const q = (sel) => {
    const e = td.querySelector(sel);
    return e ? (e.checkVisibility() ? e.innerText.trim() : "") : null;
  };
  return { classes: td.className, bid: q(".bid"), ask: q(".ask"), mid: q(".mid"),
           age: q(".age"), flag: q(".flag"), stale: td.classList.contains("stale") };
}

async function main() {
  let pw;
  try {
    pw = require(pwDir);
  } catch (e) {
    out({ event: "fatal", error: "playwright-core not found at " + pwDir + ": " + e.message });
    return 3;
  }
  // launch() gives the browser a temporary profile of its own (removed on
  // close); the new context starts with no storage.
  browser = await pw.chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run"],
    timeout: readyTimeout,
  });
  const context = await browser.newContext({ viewport: { width: 1100, height: 640 },
                                             deviceScaleFactor: 1 });
  const page = await context.newPage();
  const problems = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") {
      problems.push(m.type() + ": " + m.text());
    }
  });
  page.on("pageerror", (e) => problems.push("exception: " + e.message));
  page.on("requestfailed", (r) => problems.push("request failed: " + r.url().replace(/token=[^&#]*/g, "token=…") +
                                                " " + (r.failure() && r.failure().errorText)));

  const t0 = Date.now();
  await page.goto(url, { waitUntil: "domcontentloaded", timeout: readyTimeout });
  try {
    await page.waitForSelector("td.q .bid", { timeout: readyTimeout });
  } catch (e) {
    out({ event: "fatal", error: "no rate shown within " + readyTimeout + " ms", problems,
          text: (await page.innerText("body")).slice(0, 2000) });
    return 1;
  }
  out({ event: "ready", ms: Date.now() - t0,
        location: await page.evaluate(() => location.href),
        stored_token: await page.evaluate(() => sessionStorage.getItem("rx.token")) });

  const commands = {
    async cell(c) {
      return { cell: await page.evaluate(cellState, c), problems };
    },
    async wait_bid(c) {
      await page.waitForFunction((a) => {
        const td = document.querySelector(
          `td[data-exchange="${CSS.escape(a.exchange)}"][data-pair="${CSS.escape(a.pair)}"] .bid`);
        return td !== null && td.textContent === a.text;
      }, c, { polling: POLL_MS, timeout: c.timeout_ms });
      return { cell: await page.evaluate(cellState, c) };
    },
    async wait_stale(c) {
      await page.waitForFunction((a) => {
        const td = document.querySelector(
          `td[data-exchange="${CSS.escape(a.exchange)}"][data-pair="${CSS.escape(a.pair)}"]`);
        const flag = td && td.querySelector(".flag");
        return td !== null && td.classList.contains("stale") && flag.checkVisibility() &&
               flag.innerText.trim() === "stale";
      }, c, { polling: POLL_MS, timeout: c.timeout_ms });
      return { cell: await page.evaluate(cellState, c) };
    },
    async wait_status(c) {
      const h = await page.waitForFunction((a) => {
        const li = document.querySelector(`#exchanges li[data-exchange="${CSS.escape(a.exchange)}"]`);
        const st = li && li.querySelector(".state");
        return st && a.states.indexOf(st.textContent) >= 0 ? st.textContent : false;
      }, c, { polling: POLL_MS, timeout: c.timeout_ms });
      return { state: await h.jsonValue() };
    },
    async wait_gone(c) {
      await page.waitForFunction((a) => {
        const sel = `[data-exchange="${CSS.escape(a.exchange)}"]`;
        return document.querySelector(`#head th${sel}, #body td${sel}, #exchanges li${sel}`) === null &&
               document.querySelectorAll("#body td.q").length > 0;
      }, c, { polling: POLL_MS, timeout: c.timeout_ms });
      return { columns: await page.$$eval("#head th[data-exchange]", (ths) => ths.map((t) => t.textContent)) };
    },
    async screenshot(c) {
      fs.mkdirSync(path.dirname(c.path), { recursive: true });
      await page.screenshot({ path: c.path, fullPage: true });
      return { path: c.path };
    },
  };

  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (!line.trim()) { continue; }
    let c;
    try {
      c = JSON.parse(line);
    } catch (e) {
      out({ ok: false, error: "bad command: " + line });
      continue;
    }
    if (c.cmd === "quit") {
      out({ ok: true, cmd: "quit", problems });
      return 0;
    }
    const fn = commands[c.cmd];
    const start = Date.now();
    if (!fn) {
      out({ ok: false, cmd: c.cmd, error: "unknown command" });
      continue;
    }
    try {
      const res = await fn(c);
      out(Object.assign({ ok: true, cmd: c.cmd, ms: Date.now() - start }, res));
    } catch (e) {
      let cell = null;
      try { cell = c.exchange && c.pair ? await page.evaluate(cellState, c) : null; } catch (e2) { /* page gone */ }
      out({ ok: false, cmd: c.cmd, ms: Date.now() - start, error: String(e.message || e).split("\n")[0],
            cell, problems });
    }
  }
  return 0;  // stdin closed: the test is over
}

main().then(async (code) => {
  await cleanup();
  process.exit(code);
}, async (e) => {
  out({ event: "fatal", error: String(e && e.stack || e) });
  await cleanup();
  process.exit(1);
});
