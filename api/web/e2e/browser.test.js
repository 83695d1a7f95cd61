// The demo inbox in a real Chromium (Debian's package), driven by playwright-core.
import test from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { tools, freePort, tempDir, start, create, cleanup } from './herald.js';

const CHROMIUM = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const missing = !existsSync(CHROMIUM);
if (missing && process.env.CI === 'true') throw new Error(`${CHROMIUM} is missing and CI=true: install it (apt-get install -y chromium)`);
const skip = missing && `${CHROMIUM} is missing (apt-get install -y chromium); skipped outside CI`;

let browser;
test.before(async () => {
  if (skip) return;
  const { chromium } = tools('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
test.after(async () => browser && browser.close());

// A server is herald serve --dev on a port of its own, with its data directory.
async function server(env = {}) {
  const dir = tempDir();
  const port = await freePort();
  let h = await start({ port, dir, dev: true, env });
  return {
    url: h.url, port, dir,
    stop: (sig) => h.stop(sig),
    restart: async () => { h = await start({ port, dir, dev: true, env }); },
  };
}

// watch records what a page must not do: console errors (except, when allowNetwork,
// the browser's own lines about a connection it could not make) and uncaught errors.
function watch(page, problems, allowNetwork) {
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (allowNetwork && /Failed to load resource|WebSocket connection to|ERR_INTERNET_DISCONNECTED|ERR_CONNECTION_REFUSED|Failed to fetch/.test(m.text())) return;
    problems.push(page.url() + ': console.error: ' + m.text());
  });
  page.on('pageerror', (e) => problems.push(page.url() + ': uncaught: ' + e.message));
}

// context is a fresh browser context whose pages record the close codes of their
// sockets in window.__closes (the client's behaviour is unchanged).
async function context(o) {
  const ctx = await browser.newContext(o);
  await ctx.addInitScript(() => {
    const W = window.WebSocket;
    window.__closes = [];
    window.WebSocket = class extends W {
      constructor(...a) { super(...a); this.addEventListener('close', (e) => window.__closes.push(e.code)); }
    };
  });
  return ctx;
}

async function open(ctx, url, problems, { allowNetwork = false, sockets } = {}) {
  const page = await ctx.newPage();
  watch(page, problems, allowNetwork);
  if (sockets) page.on('websocket', (ws) => sockets.push(ws));
  await page.goto(url);
  await state(page, 'live');
  return page;
}

const state = (page, v, timeout = 15000) => page.waitForSelector(`#state[data-state="${v}"]`, { timeout });
const snap = (page) => page.evaluate(() => { const s = window.herald.getSnapshot(); return { ...s, seqs: s.items.map((n) => n.seq), stats: window.herald.stats(), error: s.error && String(s.error.message) }; });
const hasSeq = (page, seq, timeout = 15000) => page.waitForFunction((q) => window.herald.getSnapshot().seq >= q, seq, { timeout });
const range = (hi) => Array.from({ length: hi }, (_, i) => hi - i);

test('the demo shows a notification created over REST, live; click marks it read; mark all read', { skip }, async () => {
  const h = await server();
  const problems = [];
  const ctx = await context({ viewport: { width: 860, height: 330 } });
  const page = await open(ctx, h.url + '/demo/', problems);
  await create(h.url, 'alice', 'Ada applied for Backend in Atlas');
  await page.waitForSelector('li[data-unread]:has-text("Ada applied for Backend in Atlas")');
  assert.equal(await page.textContent('#badge'), '1');
  assert.equal(await page.getAttribute('#badge', 'aria-live'), 'polite');
  assert.equal(await page.title(), '(1) Herald demo inbox');
  await page.click('#send');
  await page.waitForSelector('li:has-text("Test notification #1")');
  await create(h.url, 'alice', 'Grace commented on Atlas');
  await hasSeq(page, 3);
  assert.equal(await page.textContent('#badge'), '3');
  assert.equal(await page.textContent('#seq'), '3');
  if (process.env.HERALD_WEB_SCREENSHOT) {
    mkdirSync(dirname(process.env.HERALD_WEB_SCREENSHOT), { recursive: true });
    await page.screenshot({ path: process.env.HERALD_WEB_SCREENSHOT });
  }
  await page.click('li:has-text("Ada applied")');
  await page.waitForFunction(() => document.querySelector('#badge').textContent === '2');
  await page.click('#readall');
  await page.waitForFunction(() => document.querySelector('#badge').textContent === '0' && document.title === 'Herald demo inbox');
  assert.equal(await page.locator('li[data-unread]').count(), 0);
  await ctx.close();
  await h.stop();
  cleanup(h.dir);
  assert.deepEqual(problems, []);
});

test('two tabs share one socket; closing the leader hands over with nothing lost or doubled', { skip }, async () => {
  const h = await server();
  const problems = [];
  const sockets = [];
  const ctx = await context();
  const a = await open(ctx, h.url + '/demo/', problems, { sockets });
  const b = await open(ctx, h.url + '/demo/', problems, { sockets });
  await create(h.url, 'alice', 'one');
  await Promise.all([hasSeq(a, 1), hasSeq(b, 1)]);
  assert.equal(sockets.length, 1, 'one socket for two tabs');
  assert.deepEqual([(await snap(a)).role, (await snap(b)).role], ['leader', 'follower']);
  assert.equal(await b.textContent('#badge'), '1');

  // The follower's mark-read goes over the leader's socket.
  await b.click('li:has-text("one")');
  await Promise.all([a, b].map((p) => p.waitForFunction(() => window.herald.getSnapshot().unread === 0)));

  await create(h.url, 'alice', 'two');
  await a.close({ runBeforeUnload: false });
  await create(h.url, 'alice', 'three');
  await b.waitForFunction(() => window.herald.getSnapshot().role === 'leader');
  await create(h.url, 'alice', 'four');
  await hasSeq(b, 5);
  const s = await snap(b);
  assert.equal(sockets.length, 2, 'the next tab opened the one new socket');
  assert.match(sockets[1].url(), /since=\d+/);
  assert.deepEqual(s.seqs.filter((q) => q !== 2), [5, 4, 3, 1], 'every notification once (seq 2 is the read)');
  assert.deepEqual([s.unread, s.stats.duplicates >= 0, s.state], [3, true, 'live']);
  assert.equal(await b.locator('li').count(), 4);
  await ctx.close();
  await h.stop();
  cleanup(h.dir);
  assert.deepEqual(problems, []);
});

test('offline and back: the page resumes with what was created meanwhile', { skip }, async () => {
  const h = await server();
  const problems = [];
  const ctx = await context();
  const page = await open(ctx, h.url + '/demo/', problems, { allowNetwork: true });
  await create(h.url, 'alice', 'before');
  await hasSeq(page, 1);
  await ctx.setOffline(true);
  await state(page, 'offline');
  await create(h.url, 'alice', 'while offline');
  await create(h.url, 'alice', 'while offline, again');
  await ctx.setOffline(false);
  await hasSeq(page, 3);
  await state(page, 'live');
  const s = await snap(page);
  assert.deepEqual(s.seqs, [3, 2, 1]);
  assert.equal(s.stats.gaps, 0);
  await ctx.close();
  await h.stop();
  cleanup(h.dir);
  assert.deepEqual(problems, []);
});

test('SIGTERM (1001) and a restart: the page resumes with no gap', { skip }, async () => {
  const h = await server();
  const problems = [];
  const ctx = await context();
  const page = await ctx.newPage();
  watch(page, problems, true);
  await page.goto(h.url + '/demo/');
  await state(page, 'live');
  await create(h.url, 'alice', 'before');
  await hasSeq(page, 1);
  await h.stop('SIGTERM');
  await page.waitForFunction(() => window.herald.getSnapshot().state !== 'live');
  assert.equal(await page.evaluate(() => window.__closes[0]), 1001, 'the server closed with 1001');
  await h.restart();
  await create(h.url, 'alice', 'after the restart');
  await create(h.url, 'alice', 'after the restart, again');
  await hasSeq(page, 3, 30000);
  await state(page, 'live');
  const s = await snap(page);
  assert.deepEqual(s.seqs, range(3));
  assert.deepEqual([s.unread, s.stats.gaps, s.stats.duplicates], [3, 0, 0]);
  assert.ok(s.stats.reconnects >= 1);
  await ctx.close();
  await h.stop();
  cleanup(h.dir);
  assert.deepEqual(problems, []);
});

test('HERALD_WS_MAX_PER_USER=1 with sharing off: the second tab gets 4029 and polls', { skip }, async () => {
  const h = await server({ HERALD_WS_MAX_PER_USER: '1' });
  const problems = [];
  const ctx = await context();
  const a = await open(ctx, h.url + '/demo/?share=off', problems);
  const b = await ctx.newPage();
  watch(b, problems, false);
  await b.goto(h.url + '/demo/?share=off&socketRetry=4000');
  await state(b, 'polling');
  assert.deepEqual(await b.evaluate(() => window.__closes), [4029]);
  await create(h.url, 'alice', 'seen by polling');
  await Promise.all([hasSeq(a, 1), hasSeq(b, 1, 15000)]);
  assert.equal(await b.textContent('#badge'), '1');
  const s = await snap(b);
  assert.equal(s.state, 'polling');
  assert.ok(s.stats.polls >= 1);
  // When the first tab goes, the second gets a socket at its next try (every 4 s here,
  // 30 s by default).
  await a.close();
  await state(b, 'live', 20000);
  await ctx.close();
  await h.stop();
  cleanup(h.dir);
  assert.deepEqual(problems, []);
});

