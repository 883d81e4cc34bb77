import { type QuotaPeriod, periodEnd, periodStart } from './quota.ts';
import { MalformedReplyError, parsePair, type RedisLink } from './redis-link.ts';
import { IncrementalSweeper } from './sweep.ts';

/**
 * Cluster-wide quotas with a node-local batched counter (see the accuracy notes at the top of
 * distributed.ts). Each node reserves `chunk` units at a time from the shared per-period
 * counter (Lua: INCRBY + PEXPIREAT, never past the limit) and spends them locally, so a request
 * costs a Redis round trip only once per chunk. While a reservation is in flight a node may
 * admit requests on credit, as long as its credit not yet confirmed charged by Redis stays
 * below `chunk`; credit is charged with the next reservation.
 */
export type QuotaDecision = { ok: true } | { ok: false; resetAt: number };

export const QUOTA_OK: QuotaDecision = Object.freeze({ ok: true });

export interface RedisQuotaOptions {
  link: RedisLink;
  keyPrefix: string;
  wallNow: () => number;
  nodeCount: () => number;
  /** Share of the limit reserved per node per round trip. Default 0.01 (1 %). */
  chunkFraction: number;
  /** Largest reservation. Default 100. */
  maxChunk: number;
  /** A reservation pending longer than this makes the node use its local share. */
  timeoutMs: number;
  idleMs: number;
  maxKeys: number;
}

/** Slack after the period end before the Redis counter expires (node clocks may lag). */
const EXPIRY_SLACK_MS = 3_600_000; // 1 h
const SWEEP_MASK = 63;
const SWEEP_BATCH = 8;

class QuotaSlot {
  reserved = 0;
  owed = 0;
  /** Units admitted without a reservation (credit, outage share) and not yet confirmed charged. */
  credit = 0;
  pending = false;
  pendingSince = 0;
  pendingTick = 0;
  exhausted = false;
  usedSeen = 0;
  fallbackUsed = 0;
  start = 0;
  end = 0;
  chunk = 1;
  limit = 0;
  period: QuotaPeriod = 'DAY';
  redisKey = '';
  denied: QuotaDecision = QUOTA_OK;
  lastUsed = 0;
}

export class RedisQuotaReserver {
  private readonly slots = new Map<string, QuotaSlot>();
  private readonly sweeper: IncrementalSweeper<QuotaSlot>;
  private calls = 0;

  constructor(private readonly o: RedisQuotaOptions) {
    this.sweeper = new IncrementalSweeper(this.slots, (q, now) => this.reclaimable(q, now));
  }

  get size(): number {
    return this.slots.size;
  }

  tryQuota(key: string, limit: number, period: QuotaPeriod): QuotaDecision {
    const now = this.o.wallNow();
    if ((++this.calls & SWEEP_MASK) === 0) this.sweeper.step(SWEEP_BATCH, now);
    let q = this.slots.get(key);
    if (q === undefined) {
      if (this.slots.size >= this.o.maxKeys) this.sweeper.makeRoom(this.o.maxKeys, now);
      q = new QuotaSlot();
      this.slots.set(key, q);
      this.rollover(q, key, limit, period, now);
    } else if (now >= q.end || now < q.start || q.period !== period) {
      this.rollover(q, key, limit, period, now);
    } else {
      q.limit = limit; // a reloaded limit applies at once; the chunk size follows at the next period
    }
    q.lastUsed = now;
    if (q.reserved >= 1) {
      q.reserved--;
      if (!q.exhausted && !q.pending && q.reserved * 2 < q.chunk && this.o.link.usableNow()) this.reserve(q, now, q.chunk);
      return QUOTA_OK;
    }
    if (q.exhausted) return q.denied;
    const usable = this.o.link.usableNow();
    if (!usable || (q.pending && this.o.link.overdue(q.pendingTick, q.pendingSince, now, this.o.timeoutMs))) {
      if (usable) this.o.link.fail(new Error('quota reservation timed out'));
      // Local share of what was left when Redis last answered; charged once it is back.
      const n = Math.max(1, this.o.nodeCount());
      if (q.fallbackUsed < Math.floor((q.limit - q.usedSeen) / n)) {
        q.fallbackUsed++;
        q.owed++;
        q.credit++;
        return QUOTA_OK;
      }
      return q.denied;
    }
    if (q.credit < q.chunk) {
      q.credit++;
      q.owed++;
      if (!q.pending) this.reserve(q, now, q.chunk);
      return QUOTA_OK;
    }
    if (!q.pending) this.reserve(q, now, q.chunk);
    return { ok: false, resetAt: now + 1 };
  }

