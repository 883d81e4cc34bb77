/**
 * The throttling stage on the WebSocket message path, in memory mode. The buckets that apply to
 * a (stage, route) are resolved once to the store's own bucket objects (pinned, so REST requests
 * and messages still share one API-level and one route bucket), and the per-connection bucket
 * lives on the session: a message pays a clock read and a few arithmetic operations, no map
 * lookup and no string key. Same semantics as RequestLimiter: connection, then route (or the
 * stage default), then API level; a refusal refunds the buckets that had admitted.
 * Redis mode and API-key metering keep using RequestLimiter.
 */
import type { CompiledBucket, ThrottleLimit } from './limiter.ts';
import { type Bucket, retryAfterMs, takeFrom } from './token-bucket.ts';

const EPSILON = 1e-9;

export interface ConnectionBucketHolder {
  bucketTokens: number;
  bucketLast: number;
}

export type MessageThrottleResult = { ok: true } | { ok: false; level: string; retryAfterMs: number };

const OK: MessageThrottleResult = Object.freeze({ ok: true });

interface Pinned {
  bucket: Bucket;
  rate: number;
  burst: number;
  level: string;
}

export class MessageThrottle {
  private readonly route: Pinned | undefined;
  private readonly account: Pinned | undefined;
  constructor(
    readonly clock: () => number,
    pin: (key: string, rate: number, burst: number) => Bucket,
    route: CompiledBucket | undefined,
    account: CompiledBucket | undefined,
    private readonly perConnection: ThrottleLimit | undefined,
  ) {
    const p = (b: CompiledBucket | undefined): Pinned | undefined =>
      b === undefined ? undefined : { bucket: pin(b.key, b.rate, b.burst), rate: b.rate, burst: b.burst, level: b.level };
    this.route = p(route);
    this.account = p(account);
  }

  /** True when nothing applies: the gateway can skip the stage entirely. */
  get empty(): boolean {
    return this.route === undefined && this.account === undefined && this.perConnection === undefined;
  }

  check(conn: ConnectionBucketHolder): MessageThrottleResult {
    const now = this.clock();
    const pc = this.perConnection;
    if (pc !== undefined) {
      let tokens = conn.bucketTokens;
      if (Number.isNaN(tokens)) tokens = pc.burstLimit; // the connection's first message
      else {
        const elapsed = now - conn.bucketLast;
        if (elapsed > 0) tokens = Math.min(pc.burstLimit, tokens + (elapsed * pc.rateLimit) / 1000);
      }
      if (now > conn.bucketLast) conn.bucketLast = now;
      if (tokens + EPSILON < 1) {
        conn.bucketTokens = tokens;
        return { ok: false, level: 'connection', retryAfterMs: retryAfterMs(1 - tokens, pc.rateLimit) };
      }
      conn.bucketTokens = tokens - 1;
    }
    const r = this.route;
    if (r !== undefined) {
      const wait = takeFrom(r.bucket, r.rate, r.burst, 1, now);
      if (wait > 0) {
        if (pc !== undefined) conn.bucketTokens += 1;
        return { ok: false, level: r.level, retryAfterMs: wait };
      }
    }
    const a = this.account;
    if (a !== undefined) {
      const wait = takeFrom(a.bucket, a.rate, a.burst, 1, now);
      if (wait > 0) {
        if (pc !== undefined) conn.bucketTokens += 1;
        if (r !== undefined) r.bucket.tokens += 1;
        return { ok: false, level: 'account', retryAfterMs: wait };
      }
    }
    return OK;
  }
}
