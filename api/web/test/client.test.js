// Unit tests of herald.js: node --test, no dependency. The browser's parts are fakes
// (fakes.js); the client is the real module.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { createHeraldClient, reduce, consistent, backoff, CLOSE_POLICY, EMPTY } from '../herald.js';
import { Clock, Server, tab, browser, flush, n, created, snapshot } from './fakes.js';

const URL_ = 'http://herald.test';

function setup({ share = 'off', random = () => 0.5, token, extra, br, opts = {}, retain = true } = {}) {
  const clock = new Clock();
  const server = new Server();
  const t = tab(server, clock, share === 'off' ? null : br || browser(), extra);
  const tokens = [];
  const getUserToken = token || ((o) => { tokens.push(o); return 'user-jwt'; });
  const client = createHeraldClient({ url: URL_, getUserToken, share, random, now: clock.now, env: t.env, ...opts });
  if (retain) client.retain();
  return { clock, server, t, client, tokens };
}

// live opens the client's socket and delivers a snapshot of items at seq.
async function live(h, seq = 0, items = []) {
  await h.clock.tick(0);
  const s = h.server.last;
  assert.ok(s, 'a socket was opened');
  s.open();
  s.recv(snapshot(seq, items));
  await flush();
  assert.equal(h.client.getSnapshot().state, 'live');
  return s;
}

test('reducer: a snapshot replaces the list, seq == last + 1 applies, older is a duplicate, newer a gap', () => {
  let [s, v] = reduce(EMPTY, snapshot(4, [n(4), n(2)]));
  assert.equal(v, 'snapshot');
  assert.deepEqual([s.seq, s.unread, s.items.map((x) => x.id), s.complete], [4, 2, ['n4', 'n2'], true]);
  [s, v] = reduce(s, created(5, 3));
  assert.equal(v, 'applied');
  assert.deepEqual([s.seq, s.unread, s.items[0].id], [5, 3, 'n5']);
  for (const seq of [5, 4, 1]) assert.equal(reduce(s, created(seq, 9))[1], 'duplicate', `seq ${seq}`);
  assert.equal(reduce(s, created(7, 9))[1], 'gap');
  assert.equal(reduce(EMPTY, created(1, 1))[1], 'gap', 'no base yet');
  assert.equal(reduce(s, { event: 'pong', data: {} })[1], 'ignored');

  [s, v] = reduce(s, { event: 'notification-read', seq: 6, unread: 2, data: n(4, 'T1') });
  assert.equal(s.items.find((x) => x.id === 'n4').readAt, 'T1');
  [s, v] = reduce(s, { event: 'all-notifications-read', seq: 7, unread: 0, data: { readAt: 'T2', updated: 2 } });
  assert.ok(s.items.every((x) => x.readAt));
  assert.equal(s.unread, 0);
  // A snapshot replaces even at an older seq (it answers refresh-unread).
  [s, v] = reduce(s, snapshot(7, []));
  assert.deepEqual([v, s.items.length], ['snapshot', 0]);
});

test('reducer: the badge is the frame\'s unread, never counted; consistent() finds a list that disagrees', () => {
  let [s] = reduce(EMPTY, snapshot(2, [n(2), n(1)]));
  assert.ok(consistent(s));
  // A read of a notification the list does not hold: the count moves, the list cannot.
  [s] = reduce(s, { event: 'notification-read', seq: 3, unread: 1, data: n(99, 'T') });
  assert.equal(s.unread, 1);
  assert.equal(consistent(s), false);
  // An incomplete list (a snapshot of 100 of 250) may hold fewer unread than the count.
  const big = { event: 'unread-notifications', seq: 250, unread: 250, data: [n(250)] };
  [s] = reduce(EMPTY, big);
  assert.deepEqual([s.complete, consistent(s)], [false, true]);
});

test('backoff: full jitter below min(30 s, 0.5 s · 2^attempt)', () => {
  for (let a = 0; a < 12; a++) {
    const cap = Math.min(30000, 500 * 2 ** a);
    assert.equal(backoff(a, () => 0), 0);
    assert.ok(backoff(a, () => 0.999999) < cap && backoff(a, () => 0.999999) >= cap - 1, `attempt ${a}`);
  }
  assert.equal(backoff(20, () => 0.5), 15000);
});