  /** Reclaim step for the store's coarse timer. */
  sweepStep(budget: number): void {
    this.sweeper.step(budget, this.o.wallNow());
  }

  /** Best effort on shutdown: charge credit, give back unspent reservations. */
  flush(): Promise<unknown>[] {
    const out: Promise<unknown>[] = [];
    if (!this.o.link.connected()) return out;
    for (const q of this.slots.values()) {
      const delta = q.owed - Math.floor(q.reserved);
      if (delta !== 0) out.push(this.o.link.reserve(q.redisKey, q.limit, 0, delta, q.end + EXPIRY_SLACK_MS));
    }
    this.slots.clear();
    return out;
  }

  private rollover(q: QuotaSlot, key: string, limit: number, period: QuotaPeriod, now: number): void {
    const n = Math.max(1, this.o.nodeCount());
    q.period = period;
    q.limit = limit;
    q.start = periodStart(period, now);
    q.end = periodEnd(period, now);
    q.redisKey = `${this.o.keyPrefix}{q:${key}}:${period}:${q.start}`;
    q.chunk = Math.max(1, Math.min(this.o.maxChunk, Math.ceil((limit * this.o.chunkFraction) / n)));
    q.reserved = 0;
    q.owed = 0;
    q.credit = 0;
    q.pending = false;
    q.exhausted = false;
    q.usedSeen = 0;
    q.fallbackUsed = 0;
    q.denied = Object.freeze({ ok: false, resetAt: q.end });
  }

  /** Ask for `want` units and charge the credit used so far (`want` 0: charge only). */
  private reserve(q: QuotaSlot, now: number, want: number): void {
    q.pending = true;
    q.pendingSince = now;
    q.pendingTick = this.o.link.tick;
    const owed = q.owed;
    q.owed = 0;
    const generation = q.start;
    void this.o.link
      .reserve(q.redisKey, q.limit, want, owed, q.end + EXPIRY_SLACK_MS)
      .then(
        (reply) => this.onReserved(q, generation, want, owed, reply),
        (err: unknown) => this.onFailed(q, generation, owed, err),
      )
      .catch((err: unknown) => this.o.link.fail(err));
  }

  private onReserved(q: QuotaSlot, generation: number, want: number, owed: number, reply: unknown): void {
    if (q.start !== generation) return; // the period rolled over meanwhile: this grant is void
    const pair = parsePair(reply);
    if (pair === undefined) {
      this.onFailed(q, generation, owed, new MalformedReplyError(reply));
      return;
    }
    const [granted, used] = pair;
    q.pending = false;
    q.reserved += granted;
    q.usedSeen = used;
    q.credit = Math.max(0, q.credit - owed);
    q.fallbackUsed = 0;
    if (granted < want) q.exhausted = true;
    // Credit admitted while this call was in flight is charged now even when exhausted, so the
    // shared counter always ends up equal to what the nodes admitted.
    if (q.exhausted && q.owed !== 0 && this.o.link.usableNow()) this.reserve(q, this.o.wallNow(), 0);
  }

  private onFailed(q: QuotaSlot, generation: number, owed: number, err: unknown): void {
    this.o.link.fail(err);
    if (q.start !== generation) return;
    q.pending = false;
    q.owed += owed;
  }

  private reclaimable(q: QuotaSlot, now: number): boolean {
    if (q.pending) return false;
    const over = now >= q.end;
    // An exhausted slot is kept until its period ends so that a re-created slot cannot
    // admit a request on credit again.
    if (!over && (q.exhausted || now - q.lastUsed < this.o.idleMs)) return false;
    if (!over && (q.owed !== 0 || q.reserved >= 1) && this.o.link.usableNow()) {
      const delta = q.owed - Math.floor(q.reserved);
      void this.o.link
        .reserve(q.redisKey, q.limit, 0, delta, q.end + EXPIRY_SLACK_MS)
        .catch((err: unknown) => this.o.link.fail(err));
    }
    return true;
  }
}
