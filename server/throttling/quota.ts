import { IncrementalSweeper } from './sweep.ts';

/**
 * Usage-plan quotas: a request count per key per calendar period in UTC, as API Gateway's
 * `quota { limit, period: DAY | WEEK | MONTH }`. A DAY starts at 00:00 UTC, a WEEK on Monday
 * 00:00 UTC (ISO 8601 week), a MONTH on the 1st at 00:00 UTC. Periods use the wall clock
 * (epoch ms), injected for tests. (API Gateway's `offset`, which shortens only the very first
 * period, is not modelled.)
 */
export type QuotaPeriod = 'DAY' | 'WEEK' | 'MONTH';

export const QUOTA_PERIODS: readonly QuotaPeriod[] = ['DAY', 'WEEK', 'MONTH'];

const DAY_MS = 86_400_000;

/** Start (inclusive, epoch ms) of the UTC period containing `epochMs`. */
export function periodStart(period: QuotaPeriod, epochMs: number): number {
  switch (period) {
    case 'DAY':
      return Math.floor(epochMs / DAY_MS) * DAY_MS;
    case 'WEEK': {
      const day = Math.floor(epochMs / DAY_MS);
      // 1970-01-01 was a Thursday: (day + 3) mod 7 is 0 on Mondays.
      const sinceMonday = (((day + 3) % 7) + 7) % 7;
      return (day - sinceMonday) * DAY_MS;
    }
    case 'MONTH': {
      const d = new Date(epochMs);
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    }
  }
}

/** End (exclusive, epoch ms) of the UTC period containing `epochMs` = start of the next one. */
export function periodEnd(period: QuotaPeriod, epochMs: number): number {
  switch (period) {
    case 'DAY':
      return periodStart('DAY', epochMs) + DAY_MS;
    case 'WEEK':
      return periodStart('WEEK', epochMs) + 7 * DAY_MS;
    case 'MONTH': {
      const d = new Date(epochMs);
      // Date.UTC normalises month 12 to January of the next year.
      return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
    }
  }
}

export interface PeriodBounds {
  start: number;
  end: number;
}

export function periodBounds(period: QuotaPeriod, epochMs: number): PeriodBounds {
  return { start: periodStart(period, epochMs), end: periodEnd(period, epochMs) };
}

export type QuotaResult = { ok: true; remaining: number } | { ok: false; resetAt: number };

export interface QuotaCounterOptions {
  /** Wall clock, epoch ms. Default `Date.now`. */
  now?: (() => number) | undefined;
  /** Size bound of the table. Default 100_000 keys. */
  maxKeys?: number | undefined;
}

class QuotaEntry {
  constructor(
    public used: number,
    public period: QuotaPeriod,
    public start: number,
    public end: number,
  ) {}
}

const SWEEP_MASK = 63;
const SWEEP_BATCH = 8;

/**
 * Local quota counters. An entry whose period has ended is equivalent to an absent one and is
 * reclaimed by the incremental sweep. Counting is exact for one process.
 */
export class QuotaCounter {
  private readonly map = new Map<string, QuotaEntry>();
  private readonly now: () => number;
  private readonly maxKeys: number;
  private readonly sweeper: IncrementalSweeper<QuotaEntry>;
  private calls = 0;

  constructor(opts: QuotaCounterOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.maxKeys = Math.max(1, opts.maxKeys ?? 100_000);
    this.sweeper = new IncrementalSweeper(this.map, (e, now) => now >= e.end);
  }

  get size(): number {
    return this.map.size;
  }

  tryConsume(key: string, limit: number, period: QuotaPeriod, cost = 1): QuotaResult {
    const remaining = this.consume(key, limit, period, cost);
    if (remaining >= 0) return { ok: true, remaining };
    return { ok: false, resetAt: this.resetAt(key) };
  }

  /**
   * Allocation-free form of `tryConsume`: the remaining count after this request (>= 0) when
   * admitted, -1 when the quota of the current period is exhausted (nothing is counted then).
   */
  consume(key: string, limit: number, period: QuotaPeriod, cost = 1): number {
    const now = this.now();
    if ((++this.calls & SWEEP_MASK) === 0) this.sweeper.step(SWEEP_BATCH, now);
    let e = this.map.get(key);
    if (e === undefined) {
      if (this.map.size >= this.maxKeys) this.sweeper.makeRoom(this.maxKeys, now);
      e = new QuotaEntry(0, period, periodStart(period, now), periodEnd(period, now));
      this.map.set(key, e);
    } else if (now >= e.end || now < e.start || e.period !== period) {
      e.used = 0;
      e.period = period;
      e.start = periodStart(period, now);
      e.end = periodEnd(period, now);
    }
    if (e.used + cost > limit) return -1;
    e.used += cost;
    return limit - e.used;
  }

  /** Give back a count consumed by a request that was refused afterwards. */
  refund(key: string, cost = 1): void {
    const e = this.map.get(key);
    if (e !== undefined) e.used = Math.max(0, e.used - cost);
  }

  /** Requests counted for `key` in the current period. */
  used(key: string): number {
    const e = this.map.get(key);
    return e === undefined || this.now() >= e.end ? 0 : e.used;
  }

  /** Epoch ms at which the current period of `key` ends (when an exhausted quota resets). */
  resetAt(key: string): number {
    const e = this.map.get(key);
    return e === undefined ? periodEnd('DAY', this.now()) : e.end;
  }

  sweep(): number {
    return this.sweeper.sweepAll(this.now());
  }
}
