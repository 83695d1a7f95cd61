// Herald browser client: one dependency-free ES module (types in herald.d.ts).
// Nothing here touches window, document or navigator before retain(): safe to import
// while rendering on a server. See the README, "Browser client".

const LOG = { 'new-notification': 1, 'notification-read': 1, 'all-notifications-read': 1 };
const MAX_ITEMS = 500;

/** What each close code makes the client do (the README's table). */
export const CLOSE_POLICY = {
  1001: 'resume', // server shutting down: reconnect with since, after a backoff
  1006: 'resume', // connection lost (or a refused handshake): backoff, fresh ws-token
  1008: 'resume', // too many frames: backoff
  1009: 'resume', // a frame too big: backoff
  1011: 'resume', // server error: backoff
  1013: 'pause', // storage unavailable: backoff of at least 5 s
  4008: 'now', // too slow to read: reconnect at once with since (backoff if it repeats)
  4029: 'poll', // too many sockets: poll GET /notifications/events, try a socket every 30 s
};

/** Full-jitter backoff: a random delay below min(max, base * 2^attempt) ms. */
export function backoff(attempt, random = Math.random, base = 500, max = 30000) {
  return Math.floor(random() * Math.min(max, base * 2 ** attempt));
}

export const EMPTY = { seq: null, unread: 0, items: [], complete: false };

/**
 * Applies one server frame to a store {seq, unread, items, complete}, strictly by seq.
 * Returns [store, verdict]: 'snapshot' (the list replaced), 'applied' (seq == last + 1),
 * 'duplicate' (seq <= last, dropped), 'gap' (seq > last + 1, or no base yet: reconnect
 * with since) or 'ignored' (not a log frame). The count is always the frame's unread.
 */
export function reduce(s, f) {
  const e = f && f.event;
  if (e === 'unread-notifications') {
    const items = Array.isArray(f.data) ? f.data : [];
    return [{ seq: f.seq, unread: f.unread, items, complete: items.length >= f.unread }, 'snapshot'];
  }
  if (!LOG[e] || typeof f.seq !== 'number') return [s, 'ignored'];
  if (s.seq == null || f.seq > s.seq + 1) return [s, 'gap'];
  if (f.seq <= s.seq) return [s, 'duplicate'];
  const d = f.data || {};
  let items = s.items, complete = s.complete;
  if (e === 'new-notification') {
    items = [d, ...items.filter((n) => n.id !== d.id)];
    if (items.length > MAX_ITEMS) {
      if (items.slice(MAX_ITEMS).some((n) => !n.readAt)) complete = false;
      items = items.slice(0, MAX_ITEMS);
    }
  } else if (e === 'notification-read') {
    items = items.map((n) => (n.id === d.id ? d : n));
  } else {
    items = items.map((n) => (n.readAt ? n : { ...n, readAt: d.readAt }));
  }
  return [{ seq: f.seq, unread: f.unread, items, complete }, 'applied'];
}

/** Whether the list agrees with the count: never more unread items than unread, and
 * exactly as many when the list holds every unread notification. */
export function consistent(s) {
  let n = 0;
  for (const x of s.items) if (!x.readAt) n++;
  return s.complete ? n === s.unread : n <= s.unread;
}

class HttpError extends Error {
  constructor(status, body, retryAfter) {
    super((body && body.error && body.error.message) || 'HTTP ' + status);
    this.status = status;
    this.code = body && body.error && body.error.code;
    this.retryAfter = retryAfter;
  }
}

