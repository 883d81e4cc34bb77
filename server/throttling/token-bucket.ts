import { IncrementalSweeper } from './sweep.ts';

/**
 * Local token buckets, one per key, refilled by elapsed time (never by timers).
 *
 * `tryTake` is synchronous and, for a key already in the table, allocates nothing: one Map
 * lookup, a clock read and a few float operations. A bucket that has refilled to its burst is
 * indistinguishable from a missing one, so the incremental sweep drops exactly those once they
 * have also been idle for `idleMs` (so that busy keys far below their limit, which are always
 * full, are not dropped and re-created over and over): idle memory is reclaimed without
 * changing any decision. A hard `maxKeys` bound evicts the oldest
 * inserted keys first when a flood of distinct keys arrives (an evicted bucket that was not full
 * starts full again: a bounded leak for that key only, preferred to refusing new keys).
 */

/** Upper bound for a returned retry delay (rate 0, or a cost larger than the burst). */
export const MAX_RETRY_MS = 3_600_000; // 1 h

export interface TokenBucketTableOptions {
  /** Monotonic clock in ms. Default `performance.now()`. */
  now?: (() => number) | undefined;
  /** Size bound of the table. Default 100_000 keys. */
  maxKeys?: number | undefined;
  /** A full bucket is reclaimed once unused for this long. Default 10 s. */
  idleMs?: number | undefined;
}

/** Calls between two sweep steps (mask: 64) and entries inspected per step. */
const SWEEP_MASK = 63;
const SWEEP_BATCH = 8;
const DEFAULT_MAX_KEYS = 100_000;
const DEFAULT_IDLE_MS = 10_000;
/** Float slack so that ten refills of 0.1 token make one token. */
const EPSILON = 1e-9;

export class Bucket {
  /** Pinned buckets are held by a caller (the message fast path) and never reclaimed. */
  pinned = false;
  constructor(
    public tokens: number,
    public last: number,
    public rate: number,
    public burst: number,
  ) {}
}

/** Refill `b` to `now` and take `cost` tokens: 0 when admitted, else the ms until they accrue. */
export function takeFrom(b: Bucket, rate: number, burst: number, cost: number, now: number): number {
  const elapsed = now - b.last;
  // A clock that went backwards (or a same-ms call) adds nothing; min() also applies a lowered burst.
  const t = elapsed > 0 ? b.tokens + (elapsed * rate) / 1000 : b.tokens;
  b.tokens = Math.min(t, burst);
  if (elapsed > 0) b.last = now;
  b.rate = rate;
  b.burst = burst;
  if (b.tokens + EPSILON >= cost) {
    b.tokens -= cost;
    return 0;
  }
  return cost > burst ? MAX_RETRY_MS : retryAfterMs(cost - b.tokens, rate);
}

/** Milliseconds until `deficit` tokens have accrued at `rate` tokens/s; at least 1. */
export function retryAfterMs(deficit: number, rate: number): number {
  if (!(rate > 0)) return MAX_RETRY_MS;
  const ms = Math.ceil((deficit * 1000) / rate);
  return ms < 1 ? 1 : Math.min(ms, MAX_RETRY_MS);
}

const defaultNow = (): number => performance.now();

export class TokenBucketTable {
  private readonly map = new Map<string, Bucket>();
  /** The table's monotonic clock (ms), for callers that read it once and use `tryTakeAt`. */
  readonly clock: () => number;
  private readonly maxKeys: number;
  private readonly sweeper: IncrementalSweeper<Bucket>;
  private calls = 0;

  constructor(opts: TokenBucketTableOptions = {}) {
    this.clock = opts.now ?? defaultNow;
    this.maxKeys = Math.max(1, opts.maxKeys ?? DEFAULT_MAX_KEYS);
    const idleMs = opts.idleMs ?? DEFAULT_IDLE_MS;
    this.sweeper = new IncrementalSweeper(this.map, (b, now) => !b.pinned && now - b.last >= idleMs && isFull(b, now));
  }

  get size(): number {
    return this.map.size;
  }

  /**
   * Take `cost` tokens from the bucket `key` (capacity `burst`, refill `rate` tokens/s).
   * Returns 0 when admitted, else the ms until enough tokens will have accrued (>= 1).
   * The bucket's rate and burst are those of the latest call, so a config reload applies at once.
   */
  tryTake(key: string, rate: number, burst: number, cost = 1): number {
    return this.tryTakeAt(key, rate, burst, cost, this.clock());
  }

  /** As `tryTake` with a clock reading the caller already has. */
  tryTakeAt(key: string, rate: number, burst: number, cost: number, now: number): number {
    if ((++this.calls & SWEEP_MASK) === 0) this.sweeper.step(SWEEP_BATCH, now);
    let b = this.map.get(key);
    if (b === undefined) {
      if (this.map.size >= this.maxKeys) this.sweeper.makeRoom(this.maxKeys, now);
      b = new Bucket(burst, now, rate, burst);
      this.map.set(key, b);
    }
    return takeFrom(b, rate, burst, cost, now);
  }

  /**
   * The bucket object of `key`, created full if needed and never reclaimed afterwards: a caller
   * that holds it can take tokens with `takeFrom` without a lookup, sharing state with every
   * `tryTake` on the same key.
   */
  pin(key: string, rate: number, burst: number): Bucket {
    let b = this.map.get(key);
    if (b === undefined) {
      b = new Bucket(burst, this.clock(), rate, burst);
      this.map.set(key, b);
    }
    b.pinned = true;
    return b;
  }

  /** Give back tokens taken by a request that another limit then refused. */
  refund(key: string, cost = 1): void {
    const b = this.map.get(key);
    if (b === undefined) return;
    const t = b.tokens + cost;
    b.tokens = Math.min(t, b.burst);
  }

  /** Tokens currently available for `key` (refilled to now), or undefined when absent (= full). */
  peek(key: string): number | undefined {
    const b = this.map.get(key);
    if (b === undefined) return undefined;
    const elapsed = this.clock() - b.last;
    const t = elapsed > 0 ? b.tokens + (elapsed * b.rate) / 1000 : b.tokens;
    return Math.min(t, b.burst);
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  /** Reclaim every idle full bucket now (for a coarse owner timer; the hot path sweeps by itself). */
  sweep(): number {
    return this.sweeper.sweepAll(this.clock());
  }

  clear(): void {
    this.map.clear();
  }
}

function isFull(b: Bucket, now: number): boolean {
  const elapsed = now - b.last;
  return b.tokens + (elapsed > 0 ? (elapsed * b.rate) / 1000 : 0) >= b.burst;
}
