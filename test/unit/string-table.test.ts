import { describe, expect, it } from 'vitest';
import { StringTable } from '../../server/string-table.ts';

// Deterministic PRNG so a failure is reproducible.
let seed = 987654321;
const rnd = () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
};

function sameContents(t: StringTable<number>, m: Map<string, number>): void {
  expect(t.size).toBe(m.size);
  expect(t.values().sort((a, b) => a - b)).toEqual([...m.values()].sort((a, b) => a - b));
  expect(t.keys().sort()).toEqual([...m.keys()].sort());
}

describe('StringTable', () => {
  it('behaves like a Map under 200,000 random operations (small key space: many deletes and re-inserts)', () => {
    const t = new StringTable<number>();
    const m = new Map<string, number>();
    const key = () => `k${Math.floor(rnd() * 500)}`;
    for (let n = 0; n < 200_000; n++) {
      const k = key();
      const op = rnd();
      if (op < 0.45) {
        t.set(k, n);
        m.set(k, n);
      } else if (op < 0.8) {
        expect(t.delete(k)).toBe(m.delete(k));
      } else {
        expect(t.get(k)).toBe(m.get(k));
        expect(t.has(k)).toBe(m.has(k));
      }
      if (n % 10_000 === 0) sameContents(t, m);
    }
    sameContents(t, m);
  });

  it('grows to 100,000 entries and shrinks back when they leave', () => {
    const t = new StringTable<number>();
    for (let i = 0; i < 100_000; i++) t.set(`id-${i}`, i);
    expect(t.size).toBe(100_000);
    for (let i = 0; i < 100_000; i += 7) expect(t.get(`id-${i}`)).toBe(i);
    for (let i = 0; i < 100_000; i++) if (i % 1000 !== 0) t.delete(`id-${i}`);
    expect(t.size).toBe(100);
    // Churn after the drop rebuilds the arrays at a size for the live entries.
    for (let i = 0; i < 10_000; i++) {
      t.set(`tmp-${i}`, -i);
      t.delete(`tmp-${i}`);
    }
    expect(t.size).toBe(100);
    expect(t.get('id-5000')).toBe(5000);
    expect(t.get('id-5001')).toBeUndefined();
    expect((t as unknown as { keyArray: unknown[] }).keyArray.length).toBeLessThanOrEqual(1024);
  });

  it('keeps colliding keys apart, replaces on set, and finds keys past tombstones', () => {
    const t = new StringTable<string>();
    // Same length, differing in one character: adjacent hashes are likely to share a probe run.
    const keys = Array.from({ length: 64 }, (_, i) => `Dwz4leekPHcCG6${String.fromCharCode(48 + i)}=`);
    for (const k of keys) t.set(k, k);
    for (const k of keys.filter((_, i) => i % 2 === 0)) expect(t.delete(k)).toBe(true);
    for (const [i, k] of keys.entries()) expect(t.get(k)).toBe(i % 2 === 0 ? undefined : k);
    t.set(keys[1]!, 'replaced');
    expect(t.get(keys[1]!)).toBe('replaced');
    expect(t.size).toBe(32);
    expect(t.delete('absent')).toBe(false);
    // Keys that look like Object.prototype members are ordinary keys.
    t.set('__proto__', 'p');
    t.set('constructor', 'c');
    expect([t.get('__proto__'), t.get('constructor'), t.get('toString')]).toEqual(['p', 'c', undefined]);
    t.clear();
    expect([t.size, t.keys(), t.values(), t.get('__proto__')]).toEqual([0, [], [], undefined]);
    t.set('again', 'a');
    expect(t.get('again')).toBe('a');
  });
});