test('the attempt count resets only after 30 s connected', async () => {
  const h = setup({ random: () => 0.999 });
  let s = await live(h);
  const delays = [];
  for (let i = 0; i < 4; i++) {
    s.drop(1006);
    const before = h.server.sockets.length, t0 = h.clock.now();
    while (h.server.sockets.length === before) await h.clock.tick(10);
    delays.push(h.clock.now() - t0);
    s = h.server.last;
    s.open();
    await h.clock.tick(29000); // not yet 30 s
  }
  for (let i = 1; i < delays.length; i++) assert.ok(delays[i] > delays[i - 1], `delays grow: ${delays}`);
  await h.clock.tick(1000); // 30 s connected
  s.drop(1006);
  const before = h.server.sockets.length, t0 = h.clock.now();
  while (h.server.sockets.length === before) await h.clock.tick(10);
  assert.ok(h.clock.now() - t0 <= 500, `after 30 s the first delay is below 0.5 s again, was ${h.clock.now() - t0}`);
  h.client.close();
});

test('every close code has its policy', async (t) => {
  assert.deepEqual(Object.keys(CLOSE_POLICY).map(Number), [1001, 1006, 1008, 1009, 1011, 1013, 4008, 4029]);
  for (const code of [1001, 1006, 1008, 1009, 1011]) {
    await t.test(`${code}: reconnect with since after a backoff`, async () => {
      const h = setup();
      const s = await live(h, 3, [n(3)]);
      s.drop(code);
      await h.clock.tick(0);
      assert.equal(h.client.getSnapshot().state, 'reconnecting');
      assert.equal(h.server.sockets.length, 1, 'not at once');
      await h.clock.tick(250); // random 0.5 of 0.5 s
      assert.equal(h.server.sockets.length, 2);
      assert.equal(h.server.last.since, '3');
      assert.equal(h.client.stats().reconnects, 1);
      h.client.close();
    });
  }
  await t.test('1013: reconnect with since after at least 5 s', async () => {
    const h = setup();
    const s = await live(h, 3, [n(3)]);
    s.drop(1013);
    await h.clock.tick(4990);
    assert.equal(h.server.sockets.length, 1);
    await h.clock.tick(10);
    assert.equal(h.server.sockets.length, 2);
    assert.equal(h.server.last.since, '3');
    h.client.close();
  });
  await t.test('4008: reconnect at once with since, with a backoff when it repeats', async () => {
    const h = setup();
    const s = await live(h, 3, [n(3)]);
    s.drop(4008);
    await h.clock.tick(0);
    assert.equal(h.server.sockets.length, 2);
    assert.equal(h.server.last.since, '3');
    h.server.last.open();
    h.server.last.drop(4008);
    await h.clock.tick(0);
    assert.equal(h.server.sockets.length, 2, 'a second 4008 backs off');
    await h.clock.tick(500);
    assert.equal(h.server.sockets.length, 3);
    h.client.close();
  });
  await t.test('4029: poll GET /notifications/events with since, try a socket every 30 s', async () => {
    const h = setup();
    let events = [created(4, 2)];
    h.server.routes['GET /notifications/events'] = (u) => {
      const since = Number(u.searchParams.get('since'));
      return { body: { data: events.filter((e) => e.seq > since), next: null, seq: 4 } };
    };
    const s = await live(h, 3, [n(3)]);
    s.drop(4029);
    await h.clock.tick(0);
    assert.equal(h.client.getSnapshot().state, 'polling');
    assert.equal(h.server.calls.at(-1).url.searchParams.get('since'), '3');
    assert.deepEqual([h.client.getSnapshot().seq, h.client.getSnapshot().unread], [4, 2]);
    events.push(created(5, 3));
    await h.clock.tick(5000);
    assert.equal(h.client.getSnapshot().seq, 5);
    assert.equal(h.server.sockets.length, 1, 'no socket while polling');
    await h.clock.tick(25000);
    assert.equal(h.server.sockets.length, 2, 'a socket is tried after 30 s');
    assert.equal(h.server.last.since, '5');
    h.server.last.open();
    h.server.last.drop(4029); // still too many
    await h.clock.tick(0);
    assert.equal(h.client.getSnapshot().state, 'polling');
    const polls = h.client.stats().polls;
    await h.clock.tick(30000);
    assert.ok(h.client.stats().polls > polls);
    h.server.last.open(); // allowed now: live once it stays
    await h.clock.tick(1000);
    assert.equal(h.client.getSnapshot().state, 'live');
    const after = h.client.stats().polls;
    await h.clock.tick(20000);
    assert.equal(h.client.stats().polls, after, 'no polling while live');
    h.client.close();
  });
  await t.test('a handshake refused before open asks for a new ws-token', async () => {
    const h = setup();
    await h.clock.tick(0);
    assert.equal(h.server.last.token, 'wt1');
    h.server.last.drop(1006);
    await h.clock.tick(250);
    assert.equal(h.server.last.token, 'wt2');
    h.server.last.open();
    h.server.last.drop(1006);
    await h.clock.tick(500);
    assert.equal(h.server.last.token, 'wt2', 'an opened socket keeps the valid token');
    h.client.close();
  });
});