export function createHeraldClient(o) {
  const g = globalThis;
  const env = (k) => (o.env && k in o.env ? o.env[k] : g[k]);
  const base = o.url.replace(/\/+$/, '');
  const name = o.name || 'herald:' + base;
  const now = o.now || Date.now;
  const random = o.random || Math.random;
  const set = (f, ms) => env('setTimeout')(f, ms);
  const clear = (t) => t && env('clearTimeout')(t);
  const pingAfter = o.pingAfter || 25000, pongWait = o.pongWait || 10000;
  const pollEvery = o.pollInterval || 5000, socketEvery = o.socketRetry || 30000;
  const tab = random().toString(36).slice(2, 8);
  const stats = { connects: 0, reconnects: 0, gaps: 0, duplicates: 0, snapshots: 0, frames: 0, polls: 0, refreshes: 0 };
  const listeners = new Set();
  const pend = new Map();
  let store = EMPTY, state = 'idle', role = null, error = null, snap;
  let refs = 0, running = false, lingerT = 0, ws = null, connecting = false, attempt = 0;
  let retryT = 0, liveT = 0, quietT = 0, pongT = 0, stableT = 0, pollT = 0, pollFrom = 0, refN = 0;
  let wsTok = null, bc = null, releaseLock = null, abort = null, checked = null, unhook = null;

  const persist = o.persist && {
    key: o.persist.key || 'herald:' + base,
    get storage() { return o.persist.storage || env('localStorage'); },
  };

  function emit() {
    snap = { state, seq: store.seq, unread: store.unread, items: store.items, complete: store.complete, role, error };
    if (persist && store.seq != null) {
      try { persist.storage.setItem(persist.key, JSON.stringify({ seq: store.seq, unread: store.unread, items: store.items.slice(0, 100) })); } catch {}
    }
    for (const l of [...listeners]) l();
  }
  emit();

  function setState(v, err = null) {
    if (v === state && err === error) return;
    state = v;
    error = err;
    if (role === 'leader') post({ t: 's', v, hidden: hidden() });
    emit();
  }
  const post = (m) => { try { bc && bc.postMessage(m); } catch {} };
  const hidden = () => { const d = env('document'); return !!d && d.visibilityState === 'hidden'; };
  const offline = () => { const n = env('navigator'); return !!n && n.onLine === false; };

  // ---- REST, with the user token (one refresh on 401) ----
  async function rest(path, init = {}, again = false) {
    const tok = await o.getUserToken(again ? { refresh: true } : {});
    const headers = { Authorization: 'Bearer ' + tok };
    if (init.body) headers['Content-Type'] = 'application/json';
    const res = await env('fetch')(base + path, { ...init, headers });
    if (res.status === 401 && !again) return rest(path, init, true);
    if (!res.ok) {
      let body = null;
      try { body = await res.json(); } catch {}
      throw new HttpError(res.status, body, Number(res.headers.get('Retry-After')) || 0);
    }
    return res.status === 204 ? null : res.json();
  }

  async function wsToken() {
    if (wsTok && now() < wsTok.exp) return wsTok.t;
    const r = await rest('/notifications/ws-token');
    wsTok = { t: r.wsToken, exp: now() + Math.max(0, r.expiresIn - 5) * 1000 };
    return wsTok.t;
  }

  // ---- frames ----
  function feed(text) {
    if (role === 'leader') post({ t: 'f', d: text });
    let f;
    try { f = JSON.parse(text); } catch { return; }
    apply(f);
  }

  function apply(f) {
    stats.frames++;
    if (f.event === 'error') {
      const p = f.ref && pend.get(f.ref);
      if (p) { done(f.ref); p.rej(Object.assign(new Error(f.data && f.data.message), { code: f.data && f.data.code })); }
      return;
    }
    const [n, v] = reduce(store, f);
    if (v === 'duplicate') stats.duplicates++;
    else if (v === 'gap') gap();
    else if (v !== 'ignored') {
      if (v === 'snapshot') stats.snapshots++;
      store = n;
      for (const [ref, p] of pend) if (store.items.some((x) => x.id === p.id && x.readAt)) { done(ref); p.res(); }
      emit();
      if (!consistent(store) && checked !== store.seq) {
        checked = store.seq;
        stats.refreshes++;
        send({ event: 'refresh-unread' });
      }
    }
  }

  function gap() {
    stats.gaps++;
    if (role === 'follower') return post({ t: 'hello' });
    if (ws) { const s = ws; drop(); try { s.close(1000); } catch {} connect(true); }
  }

  // send puts a client frame on the socket (the leader's, for a follower); false when
  // there is no live socket.
  function send(f) {
    if (role === 'follower') {
      if (state !== 'live') return false;
      post({ t: 'c', f });
      return true;
    }
    if (!ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(f));
    return true;
  }

  function done(ref) { const p = pend.get(ref); if (p) { clear(p.t); pend.delete(ref); } }

  // ---- the socket (leader or a tab of its own) ----
  async function connect(force) {
    clear(retryT);
    retryT = 0;
    if (!running || ws || connecting || role === 'follower' || state === 'unauthorized' || state === 'forbidden') return;
    if (offline()) return setState('offline');
    if (hidden() && !force) return setState('reconnecting');
    connecting = true;
    if (state !== 'polling') setState(stats.connects ? 'reconnecting' : 'connecting');
    let tok;
    try {
      tok = await wsToken();
    } catch (e) {
      connecting = false;
      return failed(e);
    }
    connecting = false;
    if (!running || role === 'follower' || ws) return;
    const q = store.seq != null ? '&since=' + store.seq : '';
    const WS = env('WebSocket');
    const s = (ws = new WS(base.replace(/^http/, 'ws') + '/notifications/ws?token=' + encodeURIComponent(tok) + q));
    let opened = false;
    s.onopen = () => {
      if (ws !== s) return;
      opened = true;
      stats.connects++;
      stableT = set(() => { attempt = 0; }, 30000);
      quiet();
      // A socket tried while polling may yet be refused with 4029: live once it stays.
      if (state === 'polling') liveT = set(live, 1000);
      else live();
    };
    s.onmessage = (m) => {
      if (ws !== s) return;
      quiet();
      live();
      feed(m.data);
    };
    s.onerror = () => {}; // the close that follows says what to do
    s.onclose = (ev) => {
      if (ws !== s) return;
      drop();
      if (!opened) wsTok = null; // a refused handshake: the next try asks for a new token
      closed(ev.code);
    };
  }

  function live() {
    clear(liveT);
    liveT = 0;
    if (state === 'live') return;
    clear(pollT);
    pollT = 0;
    setState('live');
  }

  function quiet() {
    clear(quietT);
    clear(pongT);
    pongT = 0;
    quietT = set(() => {
      if (!send({ event: 'ping' })) return;
      pongT = set(() => { const s = ws; drop(); try { s.close(1000); } catch {} closed(1006); }, pongWait);
    }, pingAfter);
  }

  function drop() {
    if (ws) ws.onopen = ws.onmessage = ws.onclose = null;
    ws = null;
    clear(quietT); clear(pongT); clear(stableT); clear(liveT);
    quietT = pongT = stableT = liveT = 0;
    for (const [ref, p] of pend) if (p.sock) { clear(p.t); p.t = set(() => viaRest(ref), 0); }
  }

  function closed(code) {
    if (!running) return;
    stats.reconnects++;
    const p = CLOSE_POLICY[code] || 'resume';
    if (p === 'poll') return poll(true);
    let ms = p === 'now' && !attempt ? 0 : backoff(attempt, random);
    if (p === 'pause') ms = Math.max(ms, 5000);
    attempt++;
    retry(ms);
  }

  function failed(e) {
    const st = e && e.status;
    if (st === 401) return setState('unauthorized', e);
    if (st === 403) return setState('forbidden', e);
    let ms = backoff(attempt++, random);
    if (st === 429 || st === 503) ms = Math.max(ms, (e.retryAfter || 1) * 1000);
    if (state === 'polling') { pollT = set(pollOnce, Math.max(ms, pollEvery)); return; }
    retry(ms, e);
  }

  function retry(ms, err = null) {
    setState(offline() ? 'offline' : 'reconnecting', err);
    clear(retryT);
    retryT = set(() => connect(false), ms);
  }

  // ---- polling, after 4029 ----
  function poll(start) {
    if (start) pollFrom = now();
    setState('polling');
    clear(pollT);
    pollT = set(pollOnce, 0);
  }

  async function pollOnce() {
    pollT = 0;
    if (!running || role === 'follower' || state !== 'polling') return;
    if (now() - pollFrom >= socketEvery) { pollFrom = now(); return connect(true); }
    try {
      let more = false;
      if (store.seq == null) {
        const r = await rest('/notifications/unread?limit=100');
        feed(JSON.stringify({ event: 'unread-notifications', seq: r.seq, unread: r.total, data: r.data }));
      } else {
        const r = await rest('/notifications/events?limit=100&since=' + store.seq);
        if (r.reset) feed(JSON.stringify({ event: 'unread-notifications', seq: r.snapshot.seq, unread: r.snapshot.total, data: r.snapshot.data }));
        else for (const x of r.data) feed(JSON.stringify(x));
        more = r.next != null;
      }
      stats.polls++;
      if (state === 'polling' && !pollT) pollT = set(pollOnce, more ? 0 : pollEvery);
    } catch (e) {
      failed(e);
    }
  }

  // ---- tabs: one socket per browser ----
  function onMessage(ev) {
    const m = ev.data || {};
    if (role === 'leader') {
      if (m.t === 'hello') post({ t: 'st', s: store, v: state });
      else if (m.t === 'c') send(m.f);
      else if (m.t === 'w' && !ws) connect(true);
      return;
    }
    if (role !== 'follower') return;
    if (m.t === 'f') {
      let f;
      try { f = JSON.parse(m.d); } catch { return; }
      apply(f);
    } else if (m.t === 's' || m.t === 'st') {
      if (m.t === 'st' && m.s && (store.seq == null || m.s.seq > store.seq)) store = m.s;
      state = m.v;
      emit();
      if (m.hidden && m.v !== 'live' && !hidden()) post({ t: 'w' });
    }
  }

  function lead() {
    const locks = env('navigator') && env('navigator').locks;
    const BC = env('BroadcastChannel');
    if (o.share === 'off' || !locks || !BC) {
      role = 'solo';
      return connect(false);
    }
    bc = new BC(name);
    bc.onmessage = onMessage;
    role = 'follower';
    setState('connecting');
    post({ t: 'hello' });
    abort = new AbortController();
    locks.request(name, { signal: abort.signal }, () => {
      if (!running) return;
      role = 'leader';
      state = 'connecting';
      emit();
      connect(true);
      return new Promise((r) => { releaseLock = r; });
    }).catch(() => {});
  }

  // ---- start and stop ----
  function start() {
    if (running) return;
    running = true;
    if (persist && store.seq == null) {
      try {
        const s = JSON.parse(persist.storage.getItem(persist.key));
        if (s && typeof s.seq === 'number' && typeof s.unread === 'number' && Array.isArray(s.items)) {
          store = { seq: s.seq, unread: s.unread, items: s.items, complete: false };
        }
      } catch {}
    }
    if (!unhook) unhook = hook();
    lead();
  }

  function hook() {
    const w = env('window'), d = env('document');
    const wake = () => {
      if (!running) return start();
      if (role === 'follower') post({ t: 'w' });
      else if (state === 'polling') pollOnce();
      else connect(true);
    };
    const off = () => {
      if (!running || role === 'follower') return;
      if (ws) { const s = ws; drop(); try { s.close(1000); } catch {} }
      clear(retryT);
      setState('offline');
    };
    const vis = () => { if (!hidden()) wake(); };
    const hide = () => halt();
    const show = () => { if (refs > 0) wake(); };
    const on = [[w, 'online', wake], [w, 'offline', off], [w, 'pageshow', show], [w, 'pagehide', hide], [d, 'visibilitychange', vis]];
    for (const [t, e, f] of on) t && t.addEventListener(e, f);
    return () => { for (const [t, e, f] of on) t && t.removeEventListener(e, f); };
  }

  function halt() {
    running = false;
    if (ws) { const s = ws; drop(); try { s.close(1000); } catch {} }
    for (const t of [retryT, pollT, lingerT]) clear(t);
    retryT = pollT = lingerT = 0;
    connecting = false;
    if (releaseLock) releaseLock();
    if (abort) abort.abort();
    if (bc) bc.close();
    bc = releaseLock = abort = null;
    role = null;
    attempt = 0;
    setState('idle');
  }

  function viaRest(ref) {
    const p = pend.get(ref);
    if (!p) return;
    done(ref);
    rest('/notifications/' + encodeURIComponent(p.id) + '/read', { method: 'PATCH' }).then(() => p.res(), p.rej);
  }

  const client = {
    subscribe(l) { listeners.add(l); return () => listeners.delete(l); },
    getSnapshot: () => snap,
    getServerSnapshot: () => SERVER,
    retain() {
      refs++;
      clear(lingerT);
      lingerT = 0;
      start();
      let once = true;
      return () => {
        if (!once) return;
        once = false;
        if (--refs === 0) lingerT = set(() => { if (refs === 0) close(); }, o.linger ?? 1000);
      };
    },
    drop() { if (ws) { const s = ws; drop(); try { s.close(1000); } catch {} closed(1006); } },
    reconnect() { if (state === 'unauthorized' || state === 'forbidden') setState('reconnecting'); attempt = 0; wsTok = null; if (running) connect(true); else start(); },
    close,
    markRead(id) {
      const it = store.items.find((n) => n.id === id);
      if (it && it.readAt) return Promise.resolve();
      return new Promise((res, rej) => {
        const ref = tab + ++refN;
        const p = { id, res, rej, sock: false };
        pend.set(ref, p);
        p.sock = send({ event: 'mark-read', data: { id }, ref });
        p.t = set(() => viaRest(ref), p.sock ? 5000 : 0);
      });
    },
    async markAllRead() {
      if (send({ event: 'mark-all-read' })) return;
      await rest('/notifications/read-all', { method: 'PATCH' });
      if (state === 'polling') pollOnce();
    },
    async loadMore() {
      for (let i = 0; i < 5; i++) {
        let before = null;
        for (const n of store.items) if (!n.readAt && (before == null || n.seq < before)) before = n.seq;
        if (store.complete || before == null) return false;
        const r = await rest('/notifications/unread?limit=50&before=' + before);
        if (r.seq === store.seq) {
          const have = new Set(store.items.map((n) => n.id));
          store = { ...store, items: [...store.items, ...r.data.filter((n) => !have.has(n.id))], complete: r.next == null };
          emit();
          return !store.complete;
        }
        await new Promise((ok) => set(ok, 200)); // the page is of another seq: let the frames catch up
      }
      return !store.complete;
    },
    stats: () => ({ ...stats }),
  };

  function close() {
    refs = 0;
    halt();
    if (unhook) unhook();
    unhook = null;
  }

  return client;
}

const SERVER = Object.freeze({ state: 'idle', seq: null, unread: 0, items: [], complete: false, role: null, error: null });
