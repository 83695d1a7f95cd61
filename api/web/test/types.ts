// Compiled by tsc --noEmit (make test-web): the types of herald.d.ts in use, as a
// host application would use them. Not run.
import { createHeraldClient, reduce, consistent, backoff, CLOSE_POLICY, EMPTY } from '../herald.js';
import type { HeraldClient, Snapshot, State, Notification, Stats } from '../herald.js';

const client: HeraldClient = createHeraldClient({
  url: 'https://herald.example.com',
  getUserToken: async ({ refresh }) => (refresh ? 'fresh' : 'cached'),
  share: 'auto',
  persist: { key: 'herald:alice' },
});
const release: () => void = client.retain();
const unsubscribe: () => void = client.subscribe(() => {
  const s: Snapshot = client.getSnapshot();
  const state: State = s.state;
  const unread: number = s.unread;
  const first: Notification | undefined = s.items[0];
  const seq: number | null = s.seq;
  void [state, unread, first?.payload, seq, s.role, s.error?.status];
});
const done: Promise<void> = client.markRead('id');
const more: Promise<boolean> = client.loadMore();
const stats: Stats = client.stats();
const [next, verdict] = reduce(EMPTY, { event: 'new-notification', seq: 1, unread: 1, data: {} });
const ok: boolean = consistent(next) && verdict !== 'gap';
const delay: number = backoff(3) + (CLOSE_POLICY[4029] === 'poll' ? 0 : 1);
void [release, unsubscribe, done, more, stats.gaps, ok, delay, client.markAllRead(), client.getServerSnapshot()];

// @ts-expect-error: share is "auto" or "off"
createHeraldClient({ url: 'x', getUserToken: () => 't', share: 'yes' });
