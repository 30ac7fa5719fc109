// The clock page in headless Chromium (Debian's package, driven by playwright-core).
//
//   node clock-page.mjs '{"chromium": "/usr/bin/chromium", "artifacts": "DIR",
//                         "hostRules": "MAP clock.test 127.0.0.1",
//                         "scenarios": [{"name": "...", "url": "http://127.0.0.1:PORT/clock",
//                                        "peers": ["http://127.0.0.1:PORT2"], "screenshots": true}]}'
//
// For each scenario: a fresh browser context loads the page and waits until it has measured
// its own server and every peer, then reports what the page shows, as one JSON line on
// stdout: the offset and its bound, the round trip, the transport, the verdict in English and
// in Japanese, each peer's row, every console error and page error, and every request that
// went anywhere but the page's origin and the configured peers'. tests/browser.rs judges
// them. Screenshots (desktop and phone widths) go to DIR.
import { chromium } from 'playwright-core';

const config = JSON.parse(process.argv[2] || '{}');
const WAIT_MS = 20000;

// Nothing here may hang the test: a last resort if the browser does.
setTimeout(() => {
  console.error('clock-page.mjs: no result within 90 s');
  process.exit(2);
}, 90000).unref();

const origins = (url) => {
  const u = new URL(url);
  const secure = u.protocol === 'https:' || u.protocol === 'wss:';
  return [(secure ? 'https://' : 'http://') + u.host, (secure ? 'wss://' : 'ws://') + u.host];
};

async function scenario(browser, s) {
  const allowed = new Set([...origins(s.url), ...(s.peers || []).flatMap(origins)]);
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  const consoleErrors = [];
  const foreign = [];
  let requests = 0;
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') consoleErrors.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
  const note = (url) => {
    requests += 1;
    if (url.startsWith('data:')) return;
    if (!allowed.has(new URL(url).origin === 'null' ? url : new URL(url).origin)) foreign.push(url);
  };
  page.on('request', (r) => note(r.url()));
  page.on('websocket', (ws) => note(ws.url()));

  const response = await page.goto(s.url, { waitUntil: 'load' });
  const headers = response.headers();
  await page.waitForSelector('html[data-state="done"], html[data-state="failed"]', { timeout: WAIT_MS });
  await page.waitForSelector('html[data-peers-state="done"]', { timeout: WAIT_MS });
  const read = () => page.evaluate(() => {
    const $ = (id) => document.getElementById(id);
    const num = (v) => (v === undefined ? null : Number(v));
    return {
      state: document.documentElement.dataset.state,
      runs: Number(document.documentElement.dataset.runs),
      verdict: $('verdict').textContent,
      offsetMs: num($('offset').dataset.ms),
      errorMs: num($('offset').dataset.errorMs),
      offsetText: $('offset').textContent,
      delayMs: num($('delay').dataset.ms),
      via: $('via').dataset.via || null,
      viaText: $('via').textContent,
      resolutionMs: num($('resolution').dataset.ms),
      resolutionText: $('resolution').textContent,
      crossOriginIsolated: self.crossOriginIsolated,
      leap: $('leap').textContent,
      clock: $('zoned').textContent,
      utc: $('utc').textContent,
      plotDots: $('plot').querySelectorAll('circle').length,
      sampleRows: $('samples').tBodies[0].rows.length,
      servers: [...$('servers').tBodies[0].rows].map((tr) => ({
        text: tr.textContent,
        ms: tr.dataset.ms === undefined ? null : Number(tr.dataset.ms),
        errorMs: tr.dataset.errorMs === undefined ? null : Number(tr.dataset.errorMs),
        agrees: tr.dataset.agrees === undefined ? null : tr.dataset.agrees === 'true',
      })),
      serversSummary: $('servers-summary').textContent,
    };
  });
  const result = { name: s.name, headers, ...(await read()) };

  if (s.screenshots) {
    await page.screenshot({ path: `${config.artifacts}/${s.name}-desktop.png`, fullPage: true });
  }
  // The tab coming back into view measures again.
  const runs = result.runs;
  await page.waitForTimeout(2100);
  await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
  await page.waitForFunction((n) => Number(document.documentElement.dataset.runs) > n, runs, { timeout: WAIT_MS });
  await page.waitForSelector('html[data-peers-state="done"]', { timeout: WAIT_MS });
  result.remeasured = await read();

  // Japanese, at a phone's width.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click('button[data-lang="ja"]');
  result.ja = {
    lang: await page.evaluate(() => document.documentElement.lang),
    verdict: await page.textContent('#verdict'),
    leap: await page.textContent('#leap'),
  };
  result.phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  if (s.screenshots) {
    await page.screenshot({ path: `${config.artifacts}/${s.name}-phone-ja.png`, fullPage: true });
    await page.click('button[data-lang="en"]');
    await page.screenshot({ path: `${config.artifacts}/${s.name}-phone.png`, fullPage: true });
  }
  result.consoleErrors = consoleErrors;
  result.foreignRequests = foreign;
  result.requests = requests;
  await context.close();
  return result;
}

const browser = await chromium.launch({
  executablePath: config.chromium || '/usr/bin/chromium',
  headless: true,
  // playwright-core adds a fresh --user-data-dir of its own.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    // Names for loopback servers that are not "localhost": pages in no secure context.
    ...(config.hostRules ? [`--host-resolver-rules=${config.hostRules}`] : [])],
});
const results = [];
const version = browser.version();
try {
  for (const s of config.scenarios || []) {
    try {
      results.push(await scenario(browser, s));
    } catch (e) {
      results.push({ name: s.name, error: String(e && e.stack || e) });
    }
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify({ browser: version, scenarios: results }));
