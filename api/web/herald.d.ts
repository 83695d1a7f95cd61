// Types of herald.js, the Herald browser client.

/** A notification, as the REST API and the WebSocket carry it. */
export interface Notification {
  id: string;
  object: string;
  receiverId: string;
  senderId: string;
  type: string;
  payload: Record<string, unknown>;
  channels?: string[];
  createdAt: string;
  readAt: string | null;
  /** Position of this notification's creation in the receiver's event log. */
  seq: number;
}

/** A server frame: {event, data}, with seq and unread on event-log frames. */
export interface Frame {
  event: string;
  data?: unknown;
  seq?: number;
  unread?: number;
  ref?: string;
}

/** The store the reducer keeps: the list, the log position it reflects, the badge. */
export interface Store {
  /** Last applied log position; null before the first snapshot. */
  seq: number | null;
  /** The unread total, always the last frame's `unread` (never counted here). */
  unread: number;
  /** Newest first: the snapshot's unread notifications, then live ones, then loadMore pages. */
  items: Notification[];
  /** Whether items holds every unread notification (then their count must equal unread). */
  complete: boolean;
}

export type State =
  | 'idle' | 'connecting' | 'live' | 'reconnecting' | 'offline' | 'polling' | 'unauthorized' | 'forbidden';

export type Role = 'leader' | 'follower' | 'solo' | null;

export interface Snapshot extends Store {
  state: State;
  /** leader: this tab holds the browser's socket; follower: another tab does; solo: a socket of its own. */
  role: Role;
  /** Why the state is what it is (unauthorized, forbidden, a failed ws-token), else null. */
  error: (Error & { status?: number; code?: string }) | null;
}

export interface Stats {
  connects: number;
  reconnects: number;
  gaps: number;
  duplicates: number;
  snapshots: number;
  frames: number;
  polls: number;
  refreshes: number;
}

export interface HeraldOptions {
  /** Herald's base URL, e.g. "https://herald.example.com" (the WebSocket's is derived). */
  url: string;
  /** The host application's user JWT; asked again with {refresh: true} after a 401. */
  getUserToken(opts: { refresh?: boolean }): string | Promise<string>;
  /** "auto" (default): one socket per browser, shared by its tabs; "off": one per tab. */
  share?: 'auto' | 'off';
  /** Save {seq, unread, items} for a warm start: true (localStorage) or where to. */
  persist?: boolean | { key?: string; storage?: Pick<Storage, 'getItem' | 'setItem'> };
  /** Name of the lock and channel the tabs share; default "herald:" + url. */
  name?: string;
  /** How long the last release waits before closing (ms); default 1000. */
  linger?: number;
  /** Silence before an application ping (ms); default 25000. */
  pingAfter?: number;
  /** How long a pong may take before the socket is dropped (ms); default 10000. */
  pongWait?: number;
  /** Polling interval after a 4029 (ms); default 5000. */
  pollInterval?: number;
  /** How often a socket is tried again while polling (ms); default 30000. */
  socketRetry?: number;
  /** Replacements for the globals the client uses (tests, other runtimes). */
  env?: Partial<Record<'WebSocket' | 'fetch' | 'setTimeout' | 'clearTimeout' | 'navigator' | 'document' | 'window' | 'BroadcastChannel' | 'localStorage', unknown>>;
  now?: () => number;
  random?: () => number;
}

export interface HeraldClient {
  /** For useSyncExternalStore: called after every change. Returns the unsubscribe. */
  subscribe(listener: () => void): () => void;
  /** The current snapshot: the same object until something changes. */
  getSnapshot(): Snapshot;
  /** The snapshot for server-side rendering (idle, empty). */
  getServerSnapshot(): Snapshot;
  /** Starts the client (ref-counted); the returned release closes it, deferred, after the last. */
  retain(): () => void;
  /** Tries again at once, also after unauthorized or forbidden. */
  reconnect(): void;
  /** Drops this tab's socket as a lost connection would (a demo of the resume). */
  drop(): void;
  /** Closes the socket and stops at once. */
  close(): void;
  /** Marks one read: over the socket when live (resolves on its notification-read), else REST. */
  markRead(id: string): Promise<void>;
  /** Marks all read: over the socket when live, else REST. */
  markAllRead(): Promise<void>;
  /** Fetches the next page of older unread notifications; resolves whether more remain. */
  loadMore(): Promise<boolean>;
  stats(): Stats;
}

export function createHeraldClient(options: HeraldOptions): HeraldClient;

/** Applies one frame, strictly by seq; the verdict says what it did. */
export function reduce(store: Store, frame: Frame): [Store, 'snapshot' | 'applied' | 'duplicate' | 'gap' | 'ignored'];
/** Whether the list agrees with the count. */
export function consistent(store: Store): boolean;
/** Full-jitter backoff in ms: random() * min(max, base * 2^attempt). */
export function backoff(attempt: number, random?: () => number, base?: number, max?: number): number;
/** What the client does on each close code. */
export const CLOSE_POLICY: Readonly<Record<number, 'resume' | 'pause' | 'now' | 'poll'>>;
export const EMPTY: Store;
