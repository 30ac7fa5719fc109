// The clock page in a headless browser: Debian's Chromium driven by playwright-core, or
// Debian's Firefox ESR driven by puppeteer-core over WebDriver BiDi (playwright-core drives
// only its own patched Firefox builds).
//
//   node clock-page.mjs '{"browser": "chromium", "executable": "/usr/bin/chromium",
//                         "artifacts": "DIR", "prefix": "",
//                         "aliases": ["clock.test"],
//                         "scenarios": [{"name": "...", "url": "http://127.0.0.1:PORT/clock",
//                                        "peers": ["http://127.0.0.1:PORT2"], "screenshots": true}]}'
//
// `aliases` are names that the browser resolves to 127.0.0.1 without asking any resolver:
// names for loopback servers that are not "localhost", whose pages are in no secure context.
//
// For each scenario: a fresh browser context loads the page and waits until it has measured
// its own server and every peer, then reports what the page shows, as one JSON line on
// stdout: the offset and its bound, the round trip, the transport, the verdict in English and
// in Japanese, each peer's row, every console error and page error (Content-Security-Policy
// violations included), and every request that went anywhere but the page's origin and the
// configured peers'. For Firefox the report also says what tried to leave loopback (see
// `firefox` below). tests/browser.rs judges them. Screenshots (desktop and phone widths) go to
// DIR, each name starting with `prefix`.
import http from 'node:http';

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

// In the page before its own script: Content-Security-Policy violations as console errors
// (Chromium logs them itself; Firefox does not pass its own messages to WebDriver BiDi), and
// every WebSocket the page opens, for drivers that do not report them.
function watchPage() {
  document.addEventListener('securitypolicyviolation', (e) => {
    console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
  });
  const Native = window.WebSocket;
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(url, protocols) {
      window.__sockets.push(String(new URL(url, location.href)));
      super(url, protocols);
    }
  };
}

// Chromium through playwright-core, which adds a fresh --user-data-dir of its own.
async function chromium() {
  const { chromium: driver } = await import('playwright-core');
  const aliases = (config.aliases || []).map((n) => `MAP ${n} 127.0.0.1`).join(', ');
  const browser = await driver.launch({
    executablePath: config.executable || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ...(aliases ? [`--host-resolver-rules=${aliases}`] : [])],
  });
  return {
    version: browser.version(),
    async open(viewport) {
      const context = await browser.newContext({ viewport });
      const page = await context.newPage();
      await page.addInitScript(watchPage);
      return {
        page,
        resize: (size) => page.setViewportSize(size),
        waitFor: (fn, arg) => page.waitForFunction(fn, arg, { timeout: WAIT_MS }),
        close: () => context.close(),
      };
    },
    leftLoopback: () => [],
    close: () => browser.close(),
  };
}

