import type { Cluster, Redis } from 'ioredis';
import { type QuotaPeriod, QuotaCounter } from './quota.ts';
import { deadline, MalformedReplyError, parsePair, RedisLink } from './redis-link.ts';
import { QUOTA_OK, type QuotaDecision, RedisQuotaReserver } from './redis-quota.ts';
import { IncrementalSweeper } from './sweep.ts';
import { type Bucket, retryAfterMs, TokenBucketTable } from './token-bucket.ts';

/*
 * Cluster-wide throttling: design and accuracy
 * ============================================
 * Every limit is a token bucket (rate r tokens/s, burst b) and every check is synchronous:
 * the message path never waits for Redis.
 *
 * Redis mode (`RedisRateLimitStore`), per bucket key:
 * - The authoritative bucket lives in Redis and is updated only by one Lua script (atomic, a
 *   single key, clock = Redis TIME so node clock skew does not matter). Nodes LEASE tokens
 *   from it in batches and admit requests from their local lease; a refill is sent in the
 *   background when the lease falls below half, so a node below the limit never waits.
 * - Lease size L = clamp(ceil(r x 20 ms / N), 1, min(leaseSize = 1000, max(1, b / N))), N =
 *   nodeCount(): 20 ms worth of each node's share of the rate. It doubles (up to min(b,
 *   maxLeaseSize = 100,000)) after a round trip during which the node ran dry, so one node can
 *   absorb an event-loop burst or a slow reply, and drops back to L as soon as Redis grants
 *   less than asked (the limit is being hit). Leased tokens were taken from the shared bucket,
 *   so a large lease never over-admits; it only shifts tokens between nodes.
 * - A lease empty while its refill is pending DENIES (fail closed at the local share); after
 *   a short grant, a node does not ask again for max(5 ms, time to one token), <= 250 ms.
 * - The first request on a key a node has not seen is admitted on credit (an "advance" of
 *   <= min(L, b/N) tokens) that is charged to the Redis bucket by the first lease, sent at
 *   once, even if that drives its balance negative (floored at -b).
 * Accuracy, demand above the limit for a window of T seconds, N nodes:
 *   admitted <= r*T + b + (advances not yet charged, <= N x min(L, b/N), and only right after
 *               a node first sees the key; once charged they are repaid by the bucket),
 *   admitted >= r*T + b - (tokens leased but unspent, <= N x 1.5 x L)
 *                      - (tokens accrued in Redis since the last poll, <= r x 5 ms).
 *   Example r = 1000/s, b = 1000, N = 3, T = 10 s: L = 7, bound ~ -37/+21 on 11,000 (< 0.5 %).
 *   Measured (3 stores in one process, local redis-server, 10 s far above the limit):
 *   r=1000 b=2000: 11,998 for 12,000; r=10,000 b=5,000: 104,980 for 105,000; r=100 b=50:
 *   1,049 for 1,050; about 170 Lua calls per second per node per hot key.
 *   Idle lease entries are reclaimed after 60 s and give their unspent tokens back.
 * Redis unreachable (client not `ready`, a call failed within the last second, or a call
 * pending > 250 ms across two ticks of the store's one 100 ms timer, so that a process stall
 * is not mistaken for a slow Redis): each node serves a local bucket with r/N per second and
 * max(1, b/N) burst, so the cluster admits at most r per second plus b as long as N is right
 * (a stale N' < N over-admits by N/N'), and sends nothing to Redis; leases resume when the
 * client is ready again. Each switch (to local shares, and back to a Redis bucket that refilled
 * meanwhile) can admit up to one extra burst. It never fails open without a limit and never
 * blocks. (API Gateway instead serves unthrottled when it cannot enforce a usage plan.)
 *
 * Quotas (usage plan + key, DAY/WEEK/MONTH in UTC by the node's wall clock): a counter per key
 * and period in Redis (INCRBY + PEXPIREAT at period end + 1 h, in one Lua script that never
 * reserves past the limit). Nodes reserve chunks C = clamp(ceil(limit x 1 % / N), 1, 100) and
 * may admit up to C requests on credit while a reservation is in flight.
 *   admitted <= limit + N x C (credit charged after the counter ran out),
 *   admitted >= limit - N x C (reservations a node holds unspent when the period ends).
 *   Example limit = 10,000/DAY, N = 3: C = 34, so within +-102 (1 %).
 *   Redis down: a node admits floor((limit - used when Redis last answered) / N) more in the
 *   period and charges them when Redis is back. Period boundaries depend on node clocks (NTP).
 *
 * Memory mode (`LocalRateLimitStore`): exact token buckets and counters for one process.
 */