test('token: one refresh on 401, a second 401 is unauthorized; 429 and 503 wait out Retry-After', async () => {
  const h = setup();
  let answers = [401, 200];
  h.server.routes['GET /notifications/ws-token'] = () => {
    const st = answers.shift() ?? 200;
    return st === 200 ? { body: { wsToken: 'ok', expiresIn: 60 } } : { status: st, body: { error: { code: 'unauthorized', message: 'expired' } } };
  };
  await h.clock.tick(0);
  assert.deepEqual(h.tokens, [{}, { refresh: true }]);
  assert.equal(h.server.sockets.length, 1);
  // The ws-token is reused while valid.
  h.server.last.open();
  h.server.last.drop(1001);
  await h.clock.tick(1000);
  assert.equal(h.server.count('GET /notifications/ws-token'), 2);
  assert.equal(h.server.sockets.length, 2);
  h.client.close();

  const u = setup();
  u.server.routes['GET /notifications/ws-token'] = () => ({ status: 401, body: { error: { code: 'unauthorized', message: 'bad' } } });
  await u.clock.tick(0);
  assert.equal(u.client.getSnapshot().state, 'unauthorized');
  assert.deepEqual(u.tokens, [{}, { refresh: true }]);
  await u.clock.tick(120000);
  assert.equal(u.server.sockets.length, 0);
  assert.equal(u.server.count('GET /notifications/ws-token'), 2, 'no retry after unauthorized');
  u.client.close();

  for (const st of [429, 503]) {
    const r = setup();
    let first = true;
    r.server.routes['GET /notifications/ws-token'] = () => {
      if (!first) return { body: { wsToken: 'ok', expiresIn: 60 } };
      first = false;
      return { status: st, headers: { 'Retry-After': '7' }, body: { error: { code: 'x', message: 'later' } } };
    };
    await r.clock.tick(6990);
    assert.equal(r.server.sockets.length, 0, `${st}: not before Retry-After`);
    await r.clock.tick(10);
    assert.equal(r.server.sockets.length, 1, `${st}: after Retry-After`);
    r.client.close();
  }

  const f = setup();
  f.server.routes['GET /notifications/ws-token'] = () => ({ status: 403, body: { error: { code: 'forbidden', message: 'origin "x" is not allowed (HERALD_ALLOWED_ORIGINS)' } } });
  await f.clock.tick(0);
  const sn = f.client.getSnapshot();
  assert.equal(sn.state, 'forbidden');
  assert.match(sn.error.message, /HERALD_ALLOWED_ORIGINS/);
  f.client.close();
});

test('a gap reconnects with since=last; a duplicate is dropped and counted', async () => {
  const h = setup();
  const s = await live(h, 2, [n(2), n(1)]);
  s.recv(created(3, 3));
  s.recv(created(3, 3));
  s.recv(created(2, 3));
  assert.equal(h.client.stats().duplicates, 2);
  s.recv(created(5, 5)); // 4 is missing
  await h.clock.tick(0);
  assert.equal(s.closedWith, 1000);
  assert.equal(h.server.sockets.length, 2);
  assert.equal(h.server.last.since, '3');
  assert.deepEqual([h.client.getSnapshot().seq, h.client.stats().gaps], [3, 1]);
  h.server.last.open();
  h.server.last.recv(created(4, 4));
  h.server.last.recv(created(5, 5));
  assert.deepEqual(h.client.getSnapshot().items.map((x) => x.seq), [5, 4, 3, 2, 1]);
  h.client.close();
});