// What a stock Firefox would fetch on its own, turned off: updates, telemetry and data
// reporting, Remote Settings (honoured in a release build only with
// MOZ_DISABLE_NONLOCAL_CONNECTIONS set, as below), Normandy and Nimbus studies, captive-portal
// and connectivity checks, DNS over HTTPS, DNS prefetch and speculative connections, Safe
// Browsing, extension, plugin and blocklist updates, push, region and geolocation lookups, and
// the new-tab page's, the address bar's and translation's feeds. puppeteer-core's own
// defaults cover some of these too; these do not rely on them.
const QUIET = {
  'services.settings.server': 'data:,#remote-settings-dummy/v1',
  'app.update.auto': false,
  'app.update.checkInstallTime': false,
  'app.update.disabledForTesting': true,
  'app.normandy.enabled': false,
  'app.normandy.api_url': '',
  'app.shield.optoutstudies.enabled': false,
  'messaging-system.rsexperimentloader.enabled': false,
  'toolkit.telemetry.enabled': false,
  'toolkit.telemetry.unified': false,
  'toolkit.telemetry.archive.enabled': false,
  'toolkit.telemetry.server': '',
  'toolkit.telemetry.newProfilePing.enabled': false,
  'toolkit.telemetry.shutdownPingSender.enabled': false,
  'toolkit.telemetry.firstShutdownPing.enabled': false,
  'toolkit.telemetry.updatePing.enabled': false,
  'toolkit.telemetry.bhrPing.enabled': false,
  'telemetry.fog.test.localhost_port': -1,
  'datareporting.healthreport.uploadEnabled': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'datareporting.usage.uploadEnabled': false,
  'browser.crashReports.unsubmittedCheck.enabled': false,
  'network.captive-portal-service.enabled': false,
  'network.connectivity-service.enabled': false,
  'network.trr.mode': 5,
  'network.dns.disablePrefetch': true,
  'network.predictor.enabled': false,
  'network.prefetch-next': false,
  'network.http.speculative-parallel-limit': 0,
  'network.http.http3.enable': false,
  'network.sntp.pools': '',
  'browser.places.speculativeConnect.enabled': false,
  'browser.safebrowsing.malware.enabled': false,
  'browser.safebrowsing.phishing.enabled': false,
  'browser.safebrowsing.downloads.enabled': false,
  'browser.safebrowsing.downloads.remote.enabled': false,
  'browser.safebrowsing.blockedURIs.enabled': false,
  'browser.safebrowsing.update.enabled': false,
  'extensions.update.enabled': false,
  'extensions.getAddons.cache.enabled': false,
  'extensions.systemAddon.update.enabled': false,
  'extensions.blocklist.enabled': false,
  'media.gmp-manager.updateEnabled': false,
  'security.remote_settings.intermediates.enabled': false,
  'security.remote_settings.crlite_filters.enabled': false,
  'security.OCSP.enabled': 0,
  'dom.push.connection.enabled': false,
  'browser.region.network.url': '',
  'browser.region.update.enabled': false,
  'geo.provider.network.url': '',
  'browser.search.update': false,
  'browser.newtabpage.enabled': false,
  'browser.discovery.enabled': false,
  'browser.topsites.contile.enabled': false,
  'browser.translations.enable': false,
  'browser.ml.enable': false,
  'browser.urlbar.merino.endpointURL': '',
  'browser.urlbar.merino.ohttpConfigURL': '',
  'browser.urlbar.merino.ohttpRelayURL': '',
  'browser.urlbar.quicksuggest.enabled': false,
  'identity.fxaccounts.enabled': false,
};

// A proxy that lets nothing through: every HTTP(S) or WebSocket connection Firefox makes to a
// host that is not loopback (nor an alias) comes here instead, is written down and refused.
// Over a proxy Firefox does not resolve the host itself, so no DNS query leaves either.
async function catcher() {
  const caught = [];
  const server = http.createServer((req, res) => {
    caught.push(`${req.method} ${req.url}`);
    res.writeHead(403, { connection: 'close' }).end();
  });
  server.on('connect', (req, socket) => {
    caught.push(`CONNECT ${req.url}`);
    socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
  });
  server.on('upgrade', (req, socket) => {
    caught.push(`UPGRADE ${req.url}`);
    socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: server.address().port, caught, close: () => server.close() };
}

// Debian's Firefox ESR through puppeteer-core over WebDriver BiDi, in a fresh profile that
// puppeteer-core makes (and removes) in the temporary directory. Nothing may leave loopback:
// background services are off (QUIET); whatever still tries goes to the catcher proxy; and
// MOZ_DISABLE_NONLOCAL_CONNECTIONS, the switch Mozilla's own test harnesses use, makes
// Firefox refuse any socket to an address that is not local, saying so on stderr.
async function firefox() {
  const { default: puppeteer } = await import('puppeteer-core');
  const proxy = await catcher();
  const aliases = (config.aliases || []).join(',');
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: config.executable || '/usr/bin/firefox-esr',
    headless: true,
    timeout: 30000,
    protocolTimeout: 30000,
    env: { ...process.env, MOZ_DISABLE_NONLOCAL_CONNECTIONS: '1' },
    extraPrefsFirefox: {
      ...QUIET,
      'network.proxy.type': 1,
      'network.proxy.http': '127.0.0.1',
      'network.proxy.http_port': proxy.port,
      'network.proxy.ssl': '127.0.0.1',
      'network.proxy.ssl_port': proxy.port,
      'network.proxy.share_proxy_settings': true,
      'network.proxy.no_proxies_on': aliases,
      // Aliases resolve as localhost does, to loopback, asking no resolver.
      'network.dns.localDomains': aliases,
    },
  });
  const refused = [];
  browser.process()?.stderr?.on('data', (chunk) => {
    for (const line of String(chunk).split('\n')) {
      if (line.includes('Non-local network connections are disabled')) refused.push(line);
    }
  });
  return {
    version: await browser.version(),
    async open(viewport) {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      await page.setViewport(viewport);
      await page.evaluateOnNewDocument(watchPage);
      return {
        page,
        resize: (size) => page.setViewport(size),
        waitFor: (fn, arg) => page.waitForFunction(fn, { timeout: WAIT_MS }, arg),
        close: () => context.close(),
      };
    },
    leftLoopback: () => [...proxy.caught, ...refused],
    async close() {
      await browser.close();
      proxy.close();
    },
  };
}