/**
 * Shared throttling state. Every method but `close` is synchronous and cheap (no I/O, no
 * promise, no allocation for a known key in the common case); implementations MUST NOT throw
 * for a transient backend failure and MUST NOT admit without any limit when the backend is
 * unavailable.
 */
export interface RateLimitStore {
  /** Take `cost` tokens (default 1) from bucket `key`. 0: admitted; else ms until a retry may succeed. */
  tryTake(key: string, rate: number, burst: number, cost?: number): number;
  /**
   * `tryTake` with a reading of `now()` the caller took in the same synchronous run, so that a
   * request checked against several buckets reads the clock once (a clock read costs about as
   * much as a bucket).
   */
  tryTakeAt(key: string, rate: number, burst: number, cost: number, now: number): number;
  /** The store's monotonic clock, ms. */
  now(): number;
  /** Give back tokens of an admitted take whose request another limit refused. */
  refund(key: string, cost?: number): void;
  /** Count one request against a quota; `resetAt` is epoch ms. */
  tryQuota(key: string, limit: number, period: QuotaPeriod): { ok: true } | { ok: false; resetAt: number };
  /** Release timers and flush what can be flushed; the store must not be used afterwards. */
  close(): Promise<void>;
}

export interface LocalRateLimitStoreOptions {
  /** Monotonic clock, ms. Default `performance.now()`. */
  now?: (() => number) | undefined;
  /** Wall clock for quota periods, epoch ms. Default `Date.now`. */
  wallNow?: (() => number) | undefined;
  maxKeys?: number | undefined;
}

export class LocalRateLimitStore implements RateLimitStore {
  private readonly buckets: TokenBucketTable;
  private readonly quotas: QuotaCounter;

  constructor(opts: LocalRateLimitStoreOptions = {}) {
    this.buckets = new TokenBucketTable({ now: opts.now, maxKeys: opts.maxKeys });
    this.quotas = new QuotaCounter({ now: opts.wallNow, maxKeys: opts.maxKeys });
  }

  tryTake(key: string, rate: number, burst: number, cost = 1): number {
    return this.buckets.tryTake(key, rate, burst, cost);
  }

  tryTakeAt(key: string, rate: number, burst: number, cost: number, now: number): number {
    return this.buckets.tryTakeAt(key, rate, burst, cost, now);
  }

  now(): number {
    return this.buckets.clock();
  }

  /** See TokenBucketTable.pin: the bucket object of `key`, for lookup-free takes. */
  pin(key: string, rate: number, burst: number): Bucket {
    return this.buckets.pin(key, rate, burst);
  }

  /** The store's clock function (monotonic ms), for callers that take from pinned buckets. */
  get clock(): () => number {
    return this.buckets.clock;
  }

  refund(key: string, cost = 1): void {
    this.buckets.refund(key, cost);
  }

  tryQuota(key: string, limit: number, period: QuotaPeriod): QuotaDecision {
    if (this.quotas.consume(key, limit, period) >= 0) return QUOTA_OK;
    return { ok: false, resetAt: this.quotas.resetAt(key) };
  }

  async close(): Promise<void> {
    this.buckets.clear();
  }
}

