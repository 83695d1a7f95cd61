// Fakes of what herald.js takes from the browser: a manual clock, WebSocket, fetch,
// Web Locks, BroadcastChannel, document and window. No dependency.

export const flush = async (n = 30) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

// Clock is setTimeout/clearTimeout on a manual time.
export class Clock {
  constructor() { this.t = 1_000_000; this.timers = new Map(); this.id = 0; }
  now = () => this.t;
  setTimeout = (f, ms = 0) => { const id = ++this.id; this.timers.set(id, { at: this.t + Math.max(0, ms), f }); return id; };
  clearTimeout = (id) => { this.timers.delete(id); };
  // next is when the earliest timer is due, or Infinity.
  next() { let m = Infinity; for (const { at } of this.timers.values()) m = Math.min(m, at); return m; }
  // tick advances ms, running each timer when it is due, and lets promises settle.
  async tick(ms) {
    const end = this.t + ms;
    await flush();
    for (;;) {
      let due = null;
      for (const [id, x] of this.timers) if (x.at <= end && (!due || x.at < due[1].at)) due = [id, x];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].f();
      await flush();
    }
    this.t = end;
    await flush();
  }
}

// Server is what a fake tab talks to: the ws-token route, REST routes and the sockets.
export class Server {
  constructor() {
    this.sockets = [];
    this.calls = [];
    this.tokens = 0;
    this.routes = {}; // 'GET /path' -> (url, init) => {status, body, headers}
    const server = this;
    this.WebSocket = class {
      constructor(url) { this.url = new URL(url); this.readyState = 0; this.sent = []; server.sockets.push(this); }
      send(d) { if (this.readyState !== 1) throw new Error('not open'); this.sent.push(JSON.parse(d)); }
      close(code) { this.readyState = 3; this.closedWith = code ?? 1005; }
      // The server's side:
      open() { this.readyState = 1; this.onopen && this.onopen({}); }
      recv(f) { this.onmessage && this.onmessage({ data: typeof f === 'string' ? f : JSON.stringify(f) }); }
      drop(code) { this.readyState = 3; this.onclose && this.onclose({ code }); }
      get since() { return this.url.searchParams.get('since'); }
      get token() { return this.url.searchParams.get('token'); }
    };
    this.fetch = async (url, init = {}) => {
      const u = new URL(url);
      const key = (init.method || 'GET') + ' ' + u.pathname;
      this.calls.push({ key, url: u, init });
      let r;
      if (this.routes[key]) r = await this.routes[key](u, init);
      else if (key === 'GET /notifications/ws-token') r = { body: { wsToken: 'wt' + ++this.tokens, expiresIn: 60, tokenType: 'Bearer' } };
      else r = { status: 404, body: { error: { code: 'not_found', message: 'no route ' + key } } };
      const status = r.status ?? 200;
      return {
        status, ok: status >= 200 && status < 300,
        headers: { get: (k) => (r.headers && r.headers[k]) ?? null },
        json: async () => r.body,
      };
    };
  }
  get last() { return this.sockets[this.sockets.length - 1]; }
  open() { return this.sockets.filter((s) => s.readyState === 1); }
  count(key) { return this.calls.filter((c) => c.key === key).length; }
}

// Target is a minimal EventTarget with a dispatch for the tests.
export class Target {
  constructor() { this.l = {}; }
  addEventListener(e, f) { (this.l[e] ||= new Set()).add(f); }
  removeEventListener(e, f) { this.l[e] && this.l[e].delete(f); }
  fire(e, ev = {}) { for (const f of [...(this.l[e] || [])]) f(ev); }
}

// Locks is navigator.locks for one browser: exclusive, queued, abortable.
export class Locks {
  constructor() { this.held = new Map(); this.queue = new Map(); }
  request(name, opts, cb) {
    return new Promise((resolve, reject) => {
      const w = { cb, resolve, reject };
      if (opts.signal) {
        opts.signal.addEventListener('abort', () => {
          const q = this.queue.get(name) || [];
          const i = q.indexOf(w);
          if (i >= 0) { q.splice(i, 1); reject(Object.assign(new Error('aborted'), { name: 'AbortError' })); }
        });
      }
      if (!this.held.get(name)) this.grant(name, w);
      else (this.queue.get(name) || this.queue.set(name, []).get(name)).push(w);
    });
  }
  grant(name, w) {
    this.held.set(name, w);
    setImmediate(async () => {
      try { w.resolve(await w.cb({ name })); } catch (e) { w.reject(e); }
      this.held.delete(name);
      const q = this.queue.get(name) || [];
      if (q.length) this.grant(name, q.shift());
    });
  }
}

// channels returns the BroadcastChannel class of one browser: messages go, cloned and
// asynchronously, to every other open channel of the same name.
export function channels() {
  const open = new Set();
  return class {
    constructor(name) { this.name = name; this.closed = false; open.add(this); }
    postMessage(m) {
      if (this.closed) throw new Error('closed');
      const data = structuredClone(m);
      for (const c of open) if (c !== this && c.name === this.name) setImmediate(() => !c.closed && c.onmessage && c.onmessage({ data }));
    }
    close() { this.closed = true; open.delete(this); }
  };
}

// tab makes the env of one browser tab on server, sharing browser (locks, channels).
export function tab(server, clock, browser = null, extra = {}) {
  const document = new Target();
  document.visibilityState = 'visible';
  const window = new Target();
  const navigator = { onLine: true };
  if (browser) navigator.locks = browser.locks;
  return {
    document, window, navigator,
    env: {
      WebSocket: server.WebSocket, fetch: server.fetch,
      setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout,
      navigator, document, window,
      BroadcastChannel: browser ? browser.BC : undefined,
      localStorage: undefined,
      ...extra,
    },
  };
}

export const browser = () => ({ locks: new Locks(), BC: channels() });

// n makes a notification.
export const n = (seq, readAt = null) => ({ id: 'n' + seq, seq, type: 't', receiverId: 'alice', payload: {}, readAt });
export const created = (seq, unread) => ({ event: 'new-notification', seq, unread, data: n(seq) });
export const snapshot = (seq, items) => ({ event: 'unread-notifications', seq, unread: items.length, data: items });
