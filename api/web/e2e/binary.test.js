// The client against the real binary, with the ws package as its WebSocket.
import test from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHeraldClient } from '../herald.js';
import { tools, freePort, tempDir, start, userToken, create, until, cleanup } from './herald.js';

const WS = tools('ws');

function client(url, user, extra = {}) {
  const tok = userToken(user);
  return createHeraldClient({ url, getUserToken: () => tok, share: 'off', env: { WebSocket: WS, navigator: undefined }, ...extra });
}

const seqs = (s) => s.items.map((n) => n.seq);
const range = (hi) => Array.from({ length: hi }, (_, i) => hi - i);

test('resume after SIGKILL and a restart: every notification once, no gap', async () => {
  const dir = tempDir();
  const port = await freePort();
  let h = await start({ port, dir });
  const c = client(h.url, 'kim');
  c.retain();
  await until(c, (s) => s.state === 'live' && s.seq === 0, 'live');
  for (let i = 1; i <= 3; i++) await create(h.url, 'kim', 'before ' + i);
  await until(c, (s) => s.seq === 3, 'seq 3');

  await h.stop('SIGKILL');
  await until(c, (s) => s.state !== 'live', 'the socket noticed');
  h = await start({ port, dir });
  // Created while the client waits out its backoff: replayed by since=3.
  for (let i = 4; i <= 6; i++) await create(h.url, 'kim', 'after ' + i);
  await until(c, (s) => s.state === 'live' && s.seq === 6, 'seq 6 after the restart');
  await create(h.url, 'kim', 'live 7');
  const s = await until(c, (s) => s.seq === 7, 'seq 7');
  assert.deepEqual(seqs(s), range(7));
  assert.equal(s.unread, 7);
  const st = c.stats();
  assert.deepEqual([st.gaps, st.duplicates, st.snapshots], [0, 0, 1], JSON.stringify(st));
  assert.ok(st.connects >= 2);
  c.close();
  await h.stop();
  cleanup(dir);
});

test('4008: a socket too slow to read is closed and resumes with since, losing nothing', async () => {
  const dir = tempDir();
  const port = await freePort();
  const h = await start({ port, dir, env: { HERALD_WS_QUEUE: '4', HERALD_SERVICE_RATE: '0', HERALD_MAX_PAYLOAD: '65536' } });
  let sock = null;
  let closes = [];
  class Slow extends WS {
    constructor(url) {
      super(url);
      sock = this;
      this.addEventListener('close', (e) => closes.push(e.code));
    }
  }
  const c = client(h.url, 'sam', { env: { WebSocket: Slow, navigator: undefined } });
  c.retain();
  await until(c, (s) => s.state === 'live' && s.seq === 0, 'live');
  const first = sock;
  first._socket.pause(); // stops reading: the server's writes back up
  const big = 'x'.repeat(60000);
  const n = 300;
  const batch = await fetch(h.url + '/notifications/batch', {
    method: 'POST',
    headers: { Authorization: 'Bearer web-test-key', 'Content-Type': 'application/json' },
    body: JSON.stringify({ items: Array.from({ length: n }, (_, i) => ({ receiverId: 'sam', type: 'bulk', payload: { i, big } })) }),
  });
  assert.equal(batch.status, 201, await batch.text());
  // Wait for the server to give up on the socket, then read again: the buffered frames
  // and the 4008 close frame come through.
  for (;;) {
    const m = await (await fetch(h.url + '/metrics')).text();
    const v = /^herald_ws_slow_consumer_closes_total (\d+)/m.exec(m);
    if (v && Number(v[1]) > 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  first._socket.resume();
  const s = await until(c, (s) => s.state === 'live' && s.seq === n, 'all ' + n + ' after the 4008', 30000);
  assert.equal(closes[0], 4008, 'closed with 4008, got ' + closes);
  assert.deepEqual(seqs(s), range(n));
  assert.equal(s.unread, n);
  assert.equal(c.stats().gaps, 0);
  assert.ok(c.stats().connects >= 2);
  c.close();
  await h.stop();
  cleanup(dir);
});

// raw sends one request and returns its status and headers (Node's fetch may not send Origin).
function raw(url, method, headers) {
  return new Promise((resolve, reject) => {
    const r = http.request(url, { method, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    r.on('error', reject);
    r.end();
  });
}

test('CORS and the ws-token 403: an allowed origin gets through, another learns why', async () => {
  const dir = tempDir();
  const port = await freePort();
  const app = 'http://app.test:5173';
  const h = await start({ port, dir, env: { HERALD_ALLOWED_ORIGINS: app } });
  const pre = await raw(h.url + '/notifications/ws-token', 'OPTIONS', { Origin: app, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers['access-control-allow-origin'], app);
  assert.match(pre.headers['access-control-allow-headers'], /Authorization/);
  const bad = await raw(h.url + '/notifications/ws-token', 'OPTIONS', { Origin: 'http://evil.test', 'Access-Control-Request-Method': 'GET' });
  assert.equal(bad.status, 403);
  assert.equal(bad.headers['access-control-allow-origin'], undefined);

  const withOrigin = (origin) => {
    class O extends WS { constructor(url) { super(url, { origin }); } }
    const f = (u, init = {}) => new Promise((resolve, reject) => {
      const r = http.request(u, { method: init.method || 'GET', headers: { ...init.headers, Origin: origin } }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode, ok: res.statusCode < 300, headers: { get: (k) => res.headers[k.toLowerCase()] ?? null }, json: async () => JSON.parse(body) }));
      });
      r.on('error', reject);
      r.end(init.body);
    });
    return client(h.url, 'ola', { env: { WebSocket: O, fetch: f, navigator: undefined } });
  };
  const good = withOrigin(app);
  good.retain();
  await until(good, (s) => s.state === 'live', 'live from the allowed origin');
  const evil = withOrigin('http://evil.test');
  evil.retain();
  const s = await until(evil, (s) => s.state === 'forbidden', 'forbidden');
  assert.equal(s.error.status, 403);
  assert.match(s.error.message, /HERALD_ALLOWED_ORIGINS/);
  good.close();
  evil.close();
  await h.stop();
  cleanup(dir);
});
