import { describe, expect, it } from 'vitest';
import { periodBounds, periodEnd, periodStart, QuotaCounter } from '../../server/throttling/quota.ts';

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number): string => new Date(ms).toISOString();

function clock(startIso: string): { now: () => number; set: (isoTime: string) => void } {
  let t = at(startIso);
  return { now: () => t, set: (s) => (t = at(s)) };
}

describe('quota periods (UTC)', () => {
  it('DAY runs from 00:00 to 00:00 UTC', () => {
    const b = periodBounds('DAY', at('2024-05-17T13:45:12.345Z'));
    expect(iso(b.start)).toBe('2024-05-17T00:00:00.000Z');
    expect(iso(b.end)).toBe('2024-05-18T00:00:00.000Z');
    expect(iso(periodStart('DAY', at('2024-05-17T23:59:59.999Z')))).toBe('2024-05-17T00:00:00.000Z');
    expect(iso(periodStart('DAY', at('2024-05-18T00:00:00.000Z')))).toBe('2024-05-18T00:00:00.000Z');
  });

  it('WEEK starts on Monday 00:00 UTC (ISO week)', () => {
    // 2024-02-29 is a Thursday.
    expect(iso(periodStart('WEEK', at('2024-02-29T12:00:00Z')))).toBe('2024-02-26T00:00:00.000Z');
    expect(iso(periodEnd('WEEK', at('2024-02-29T12:00:00Z')))).toBe('2024-03-04T00:00:00.000Z');
    // Sunday, last millisecond of the week, and the Monday after.
    expect(iso(periodStart('WEEK', at('2024-03-03T23:59:59.999Z')))).toBe('2024-02-26T00:00:00.000Z');
    expect(iso(periodStart('WEEK', at('2024-03-04T00:00:00.000Z')))).toBe('2024-03-04T00:00:00.000Z');
    // Across a year boundary: 2025-01-01 is a Wednesday.
    expect(iso(periodStart('WEEK', at('2025-01-01T08:00:00Z')))).toBe('2024-12-30T00:00:00.000Z');
    // Before 1970 (negative epoch ms): 1969-12-31 is a Wednesday.
    expect(iso(periodStart('WEEK', at('1969-12-31T10:00:00Z')))).toBe('1969-12-29T00:00:00.000Z');
    // A Monday is its own week start, whatever the time zone of the process.
    for (let d = 0; d < 14; d++) {
      const s = periodStart('WEEK', at('2024-06-01T00:00:00Z') + d * 86_400_000);
      expect(new Date(s).getUTCDay()).toBe(1);
    }
  });

  it('MONTH runs from the 1st to the 1st, including December and February', () => {
    expect(iso(periodStart('MONTH', at('2024-01-31T23:59:59.999Z')))).toBe('2024-01-01T00:00:00.000Z');
    expect(iso(periodEnd('MONTH', at('2024-01-31T23:59:59.999Z')))).toBe('2024-02-01T00:00:00.000Z');
    expect(iso(periodEnd('MONTH', at('2024-02-29T12:00:00Z')))).toBe('2024-03-01T00:00:00.000Z');
    expect(iso(periodEnd('MONTH', at('2023-02-28T12:00:00Z')))).toBe('2023-03-01T00:00:00.000Z');
    expect(iso(periodStart('MONTH', at('2024-12-31T23:59:59.999Z')))).toBe('2024-12-01T00:00:00.000Z');
    expect(iso(periodEnd('MONTH', at('2024-12-15T00:00:00Z')))).toBe('2025-01-01T00:00:00.000Z');
    expect(iso(periodStart('MONTH', at('2025-01-01T00:00:00.000Z')))).toBe('2025-01-01T00:00:00.000Z');
  });
});

describe('QuotaCounter', () => {
  it('counts down to the limit, then refuses until the period ends', () => {
    const c = clock('2024-05-17T10:00:00Z');
    const q = new QuotaCounter({ now: c.now });
    expect(q.tryConsume('k', 3, 'DAY')).toEqual({ ok: true, remaining: 2 });
    expect(q.tryConsume('k', 3, 'DAY')).toEqual({ ok: true, remaining: 1 });
    expect(q.tryConsume('k', 3, 'DAY')).toEqual({ ok: true, remaining: 0 });
    expect(q.tryConsume('k', 3, 'DAY')).toEqual({ ok: false, resetAt: at('2024-05-18T00:00:00Z') });
    c.set('2024-05-17T23:59:59.999Z');
    expect(q.tryConsume('k', 3, 'DAY').ok).toBe(false);
    c.set('2024-05-18T00:00:00.000Z');
    expect(q.tryConsume('k', 3, 'DAY')).toEqual({ ok: true, remaining: 2 });
  });

  it('resets a monthly quota at the month rollover', () => {
    const c = clock('2024-01-31T23:00:00Z');
    const q = new QuotaCounter({ now: c.now });
    expect(q.tryConsume('k', 1, 'MONTH').ok).toBe(true);
    expect(q.tryConsume('k', 1, 'MONTH')).toEqual({ ok: false, resetAt: at('2024-02-01T00:00:00Z') });
    c.set('2024-02-01T00:00:00Z');
    expect(q.tryConsume('k', 1, 'MONTH')).toEqual({ ok: true, remaining: 0 });
    expect(q.tryConsume('k', 1, 'MONTH')).toEqual({ ok: false, resetAt: at('2024-03-01T00:00:00Z') });
  });

  it('resets a weekly quota on Monday 00:00 UTC, not on Sunday', () => {
    const c = clock('2024-03-02T12:00:00Z'); // Saturday
    const q = new QuotaCounter({ now: c.now });
    expect(q.tryConsume('k', 1, 'WEEK').ok).toBe(true);
    c.set('2024-03-03T12:00:00Z'); // Sunday
    expect(q.tryConsume('k', 1, 'WEEK')).toEqual({ ok: false, resetAt: at('2024-03-04T00:00:00Z') });
    c.set('2024-03-04T00:00:00Z'); // Monday
    expect(q.tryConsume('k', 1, 'WEEK').ok).toBe(true);
  });

  it('keeps keys apart, refunds, and a refused request counts nothing', () => {
    const q = new QuotaCounter({ now: clock('2024-05-17T10:00:00Z').now });
    expect(q.consume('a', 2, 'DAY')).toBe(1);
    expect(q.consume('b', 2, 'DAY')).toBe(1);
    expect(q.consume('a', 2, 'DAY')).toBe(0);
    expect(q.consume('a', 2, 'DAY')).toBe(-1);
    expect(q.used('a')).toBe(2);
    q.refund('a');
    expect(q.used('a')).toBe(1);
    expect(q.consume('a', 2, 'DAY')).toBe(0);
  });

  it('switching the period of a key starts a fresh count', () => {
    const q = new QuotaCounter({ now: clock('2024-05-17T10:00:00Z').now });
    expect(q.consume('k', 1, 'DAY')).toBe(0);
    expect(q.consume('k', 1, 'MONTH')).toBe(0);
  });

  it('reclaims counters of ended periods and bounds the table', () => {
    const c = clock('2024-05-17T10:00:00Z');
    const q = new QuotaCounter({ now: c.now, maxKeys: 50 });
    for (let i = 0; i < 200; i++) q.consume(`k${i}`, 10, 'DAY');
    expect(q.size).toBeLessThanOrEqual(50);
    c.set('2024-05-18T10:00:00Z');
    expect(q.sweep()).toBeGreaterThan(0);
    expect(q.size).toBe(0);
  });
});