test('self-check: a list that disagrees with the count asks for refresh-unread, once per seq', async () => {
  const h = setup();
  const s = await live(h, 2, [n(2), n(1)]);
  s.recv({ event: 'notification-read', seq: 3, unread: 1, data: n(7, 'T') });
  assert.deepEqual(s.sent.map((f) => f.event), ['refresh-unread']);
  assert.equal(h.client.getSnapshot().unread, 1, 'the badge is the frame\'s');
  s.recv(snapshot(3, [n(2)]));
  assert.ok(consistent(h.client.getSnapshot()));
  assert.equal(h.client.stats().refreshes, 1);
  h.client.close();
});

test('an application ping after 25 s of silence; a socket whose pong does not come is dropped', async () => {
  const h = setup();
  const s = await live(h, 0);
  await h.clock.tick(24999);
  assert.equal(s.sent.length, 0);
  await h.clock.tick(1);
  assert.deepEqual(s.sent, [{ event: 'ping' }]);
  s.recv({ event: 'pong', data: {} });
  await h.clock.tick(24999);
  assert.equal(s.sent.length, 1, 'the pong counts as traffic');
  await h.clock.tick(1);
  assert.equal(s.sent.length, 2);
  await h.clock.tick(10000); // no pong
  assert.equal(s.closedWith, 1000);
  assert.equal(h.client.getSnapshot().state, 'reconnecting');
  await h.clock.tick(250);
  assert.equal(h.server.sockets.length, 2);
  h.client.close();
});

test('a hidden tab does not retry; visibilitychange, online and pageshow reconnect at once; pagehide closes', async () => {
  const h = setup();
  const s = await live(h, 1, [n(1)]);
  h.t.document.visibilityState = 'hidden';
  s.drop(1006);
  await h.clock.tick(60000);
  assert.equal(h.server.sockets.length, 1, 'no retry while hidden');
  h.t.document.visibilityState = 'visible';
  h.t.document.fire('visibilitychange');
  await h.clock.tick(0);
  assert.equal(h.server.sockets.length, 2);
  assert.equal(h.server.last.since, '1');
  h.server.last.open();

  h.t.navigator.onLine = false;
  h.t.window.fire('offline');
  await h.clock.tick(0);
  assert.equal(h.client.getSnapshot().state, 'offline');
  await h.clock.tick(60000);
  assert.equal(h.server.sockets.length, 2);
  h.t.navigator.onLine = true;
  h.t.window.fire('online');
  await h.clock.tick(0);
  assert.equal(h.server.sockets.length, 3);
  h.server.last.open();

  h.t.window.fire('pagehide', { persisted: true });
  await h.clock.tick(0);
  assert.equal(h.server.last.closedWith, 1000);
  assert.equal(h.client.getSnapshot().state, 'idle');
  h.t.window.fire('pageshow', { persisted: true });
  await h.clock.tick(0);
  assert.equal(h.server.sockets.length, 4);
  h.client.close();
});

test('StrictMode: retain, release, retain opens one socket; the last release closes it after the linger', async () => {
  const h = setup({ retain: false });
  const r1 = h.client.retain();
  r1();
  const r2 = h.client.retain();
  await h.clock.tick(0);
  assert.equal(h.server.sockets.length, 1);
  const s = h.server.last;
  s.open();
  await h.clock.tick(5000);
  assert.equal(s.readyState, 1, 'the socket stays');
  r1(); // a release runs once
  assert.equal(s.readyState, 1);
  r2();
  await h.clock.tick(999);
  assert.equal(s.readyState, 1);
  await h.clock.tick(1);
  assert.equal(s.closedWith, 1000);
  assert.equal(h.client.getSnapshot().state, 'idle');
  assert.equal(h.server.sockets.length, 1);
});