export interface RedisRateLimitStoreOptions {
  redis: Redis | Cluster;
  /** Prefix of every key (no `{` or `}`), e.g. `gh:chat:`. */
  keyPrefix: string;
  nodeId: string;
  /** Upper bound of the base lease (tokens per refill). Default 1000. */
  leaseSize?: number | undefined;
  /** Upper bound of the adaptive lease (also capped by the burst). Default 100,000. */
  maxLeaseSize?: number | undefined;
  /** Base lease = this much of the rate, shared by the nodes. Default 20 ms. */
  leaseWindowMs?: number | undefined;
  /** Nodes sharing the limits (from cluster membership or config). Default 1. */
  nodeCount?: (() => number) | undefined;
  minPollMs?: number | undefined;
  maxPollMs?: number | undefined;
  /**
   * A Redis call pending longer than this (and across two ticks of the coarse timer) switches
   * to local shares. Default 250 ms.
   */
  callTimeoutMs?: number | undefined;
  /** Period of the store's one coarse timer (unref'd): timeout detection, idle sweep. Default 100 ms. */
  tickMs?: number | undefined;
  /** After a failure, stay on local shares this long before trying Redis again. Default 1000 ms. */
  degradedMs?: number | undefined;
  quotaChunkFraction?: number | undefined;
  maxQuotaChunk?: number | undefined;
  /** Idle lease/quota entries are reclaimed after this. Default 60 s. */
  idleMs?: number | undefined;
  maxKeys?: number | undefined;
  /** Monotonic clock, ms. Default `performance.now()`. */
  now?: (() => number) | undefined;
  /** Wall clock, epoch ms, for quota periods. Default `Date.now`. */
  wallNow?: (() => number) | undefined;
  /** Called for each failed Redis call (the store keeps working on local shares). */
  onError?: ((err: unknown) => void) | undefined;
}

class Lease {
  tokens = 0;
  owed = 0;
  pending = false;
  pendingSince = 0;
  pendingTick = 0;
  nextPollAt = 0;
  starved = false;
  constructor(
    readonly redisKey: string,
    public base: number,
    public want: number,
    public rate: number,
    public burst: number,
    public lastUsed: number,
  ) {}
}

export interface RedisRateLimitStoreStats {
  nodeId: string;
  leases: number;
  quotas: number;
  redisCalls: number;
  redisErrors: number;
  degraded: boolean;
}

const SWEEP_MASK = 63;
const SWEEP_BATCH = 8;
const TICK_SWEEP_BATCH = 64;
const defaultNow = (): number => performance.now();

export class RedisRateLimitStore implements RateLimitStore {
  private readonly link: RedisLink;
  private readonly quota: RedisQuotaReserver;
  private readonly leases = new Map<string, Lease>();
  private readonly sweeper: IncrementalSweeper<Lease>;
  private readonly fallback: TokenBucketTable;
  private readonly clock: () => number;
  private readonly nodeCount: () => number;
  private readonly keyPrefix: string;
  private readonly nodeId: string;
  private readonly leaseSize: number;
  private readonly maxLeaseSize: number;
  private readonly leaseWindowMs: number;
  private readonly minPollMs: number;
  private readonly maxPollMs: number;
  private readonly callTimeoutMs: number;
  private readonly idleMs: number;
  private readonly maxKeys: number;
  private calls = 0;

