import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LocalRateLimitStore, RedisRateLimitStore } from '../../server/throttling/distributed.ts';
import { periodEnd } from '../../server/throttling/quota.ts';
import { LEASE_COMMAND, QUOTA_COMMAND } from '../../server/throttling/redis-scripts.ts';

/**
 * RedisRateLimitStore against a scripted fake client: every Lua call is recorded and answered
 * by the test, so the lease/credit/fallback logic is checked deterministically. The real
 * scripts run in test/integration/throttle-redis.test.ts.
 */
interface Call {
  name: string;
  key: string;
  args: number[];
  resolve: (reply: unknown) => void;
  reject: (err: Error) => void;
}

class FakeRedis {
  status = 'ready';
  readonly calls: Call[] = [];
  readonly defined: string[] = [];

  defineCommand(name: string): void {
    this.defined.push(name);
    const self = this as unknown as Record<string, (key: string, ...args: number[]) => Promise<unknown>>;
    self[name] = (key: string, ...args: number[]) =>
      new Promise<unknown>((resolve, reject) => {
        this.calls.push({ name, key, args, resolve, reject });
      });
  }

  /** Remove and return the oldest unanswered call. */
  next(): Call {
    const c = this.calls.shift();
    if (c === undefined) throw new Error('no pending call');
    return c;
  }
}

interface Setup {
  fake: FakeRedis;
  store: RedisRateLimitStore;
  advance: (ms: number) => void;
  errors: unknown[];
}

function setup(over: Partial<ConstructorParameters<typeof RedisRateLimitStore>[0]> = {}): Setup {
  const fake = new FakeRedis();
  let t = 1000;
  let wall = Date.parse('2024-05-17T10:00:00Z');
  const errors: unknown[] = [];
  const store = new RedisRateLimitStore({
    redis: fake as unknown as Redis,
    keyPrefix: 'gh:test:',
    nodeId: 'n1',
    nodeCount: () => 2,
    now: () => t,
    wallNow: () => wall,
    onError: (err) => errors.push(err),
    ...over,
  });
  return {
    fake,
    store,
    errors,
    advance: (ms) => {
      t += ms;
      wall += ms;
    },
  };
}

const settle = async (): Promise<void> => {
  await nextTurn();
};

/** close() waits (at most 1 s) for unanswered calls: let the fake clock run out that wait. */
async function closeStore(store: RedisRateLimitStore): Promise<void> {
  const closing = store.close();
  await vi.advanceTimersByTimeAsync(1000);
  await closing;
}

function count(store: RedisRateLimitStore, key: string, rate: number, burst: number, n: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (store.tryTake(key, rate, burst) === 0) ok++;
  return ok;
}