test('subscribe and getSnapshot fit useSyncExternalStore: the same object until something changes', async () => {
  const h = setup();
  let calls = 0;
  const unsub = h.client.subscribe(() => calls++);
  const a = h.client.getSnapshot();
  assert.equal(h.client.getSnapshot(), a);
  const s = await live(h, 0);
  assert.ok(calls > 0);
  const b = h.client.getSnapshot();
  s.recv(created(0, 0)); // a duplicate changes nothing
  assert.equal(h.client.getSnapshot(), b);
  s.recv(created(1, 1));
  assert.notEqual(h.client.getSnapshot(), b);
  unsub();
  const c = calls;
  s.recv(created(2, 2));
  assert.equal(calls, c);
  assert.equal(h.client.getServerSnapshot().state, 'idle');
  h.client.close();
});

test('import and create touch no browser global (server-side rendering)', async () => {
  const mod = await import('../herald.js?ssr');
  const c = mod.createHeraldClient({ url: URL_, getUserToken: () => 't', env: {} });
  assert.equal(c.getSnapshot().state, 'idle');
  assert.equal(c.getServerSnapshot().unread, 0);
  const src = readFileSync(new URL('../herald.js', import.meta.url), 'utf8');
  for (const g of ['window', 'document', 'navigator', 'localStorage']) {
    assert.ok(!new RegExp(`(^|[^.'\\w])${g}\\.`).test(src), `herald.js reaches ${g} directly`);
  }
});

test('markRead goes over the socket with a ref when live, else REST; an error frame with its ref rejects', async () => {
  const h = setup();
  const patched = [];
  h.server.routes['PATCH /notifications/n1/read'] = () => { patched.push('n1'); return { body: n(1, 'T') }; };
  const s = await live(h, 2, [n(2), n(1)]);
  const p = h.client.markRead('n2');
  const f = s.sent.at(-1);
  assert.deepEqual([f.event, f.data.id, typeof f.ref], ['mark-read', 'n2', 'string']);
  s.recv({ event: 'notification-read', seq: 3, unread: 1, data: n(2, 'T') });
  await p;
  const bad = h.client.markRead('nx');
  const g = s.sent.at(-1);
  s.recv({ event: 'error', ref: g.ref, data: { code: 'not_found', message: 'no such notification' } });
  await assert.rejects(bad, (e) => e.code === 'not_found');
  assert.equal(await h.client.markRead('n2'), undefined, 'read already: nothing to send');

  s.drop(1006);
  await h.clock.tick(0);
  const q = h.client.markRead('n1');
  await h.clock.tick(0);
  await q;
  assert.deepEqual(patched, ['n1'], 'REST while the socket is down');
  h.client.close();
});

test('markAllRead over the socket when live, else REST', async () => {
  const h = setup();
  let rest = 0;
  h.server.routes['PATCH /notifications/read-all'] = () => { rest++; return { body: { updated: 1, readAt: 'T' } }; };
  const s = await live(h, 1, [n(1)]);
  await h.client.markAllRead();
  assert.deepEqual(s.sent.map((f) => f.event), ['mark-all-read']);
  s.drop(1006);
  await h.client.markAllRead();
  assert.equal(rest, 1);
  h.client.close();
});

test('loadMore pages the unread list by before, at the store\'s seq', async () => {
  const h = setup();
  const pages = [];
  h.server.routes['GET /notifications/unread'] = (u) => {
    pages.push(u.searchParams.get('before'));
    return { body: { data: [n(2), n(1)], count: 2, total: 102, seq: 102, next: null } };
  };
  const items = [];
  for (let i = 102; i > 2; i--) items.push(n(i));
  const s = await live(h, 102, items);
  s.recv({ event: 'unread-notifications', seq: 102, unread: 102, data: items.slice(0, 100) });
  const p = h.client.loadMore();
  await h.clock.tick(0);
  assert.equal(await p, false);
  assert.deepEqual(pages, ['3']);
  const sn = h.client.getSnapshot();
  assert.deepEqual([sn.items.length, sn.complete], [102, true]);
  assert.deepEqual(h.client.stats().refreshes, 0);
  h.client.close();
});