async function scenario(browser, s) {
  const allowed = new Set([...origins(s.url), ...(s.peers || []).flatMap(origins)]);
  const { page, resize, waitFor, close } = await browser.open({ width: 1280, height: 1000 });
  const shot = (what) => page.screenshot({
    path: `${config.artifacts}/${config.prefix || ''}${s.name}-${what}.png`, fullPage: true,
  });
  const consoleErrors = [];
  const foreign = [];
  let requests = 0;
  page.on('console', (m) => {
    // playwright-core says 'warning', puppeteer-core 'warn'.
    const type = m.type() === 'warn' ? 'warning' : m.type();
    if (type === 'error' || type === 'warning') consoleErrors.push(`${type}: ${m.text()}`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
  const note = (url) => {
    requests += 1;
    if (url.startsWith('data:')) return;
    if (!allowed.has(new URL(url).origin === 'null' ? url : new URL(url).origin)) foreign.push(url);
  };
  page.on('request', (r) => note(r.url()));

  const response = await page.goto(s.url, { waitUntil: 'load', timeout: WAIT_MS });
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

  if (s.screenshots) await shot('desktop');
  // The tab coming back into view measures again.
  const runs = result.runs;
  await new Promise((r) => setTimeout(r, 2100));
  await page.evaluate(() => document.dispatchEvent(new Event('visibilitychange')));
  await waitFor((n) => Number(document.documentElement.dataset.runs) > n, runs);
  await page.waitForSelector('html[data-peers-state="done"]', { timeout: WAIT_MS });
  result.remeasured = await read();

  // Japanese, at a phone's width.
  await resize({ width: 390, height: 844 });
  await page.click('button[data-lang="ja"]');
  Object.assign(result, await page.evaluate(() => ({
    ja: {
      lang: document.documentElement.lang,
      verdict: document.getElementById('verdict').textContent,
      leap: document.getElementById('leap').textContent,
    },
    phoneOverflow: document.documentElement.scrollWidth > window.innerWidth,
  })));
  if (s.screenshots) {
    await shot('phone-ja');
    await page.click('button[data-lang="en"]');
    await shot('phone');
  }
  for (const url of await page.evaluate(() => window.__sockets)) note(url);
  result.consoleErrors = consoleErrors;
  result.foreignRequests = foreign;
  result.requests = requests;
  await close();
  return result;
}

const browser = await (config.browser === 'firefox' ? firefox : chromium)();
const results = [];
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
// Read after the browser has quit: what it sends on its way out counts too.
const leftLoopback = browser.leftLoopback();
console.log(JSON.stringify({ browser: browser.version, leftLoopback, scenarios: results }));
