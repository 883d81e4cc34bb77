import { describe, expect, it } from 'vitest';
import { IncrementalSweeper } from '../../server/throttling/sweep.ts';
import { MAX_RETRY_MS, retryAfterMs, TokenBucketTable } from '../../server/throttling/token-bucket.ts';

function clock(start = 1000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

function takeMany(table: TokenBucketTable, key: string, rate: number, burst: number, n: number): number {
  let admitted = 0;
  for (let i = 0; i < n; i++) if (table.tryTake(key, rate, burst) === 0) admitted++;
  return admitted;
}

describe('TokenBucketTable', () => {
  it('admits the burst at once, then refuses with the time until the next token', () => {
    const c = clock();
    const t = new TokenBucketTable({ now: c.now });
    expect(takeMany(t, 'k', 10, 5, 5)).toBe(5);
    expect(t.tryTake('k', 10, 5)).toBe(100); // 1 token at 10/s
    c.advance(40);
    expect(t.tryTake('k', 10, 5)).toBe(60);
  });

  it('refills by elapsed time at the steady rate and never above the burst', () => {
    const c = clock();
    const t = new TokenBucketTable({ now: c.now });
    expect(takeMany(t, 'k', 100, 20, 1000)).toBe(20);
    let admitted = 0;
    for (let ms = 0; ms < 1000; ms++) {
      c.advance(1);
      admitted += takeMany(t, 'k', 100, 20, 10);
    }
    expect(admitted).toBe(100); // 1 s at 100/s
    c.advance(60_000);
    expect(takeMany(t, 'k', 100, 20, 1000)).toBe(20);
  });

  it('keeps keys independent', () => {
    const t = new TokenBucketTable({ now: clock().now });
    expect(takeMany(t, 'a', 1, 2, 10)).toBe(2);
    expect(takeMany(t, 'b', 1, 3, 10)).toBe(3);
  });

  it('charges a cost and refuses a cost above the burst forever', () => {
    const t = new TokenBucketTable({ now: clock().now });
    expect(t.tryTake('k', 10, 10, 4)).toBe(0);
    expect(t.tryTake('k', 10, 10, 4)).toBe(0);
    expect(t.tryTake('k', 10, 10, 4)).toBe(200); // 2 tokens left, 2 missing at 10/s
    expect(t.tryTake('k', 10, 10, 11)).toBe(MAX_RETRY_MS);
  });

  it('treats rate 0 as no refill and burst 0 as always refused', () => {
    const c = clock();
    const t = new TokenBucketTable({ now: c.now });
    expect(takeMany(t, 'k', 0, 2, 5)).toBe(2);
    c.advance(1e9);
    expect(t.tryTake('k', 0, 2)).toBe(MAX_RETRY_MS);
    expect(t.tryTake('z', 100, 0)).toBe(MAX_RETRY_MS);
  });

  it('refunds up to the burst', () => {
    const t = new TokenBucketTable({ now: clock().now });
    expect(takeMany(t, 'k', 1, 3, 3)).toBe(3);
    t.refund('k');
    expect(t.peek('k')).toBe(1);
    t.refund('k', 10);
    expect(t.peek('k')).toBe(3);
    t.refund('absent');
    expect(t.peek('absent')).toBeUndefined();
  });

  it('ignores a clock that goes backwards', () => {
    const c = clock(10_000);
    const t = new TokenBucketTable({ now: c.now });
    expect(takeMany(t, 'k', 1000, 1, 2)).toBe(1);
    c.advance(-5000);
    expect(t.tryTake('k', 1000, 1)).toBeGreaterThan(0);
    c.advance(5001);
    expect(t.tryTake('k', 1000, 1)).toBe(0);
  });

  it('applies a lowered burst or a new rate at once', () => {
    const c = clock();
    const t = new TokenBucketTable({ now: c.now });
    expect(t.tryTake('k', 10, 100)).toBe(0);
    expect(takeMany(t, 'k', 10, 5, 100)).toBe(5);
    c.advance(100);
    expect(takeMany(t, 'k', 1000, 5, 100)).toBe(5); // refilled at the new rate, capped by the burst
    c.advance(2);
    expect(takeMany(t, 'k', 1000, 5, 100)).toBe(2);
  });

  it('reclaims full (idle) buckets lazily without changing decisions', () => {
    const c = clock();
    const t = new TokenBucketTable({ now: c.now });
    for (let i = 0; i < 1000; i++) t.tryTake(`ip${i}`, 10, 10);
    expect(t.size).toBe(1000);
    c.advance(1000); // every bucket refilled, but used 1 s ago: kept
    for (let i = 0; i < 64 * 50; i++) t.tryTake('hot', 1e9, 1e9);
    expect(t.size).toBe(1001);
    c.advance(10_000); // now idle for the default 10 s
    // The hot path sweeps a few entries every 64 calls; hammer a single key.
    for (let i = 0; i < 64 * 50; i++) t.tryTake('hot', 1e9, 1e9);
    expect(t.size).toBeLessThan(1000);
    expect(t.sweep()).toBeGreaterThan(0);
    expect(t.size).toBe(1); // the hot key, used just now
    expect(takeMany(t, 'ip1', 10, 10, 100)).toBe(10); // a reclaimed key behaves as before: full
  });

  it('never holds more than maxKeys buckets', () => {
    const t = new TokenBucketTable({ now: clock().now, maxKeys: 100 });
    for (let i = 0; i < 10_000; i++) t.tryTake(`k${i}`, 1, 5);
    expect(t.size).toBeLessThanOrEqual(100);
  });

  it('costs no promise: returns a number synchronously', () => {
    const t = new TokenBucketTable();
    expect(typeof t.tryTake('k', 1, 1)).toBe('number');
  });
});

describe('retryAfterMs', () => {
  it('is at least 1 ms and capped', () => {
    expect(retryAfterMs(0.0001, 1e9)).toBe(1);
    expect(retryAfterMs(1, 0)).toBe(MAX_RETRY_MS);
    expect(retryAfterMs(1e12, 1)).toBe(MAX_RETRY_MS);
    expect(retryAfterMs(1, 4)).toBe(250);
  });
});

describe('IncrementalSweeper', () => {
  it('resumes where it stopped and wraps around', () => {
    const m = new Map<string, number>();
    for (let i = 0; i < 10; i++) m.set(`k${i}`, i);
    const s = new IncrementalSweeper(m, (v) => v % 2 === 0);
    expect(s.step(4, 0)).toBe(2); // k0..k3
    expect(s.step(4, 0)).toBe(2); // k4..k7
    expect(s.step(4, 0)).toBe(1); // k8, k9, wrap
    expect([...m.keys()]).toEqual(['k1', 'k3', 'k5', 'k7', 'k9']);
  });

  it('makeRoom evicts the oldest entries when nothing is reclaimable', () => {
    const m = new Map<string, number>([
      ['a', 1],
      ['b', 1],
      ['c', 1],
    ]);
    const s = new IncrementalSweeper(m, () => false);
    s.makeRoom(3, 0);
    expect([...m.keys()]).toEqual(['b', 'c']);
  });
});