test('persist: a warm start resumes with since from the saved state', async () => {
  const saved = new Map();
  const storage = { getItem: (k) => saved.get(k) ?? null, setItem: (k, v) => saved.set(k, v) };
  const h = setup({ retain: false, opts: { persist: { storage, key: 'k' } } });
  h.client.retain();
  const s = await live(h, 4, [n(4)]);
  s.recv(created(5, 2));
  h.client.close();
  assert.equal(JSON.parse(saved.get('k')).seq, 5);

  const w = setup({ retain: false, opts: { persist: { storage, key: 'k' } } });
  w.client.retain();
  assert.deepEqual([w.client.getSnapshot().seq, w.client.getSnapshot().unread], [5, 2]);
  await w.clock.tick(0);
  assert.equal(w.server.last.since, '5');
  w.client.close();
});

test('one socket per browser: the leader passes raw frames; the next tab resumes from its own seq when the leader goes', async () => {
  const clock = new Clock();
  const server = new Server();
  const br = browser();
  const mk = () => {
    const t = tab(server, clock, br);
    return createHeraldClient({ url: URL_, getUserToken: () => 'u', random: () => 0.5, now: clock.now, env: t.env });
  };
  const a = mk(), b = mk(), c = mk();
  a.retain();
  await clock.tick(0);
  b.retain();
  c.retain();
  await clock.tick(0);
  assert.equal(server.sockets.length, 1, 'one socket for three tabs');
  assert.equal(a.getSnapshot().role, 'leader');
  const s = server.last;
  s.open();
  s.recv(snapshot(2, [n(2), n(1)]));
  await clock.tick(0);
  for (const x of [a, b, c]) assert.deepEqual([x.getSnapshot().seq, x.getSnapshot().state], [2, 'live']);
  s.recv(created(3, 3));
  await clock.tick(0);
  assert.deepEqual([b.getSnapshot().seq, c.getSnapshot().unread], [3, 3]);

  // A follower's mark-read goes over the leader's socket, with its ref.
  const p = b.markRead('n1');
  await clock.tick(0);
  const f = s.sent.at(-1);
  assert.deepEqual([f.event, f.data.id], ['mark-read', 'n1']);
  s.recv({ event: 'notification-read', seq: 4, unread: 2, data: n(1, 'T') });
  await clock.tick(0);
  await p;

  // The leader goes; frame 5 was in flight to it and is lost with it.
  a.close();
  await clock.tick(0);
  assert.equal(s.closedWith, 1000);
  assert.equal(server.sockets.length, 2, 'the next tab connects');
  const s2 = server.last;
  assert.equal(s2.since, '4', 'from its own seq');
  s2.open();
  s2.recv(created(5, 3));
  s2.recv(created(6, 4));
  await clock.tick(0);
  for (const x of [b, c]) {
    const sn = x.getSnapshot();
    assert.deepEqual(sn.items.map((i) => i.seq), [6, 5, 3, 2, 1]);
    assert.deepEqual([sn.seq, sn.unread, x.stats().gaps, x.stats().duplicates], [6, 4, 0, 0]);
  }
  assert.equal(server.open().length, 1);

  // A tab that opens late catches up from the leader's state.
  const d = mk();
  d.retain();
  await clock.tick(0);
  assert.deepEqual([d.getSnapshot().seq, d.getSnapshot().role], [6, 'follower']);
  assert.equal(server.sockets.length, 2);
  for (const x of [b, c, d]) x.close();
});

test('without Web Locks, one socket per tab, still correct', async () => {
  const clock = new Clock();
  const server = new Server();
  const mk = () => {
    const t = tab(server, clock, null);
    t.env.BroadcastChannel = browser().BC;
    return createHeraldClient({ url: URL_, getUserToken: () => 'u', now: clock.now, env: t.env });
  };
  const a = mk(), b = mk();
  a.retain();
  b.retain();
  await clock.tick(0);
  assert.equal(server.sockets.length, 2);
  for (const s of server.sockets) { s.open(); s.recv(snapshot(1, [n(1)])); }
  assert.deepEqual([a.getSnapshot().role, b.getSnapshot().unread], ['solo', 1]);
  a.close();
  b.close();
});

test('the client is at most 6 KB gzipped', () => {
  const size = gzipSync(readFileSync(new URL('../herald.js', import.meta.url)), { level: 9 }).length;
  assert.ok(size <= 6144, `herald.js is ${size} bytes gzipped`);
});