  constructor(o: RedisRateLimitStoreOptions) {
    if (/[{}]/.test(o.keyPrefix)) throw new Error('RedisRateLimitStore: keyPrefix must not contain { or }');
    this.clock = o.now ?? defaultNow;
    this.nodeCount = o.nodeCount ?? (() => 1);
    this.keyPrefix = o.keyPrefix;
    this.nodeId = o.nodeId;
    this.leaseSize = Math.max(1, o.leaseSize ?? 1000);
    this.maxLeaseSize = Math.max(this.leaseSize, o.maxLeaseSize ?? 100_000);
    this.leaseWindowMs = o.leaseWindowMs ?? 20;
    this.minPollMs = o.minPollMs ?? 5;
    this.maxPollMs = Math.max(this.minPollMs, o.maxPollMs ?? 250);
    this.callTimeoutMs = o.callTimeoutMs ?? 250;
    this.idleMs = o.idleMs ?? 60_000;
    this.maxKeys = Math.max(1, o.maxKeys ?? 100_000);
    this.link = new RedisLink({
      redis: o.redis,
      now: this.clock,
      degradedMs: o.degradedMs ?? 1000,
      tickMs: o.tickMs ?? 100,
      onTick: () => this.onTick(),
      onError: o.onError,
    });
    this.fallback = new TokenBucketTable({ now: this.clock, maxKeys: this.maxKeys });
    this.sweeper = new IncrementalSweeper(this.leases, (e, now) => this.reclaimable(e, now));
    this.quota = new RedisQuotaReserver({
      link: this.link,
      keyPrefix: o.keyPrefix,
      wallNow: o.wallNow ?? Date.now,
      nodeCount: this.nodeCount,
      chunkFraction: o.quotaChunkFraction ?? 0.01,
      maxChunk: Math.max(1, o.maxQuotaChunk ?? 100),
      timeoutMs: this.callTimeoutMs,
      idleMs: this.idleMs,
      maxKeys: this.maxKeys,
    });
  }

  now(): number {
    return this.clock();
  }

  tryTake(key: string, rate: number, burst: number, cost = 1): number {
    return this.tryTakeAt(key, rate, burst, cost, this.clock());
  }

  tryTakeAt(key: string, rate: number, burst: number, cost: number, now: number): number {
    if ((++this.calls & SWEEP_MASK) === 0) this.sweeper.step(SWEEP_BATCH, now);
    if (!this.link.usable(now)) return this.takeLocalShare(key, rate, burst, cost, now);
    let e = this.leases.get(key);
    if (e === undefined) {
      e = this.createLease(key, rate, burst, now);
      // Charge the advance and fetch the first lease right away.
      this.refill(e, now);
    } else if (e.rate !== rate || e.burst !== burst) {
      e.rate = rate;
      e.burst = burst;
      e.base = this.baseLease(rate, burst);
      e.want = e.base;
    }
    e.lastUsed = now;
    if (e.tokens >= cost) {
      e.tokens -= cost;
      if (!e.pending && e.tokens * 2 < e.want && now >= e.nextPollAt) this.refill(e, now);
      return 0;
    }
    e.starved = true;
    if (e.pending) {
      if (this.link.overdue(e.pendingTick, e.pendingSince, now, this.callTimeoutMs)) {
        this.link.fail(new Error('throttle lease timed out'));
        return this.takeLocalShare(key, rate, burst, cost, now);
      }
    } else if (now >= e.nextPollAt) {
      if (e.want < cost) e.want = cost;
      this.refill(e, now);
    }
    const wait = retryAfterMs(cost - e.tokens, rate);
    const poll = Math.ceil(e.nextPollAt - now);
    return Math.max(poll, wait);
  }

  refund(key: string, cost = 1): void {
    const e = this.leases.get(key);
    if (e !== undefined && this.link.usable(this.clock())) e.tokens += cost;
    else this.fallback.refund(key, cost);
  }

  tryQuota(key: string, limit: number, period: QuotaPeriod): QuotaDecision {
    return this.quota.tryQuota(key, limit, period);
  }

  /** True while decisions come from local shares instead of Redis. */
  isDegraded(): boolean {
    return this.link.degraded(this.clock());
  }

  stats(): RedisRateLimitStoreStats {
    return {
      nodeId: this.nodeId,
      leases: this.leases.size,
      quotas: this.quota.size,
      redisCalls: this.link.calls,
      redisErrors: this.link.errors,
      degraded: this.isDegraded(),
    };
  }