describe('RedisRateLimitStore (scripted Redis)', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('defines both Lua commands once and uses hash-tagged keys', async () => {
    const { fake, store } = setup();
    expect(fake.defined).toEqual([LEASE_COMMAND, QUOTA_COMMAND]);
    store.tryTake('s:prod:send', 100, 100);
    expect(fake.next().key).toBe('gh:test:{tb:s:prod:send}');
    expect(() => setup({ keyPrefix: 'bad{' })).toThrow(/keyPrefix/);
    await closeStore(store);
  });

  it('admits the first request on credit and charges it with the first lease', async () => {
    const { fake, store } = setup();
    // rate 1000, burst 100, 2 nodes: L = ceil(1000 x 20 ms / 2) = 10, advance = min(10, 50) = 10.
    expect(store.tryTake('k', 1000, 100)).toBe(0);
    const lease = fake.next();
    expect(lease.name).toBe(LEASE_COMMAND);
    expect(lease.args).toEqual([1000, 100, 10, 10]); // rate, burst, want, owed
    // The remaining advance is spent while the lease is in flight, then it refuses (no blocking).
    expect(count(store, 'k', 1000, 100, 20)).toBe(9);
    expect(store.tryTake('k', 1000, 100)).toBeGreaterThan(0);
    expect(fake.calls).toHaveLength(0); // one refill in flight at a time
    lease.resolve([10, 0]);
    await settle();
    expect(count(store, 'k', 1000, 100, 20)).toBe(10);
    await closeStore(store);
  });

  it('refills in the background at half the lease and grows the lease after running dry', async () => {
    const { fake, store } = setup();
    store.tryTake('k', 1000, 1000);
    fake.next().resolve([10, 0]);
    await settle();
    // 9 advance + 10 leased = 19 tokens; below 5 left a refill goes out.
    expect(count(store, 'k', 1000, 1000, 14)).toBe(14);
    expect(fake.calls).toHaveLength(0);
    expect(count(store, 'k', 1000, 1000, 1)).toBe(1);
    const refill = fake.next();
    expect(refill.args[2]).toBe(10);
    expect(count(store, 'k', 1000, 1000, 10)).toBe(4); // ran dry while pending: starved
    refill.resolve([10, 0]);
    await settle();
    count(store, 'k', 1000, 1000, 10);
    expect(fake.next().args[2]).toBe(20); // doubled
    await closeStore(store);
  });

  it('after a short grant waits before asking again, and reports a retry time', async () => {
    const { fake, store, advance } = setup();
    store.tryTake('k', 100, 10);
    fake.next().resolve([0, 10]); // bucket empty: 10 ms to the next token
    await settle();
    count(store, 'k', 100, 10, 5); // spend the advance (5 = burst / 2 nodes)
    const wait = store.tryTake('k', 100, 10);
    expect(wait).toBeGreaterThanOrEqual(10);
    expect(fake.calls).toHaveLength(0);
    advance(10);
    store.tryTake('k', 100, 10);
    expect(fake.calls).toHaveLength(1);
    await closeStore(store);
  });

  it('serves a local share (rate/N, burst/N) and sends nothing while the client is not ready', async () => {
    const { fake, store, advance } = setup();
    fake.status = 'reconnecting';
    expect(count(store, 'k', 10, 20, 100)).toBe(10); // burst 20 / 2 nodes
    advance(1000);
    expect(count(store, 'k', 10, 20, 100)).toBe(5); // 10/s / 2 nodes
    expect(fake.calls).toHaveLength(0);
    expect(store.isDegraded()).toBe(true);
    fake.status = 'ready';
    expect(store.isDegraded()).toBe(false);
    store.tryTake('k', 10, 20);
    expect(fake.calls).toHaveLength(1);
    await closeStore(store);
  });

  it('a failed call degrades to local shares for degradedMs, then Redis is tried again', async () => {
    const { fake, store, advance, errors } = setup({ degradedMs: 500 });
    store.tryTake('k', 1000, 100);
    fake.next().reject(new Error('boom'));
    await settle();
    expect(errors).toHaveLength(1);
    expect(store.isDegraded()).toBe(true);
    expect(store.stats().redisErrors).toBe(1);
    count(store, 'k', 1000, 100, 10);
    expect(fake.calls).toHaveLength(0);
    advance(500);
    expect(store.isDegraded()).toBe(false);
    // The unused credit (owed) of the failed call is charged again with the next lease.
    count(store, 'k', 1000, 100, 10);
    expect(fake.next().args[3]).toBe(10);
    await closeStore(store);
  });

  it('a reply overdue across two timer ticks switches to local shares; a mere process stall does not', async () => {
    const { fake, store, advance } = setup({ callTimeoutMs: 250, tickMs: 100 });
    count(store, 'k', 1000, 100, 10); // advance spent, lease pending
    expect(fake.calls).toHaveLength(1);
    // The clock jumps 1 s without the timer firing (a stall): still waiting for the reply.
    advance(1000);
    expect(store.tryTake('k', 1000, 100)).toBeGreaterThan(0);
    expect(store.isDegraded()).toBe(false);
    // Two ticks later the reply is really late.
    vi.advanceTimersByTime(200);
    expect(store.tryTake('k', 1000, 100)).toBe(0);
    expect(store.isDegraded()).toBe(true);
    await closeStore(store);
  });

  it('refunds into the lease and gives unspent tokens back on close', async () => {
    const { fake, store } = setup();
    count(store, 'k', 1000, 100, 3);
    fake.next().resolve([10, 0]);
    await settle();
    store.refund('k', 2);
    // 10 advance - 3 + 2 refunded + 10 leased = 19 unspent; nothing owed.
    const closing = store.close();
    await settle(); // nothing in flight to wait for
    const giveBack = fake.next();
    expect(giveBack.args).toEqual([1000, 100, 0, -19]);
    giveBack.resolve([0, 0]);
    await closing;
    // After close: local shares only, no calls.
    store.tryTake('k', 1000, 100);
    expect(fake.calls).toHaveLength(0);
  });

  it('close waits for a lease in flight and gives its grant back', async () => {
    const { fake, store } = setup();
    count(store, 'k', 1000, 100, 4); // lease pending, 6 of the advance unspent
    const closing = store.close();
    expect(store.tryTake('k', 1000, 100)).toBe(0); // closing: local share, nothing sent
    expect(fake.calls).toHaveLength(1);
    fake.next().resolve([10, 0]);
    await settle();
    const giveBack = fake.next();
    expect(giveBack.args).toEqual([1000, 100, 0, -16]);
    giveBack.resolve([0, 0]);
    await closing;
  });

  it('close does not hang when Redis never answers', async () => {
    const { fake, store } = setup();
    count(store, 'k', 1000, 100, 1);
    const closing = store.close(50);
    vi.advanceTimersByTime(50);
    await closing;
    expect(fake.calls.length).toBeGreaterThanOrEqual(1);
  });

  it('quota: credit while reserving, exhaustion with the period end, credit charged after exhaustion', async () => {
    const { fake, store } = setup();
    const end = periodEnd('DAY', Date.parse('2024-05-17T10:00:00Z'));
    // limit 1000, 2 nodes: chunk = ceil(1000 x 1 % / 2) = 5.
    expect(store.tryQuota('q', 1000, 'DAY')).toEqual({ ok: true });
    const r1 = fake.next();
    expect(r1.name).toBe(QUOTA_COMMAND);
    expect(r1.key).toBe('gh:test:{q:q}:DAY:1715904000000');
    expect(r1.args).toEqual([1000, 5, 1, end + 3_600_000]); // limit, want, owed, expire-at
    for (let i = 0; i < 4; i++) expect(store.tryQuota('q', 1000, 'DAY').ok).toBe(true);
    const pending = store.tryQuota('q', 1000, 'DAY');
    expect(pending.ok).toBe(false);
    if (!pending.ok) expect(pending.resetAt).toBeLessThan(end); // "retry soon", not "exhausted"
    r1.resolve([3, 1000]); // only 3 left for this node: exhausted
    await settle();
    // The 4 units of credit taken meanwhile are charged at once.
    const charge = fake.next();
    expect(charge.args.slice(0, 3)).toEqual([1000, 0, 4]);
    for (let i = 0; i < 3; i++) expect(store.tryQuota('q', 1000, 'DAY').ok).toBe(true);
    expect(store.tryQuota('q', 1000, 'DAY')).toEqual({ ok: false, resetAt: end });
    charge.resolve([0, 1004]);
    await settle();
    expect(fake.calls).toHaveLength(0);
    await closeStore(store);
  });

  it('quota while Redis is down: the local share of what was left, charged when it is back', async () => {
    const { fake, store } = setup();
    store.tryQuota('q', 100, 'DAY');
    fake.next().resolve([1, 60]); // 60 used cluster-wide, chunk 1
    await settle();
    fake.calls.length = 0;
    fake.status = 'end';
    let ok = 0;
    for (let i = 0; i < 100; i++) if (store.tryQuota('q', 100, 'DAY').ok) ok++;
    // 1 reserved + floor((100 - 60) / 2 nodes) = 21.
    expect(ok).toBe(21);
    fake.status = 'ready';
    store.tryQuota('q', 100, 'DAY');
    expect(fake.next().args[2]).toBeGreaterThanOrEqual(20); // owed: the outage admissions
    await closeStore(store);
  });
});

describe('LocalRateLimitStore', () => {
  it('implements the same contract in memory', async () => {
    let t = 0;
    const s = new LocalRateLimitStore({ now: () => t, wallNow: () => Date.parse('2024-05-17T10:00:00Z') });
    expect(s.tryTake('k', 10, 2)).toBe(0);
    expect(s.tryTakeAt('k', 10, 2, 1, s.now())).toBe(0);
    expect(s.tryTake('k', 10, 2)).toBe(100);
    s.refund('k');
    expect(s.tryTake('k', 10, 2)).toBe(0);
    t += 100;
    expect(s.tryTake('k', 10, 2)).toBe(0);
    expect(s.tryQuota('q', 1, 'MONTH')).toEqual({ ok: true });
    expect(s.tryQuota('q', 1, 'MONTH')).toEqual({ ok: false, resetAt: Date.parse('2024-06-01T00:00:00Z') });
    await s.close();
  });
});
