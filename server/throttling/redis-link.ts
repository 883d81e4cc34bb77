import type { Cluster, Redis } from 'ioredis';
import { LEASE_COMMAND, LEASE_LUA, QUOTA_COMMAND, QUOTA_LUA } from './redis-scripts.ts';

/**
 * The throttling store's view of its Redis client: the two Lua commands (defined once on the
 * client), a health verdict the hot path can read without I/O, and error accounting.
 *
 * Health: usable while the client reports `status === 'ready'` and no call failed or timed out
 * during the last `degradedMs`. While unusable the store serves node-local buckets and sends
 * nothing, so a client with an offline queue never accumulates throttling traffic.
 */
interface ThrottleCommands {
  [LEASE_COMMAND]: (key: string, rate: number, burst: number, want: number, owed: number) => Promise<unknown>;
  [QUOTA_COMMAND]: (key: string, limit: number, want: number, owed: number, expireAtMs: number) => Promise<unknown>;
}

export interface RedisLinkOptions {
  redis: Redis | Cluster;
  /** Monotonic clock, ms (the same one the hot path passes to `usable`). */
  now: () => number;
  degradedMs: number;
  /** Period of the link's single coarse timer (unref'd). */
  tickMs: number;
  onTick: () => void;
  onError: ((err: unknown) => void) | undefined;
}

export class RedisLink {
  readonly redis: Redis | Cluster;
  private readonly commands: ThrottleCommands;
  private readonly now: () => number;
  private readonly degradedMs: number;
  private readonly onError: ((err: unknown) => void) | undefined;
  private readonly timer: NodeJS.Timeout;
  private degradedUntil = Number.NEGATIVE_INFINITY;
  closed = false;
  calls = 0;
  errors = 0;
  private readonly inflight = new Set<Promise<unknown>>();
  /**
   * Incremented by the coarse timer. A call is only judged "timed out" once two ticks have
   * passed since it was sent: the event loop then ran at least one full poll phase in between,
   * so the reply really is late. A process stall (GC, CPU starvation) alone never looks like a
   * Redis timeout, which would switch to local shares and over-admit.
   */
  tick = 0;

  constructor(o: RedisLinkOptions) {
    this.redis = o.redis;
    this.now = o.now;
    this.degradedMs = o.degradedMs;
    this.onError = o.onError;
    // defineCommand replaces an identical earlier definition, so sharing one client between
    // several stores is harmless; ioredis sends EVALSHA and falls back to EVAL on NOSCRIPT.
    o.redis.defineCommand(LEASE_COMMAND, { numberOfKeys: 1, lua: LEASE_LUA });
    o.redis.defineCommand(QUOTA_COMMAND, { numberOfKeys: 1, lua: QUOTA_LUA });
    this.commands = o.redis as unknown as ThrottleCommands;
    const onTick = o.onTick;
    this.timer = setInterval(() => {
      this.tick++;
      onTick();
    }, o.tickMs);
    this.timer.unref();
  }

  /** True when a call sent at tick `sentTick` and time `sentAt` is overdue (see `tick`). */
  overdue(sentTick: number, sentAt: number, now: number, timeoutMs: number): boolean {
    return now - sentAt > timeoutMs && this.tick - sentTick >= 2;
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }

  usable(now: number): boolean {
    return !this.closed && this.redis.status === 'ready' && now >= this.degradedUntil;
  }

  usableNow(): boolean {
    return this.usable(this.now());
  }

  /** Ready as far as the client knows (ignores the degraded window): for best-effort flushes. */
  connected(): boolean {
    return this.redis.status === 'ready';
  }

  degraded(now: number): boolean {
    return !this.usable(now);
  }

  fail(err: unknown): void {
    this.errors++;
    this.degradedUntil = this.now() + this.degradedMs;
    if (this.onError !== undefined) this.onError(err);
  }

  lease(key: string, rate: number, burst: number, want: number, owed: number): Promise<unknown> {
    return this.track(this.commands[LEASE_COMMAND](key, rate, burst, want, owed));
  }

  reserve(key: string, limit: number, want: number, owed: number, expireAtMs: number): Promise<unknown> {
    return this.track(this.commands[QUOTA_COMMAND](key, limit, want, owed, expireAtMs));
  }

  /** Settles when every call sent so far has settled. */
  drain(): Promise<unknown> {
    return Promise.allSettled([...this.inflight]);
  }

  private track(p: Promise<unknown>): Promise<unknown> {
    this.calls++;
    this.inflight.add(p);
    const done = (): void => {
      this.inflight.delete(p);
    };
    // The caller handles the outcome; this only keeps the in-flight set for `drain`.
    void p.then(done, done);
    return p;
  }
}

/** A promise resolved after `ms` (timer unref'd) and a function that cancels the timer. */
export function deadline(ms: number): { expired: Promise<void>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    timer.unref();
  });
  return { expired, cancel: () => clearTimeout(timer) };
}

/** `[a, b]` from a two-integer Lua reply, or undefined when the reply has another shape. */
export function parsePair(reply: unknown): [number, number] | undefined {
  if (!Array.isArray(reply) || reply.length < 2) return undefined;
  const a: unknown = reply[0];
  const b: unknown = reply[1];
  if (typeof a !== 'number' || typeof b !== 'number') return undefined;
  return [a, b];
}

export class MalformedReplyError extends Error {
  constructor(reply: unknown) {
    super(`unexpected reply from throttling script: ${JSON.stringify(reply)}`);
    this.name = 'MalformedReplyError';
  }
}