  /**
   * Waits for calls in flight, then gives unspent leases and quota reservations back and
   * charges credit; best effort, at most `flushTimeoutMs` in all. From the first moment on, the
   * store serves local shares only and sends no new leases. The Redis client belongs to the
   * caller and stays open.
   */
  async close(flushTimeoutMs = 1000): Promise<void> {
    if (this.link.closed) return;
    this.link.closed = true;
    if (this.link.connected()) {
      const limit = deadline(flushTimeoutMs);
      await Promise.race([this.link.drain(), limit.expired]);
      const flushes = this.quota.flush();
      for (const e of this.leases.values()) {
        const giveBack = e.owed - Math.floor(e.tokens);
        if (giveBack !== 0) flushes.push(this.link.lease(e.redisKey, e.rate, e.burst, 0, giveBack));
      }
      if (flushes.length > 0) await Promise.race([Promise.allSettled(flushes), limit.expired]);
      limit.cancel();
    }
    this.link.close();
    this.leases.clear();
    this.fallback.clear();
  }

  private onTick(): void {
    this.sweeper.step(TICK_SWEEP_BATCH, this.clock());
    this.quota.sweepStep(TICK_SWEEP_BATCH);
  }

  private takeLocalShare(key: string, rate: number, burst: number, cost: number, now: number): number {
    const n = Math.max(1, this.nodeCount());
    const b = burst / n;
    return this.fallback.tryTakeAt(key, rate / n, burst >= 1 && b < 1 ? 1 : b, cost, now);
  }

  private baseLease(rate: number, burst: number): number {
    const n = Math.max(1, this.nodeCount());
    const byRate = Math.ceil((rate * this.leaseWindowMs) / 1000 / n);
    const byBurst = Math.max(1, Math.floor(burst / n));
    return Math.max(1, Math.min(byRate, this.leaseSize, byBurst));
  }

  private createLease(key: string, rate: number, burst: number, now: number): Lease {
    if (this.leases.size >= this.maxKeys) this.sweeper.makeRoom(this.maxKeys, now);
    const base = this.baseLease(rate, burst);
    const e = new Lease(`${this.keyPrefix}{tb:${key}}`, base, base, rate, burst, now);
    // Advance: admit right away on credit, charged with the first lease (see the notes above).
    const advance = burst >= 1 ? Math.min(base, Math.max(1, Math.floor(burst / Math.max(1, this.nodeCount())))) : 0;
    e.tokens = advance;
    e.owed = advance;
    this.leases.set(key, e);
    return e;
  }

  private refill(e: Lease, now: number): void {
    e.pending = true;
    e.pendingSince = now;
    e.pendingTick = this.link.tick;
    const owed = e.owed;
    e.owed = 0;
    const want = e.want;
    void this.link
      .lease(e.redisKey, e.rate, e.burst, want, owed)
      .then(
        (reply) => this.onLease(e, want, owed, reply),
        (err: unknown) => this.onLeaseFailed(e, owed, err),
      )
      .catch((err: unknown) => this.link.fail(err));
  }

  private onLease(e: Lease, want: number, owed: number, reply: unknown): void {
    const pair = parsePair(reply);
    if (pair === undefined) {
      this.onLeaseFailed(e, owed, new MalformedReplyError(reply));
      return;
    }
    const [granted, waitMs] = pair;
    e.pending = false;
    e.tokens += granted;
    if (granted < want) {
      const wait = waitMs < 0 ? this.maxPollMs : waitMs;
      e.nextPollAt = this.clock() + Math.min(this.maxPollMs, Math.max(this.minPollMs, wait));
      e.want = e.base;
    } else {
      e.nextPollAt = 0;
      // Redis never grants more than the bucket holds, so growing past the burst is pointless.
      if (e.starved) e.want = Math.max(e.base, Math.min(e.want * 2, this.maxLeaseSize, e.burst));
    }
    e.starved = false;
  }

  private onLeaseFailed(e: Lease, owed: number, err: unknown): void {
    e.pending = false;
    e.owed += owed;
    this.link.fail(err);
  }

  private reclaimable(e: Lease, now: number): boolean {
    if (e.pending || now - e.lastUsed < this.idleMs) return false;
    const giveBack = e.owed - Math.floor(e.tokens);
    if (giveBack !== 0 && this.link.usable(now)) {
      void this.link.lease(e.redisKey, e.rate, e.burst, 0, giveBack).catch((err: unknown) => this.link.fail(err));
    }
    return true;
  }
}
