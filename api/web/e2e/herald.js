// Runs the real herald binary (HERALD_BIN) for the tests of this directory, and loads
// their pinned dependencies from HERALD_WEB_TOOLS (make test-web installs them).
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

export const BIN = process.env.HERALD_BIN;
if (!BIN) throw new Error('HERALD_BIN must name the herald binary (make test-web sets it)');
export const tools = createRequire(join(process.env.HERALD_WEB_TOOLS || '.tools/web', 'package.json'));
export const SECRET = 'web-test-secret-0123456789abcdef0123';
export const KEY = 'web-test-key';

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
    s.on('error', reject);
  });
}

export const tempDir = () => mkdtempSync(join(tmpdir(), 'herald-web-'));

// Every server a test started is killed when the test process exits, even after a failure.
const running = new Set();
process.on('exit', () => { for (const p of running) p.kill('SIGKILL'); });

// start runs `herald serve` on 127.0.0.1:port and resolves once its ready line is out.
export function start({ port, dir, dev = false, env = {} }) {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HERALD_')));
  const p = spawn(BIN, ['serve', ...(dev ? ['--dev'] : [])], {
    env: { ...base, HERALD_ADDR: '127.0.0.1:' + port, HERALD_DATA_DIR: dir, HERALD_JWT_SECRET: SECRET, HERALD_API_KEYS: KEY, HERALD_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  running.add(p);
  const exited = new Promise((r) => p.on('exit', (code, signal) => { running.delete(p); r({ code, signal }); }));
  const ready = new Promise((resolve, reject) => {
    let buf = '';
    p.stdout.on('data', (d) => {
      buf += d;
      const m = /herald ready: listening on (http:\/\/\S+)/.exec(buf);
      if (m) resolve(m[1]);
    });
    exited.then(({ code }) => reject(new Error('herald exited ' + code + ' before ready')));
  });
  return ready.then((url) => ({ url, proc: p, exited, stop: (sig = 'SIGTERM') => { p.kill(sig); return exited; } }));
}

export function userToken(user) {
  return execFileSync(BIN, ['token', '--user', user], { env: { PATH: process.env.PATH, HERALD_JWT_SECRET: SECRET } }).toString().trim();
}

// create stores a notification for user with the service key.
export async function create(url, user, message) {
  const r = await fetch(url + '/notifications', {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + KEY, 'Content-Type': 'application/json' },
    body: JSON.stringify({ receiverId: user, type: 'test', payload: { message } }),
  });
  if (r.status !== 201) throw new Error('create: ' + r.status + ' ' + (await r.text()));
  return r.json();
}

// until resolves when pred(client.getSnapshot()) holds, checked on every change.
export function until(client, pred, what, ms = 15000) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const s = client.getSnapshot();
      if (pred(s)) { clearTimeout(t); unsub(); resolve(s); }
    };
    const t = setTimeout(() => { unsub(); reject(new Error('timed out waiting for ' + what + ': ' + JSON.stringify({ ...client.getSnapshot(), items: client.getSnapshot().items.length }))); }, ms);
    const unsub = client.subscribe(check);
    check();
  });
}

export const cleanup = (dir) => rmSync(dir, { recursive: true, force: true });
