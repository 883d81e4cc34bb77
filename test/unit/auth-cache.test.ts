import { describe, expect, it } from 'vitest';
import {
  AuthorizerCache,
  authorizerCacheKey,
  effectiveTtlMs,
  MAX_AUTHORIZER_TTL_SECONDS,
} from '../../server/auth/authorizer-cache.ts';
import type { ClusterState } from '../../server/cluster/cluster-state.ts';
import { MemoryClusterState } from '../../server/cluster/memory-cluster-state.ts';

type CacheStore = Pick<ClusterState, 'cacheGet' | 'cacheSet'>;

function clock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

/** A shared store that records what it is asked, to check keys and TTLs. */
class RecordingStore implements CacheStore {
  readonly sets: Array<{ key: string; value: unknown; ttlMs: number }> = [];
  readonly gets: string[] = [];
  constructor(private readonly inner: CacheStore) {}
  cacheGet<T>(key: string): Promise<T | undefined> {
    this.gets.push(key);
    return this.inner.cacheGet<T>(key);
  }
  cacheSet(key: string, value: unknown, ttlMs: number): Promise<void> {
    this.sets.push({ key, value, ttlMs });
    return this.inner.cacheSet(key, value, ttlMs);
  }
}

function setup(opts: { maxLocalEntries?: number } = {}) {
  const c = clock();
  const shared = new MemoryClusterState({ nodeId: 'n1', now: c.now });
  const store = new RecordingStore(shared);
  const cache = new AuthorizerCache({ state: store, now: c.now, ...opts });
  let calls = 0;
  const compute = async (): Promise<{ principalId: string; n: number }> => ({ principalId: 'u', n: ++calls });
  return { c, shared, store, cache, compute, calls: () => calls };
}

describe('AuthorizerCache', () => {
  it('caches per authorizer and identity values until the TTL ends', async () => {
    const { c, cache, compute, calls } = setup();
    expect(await cache.getOrCompute('auth', ['tok-a'], 300, compute)).toEqual({ principalId: 'u', n: 1 });
    expect(await cache.getOrCompute('auth', ['tok-a'], 300, compute)).toEqual({ principalId: 'u', n: 1 });
    expect(await cache.getOrCompute('auth', ['tok-b'], 300, compute)).toEqual({ principalId: 'u', n: 2 });
    expect(await cache.getOrCompute('other', ['tok-a'], 300, compute)).toEqual({ principalId: 'u', n: 3 });
    c.advance(299_999);
    expect((await cache.getOrCompute('auth', ['tok-a'], 300, compute)).n).toBe(1);
    c.advance(1);
    expect((await cache.getOrCompute('auth', ['tok-a'], 300, compute)).n).toBe(4);
    expect(calls()).toBe(4);
    expect(cache.stats()).toMatchObject({ hits: 2, misses: 4, computes: 4 });
  });

  it('keys on every identity value, without ambiguity between splits', async () => {
    const { cache, compute } = setup();
    const a = await cache.getOrCompute('auth', ['a,b'], 60, compute);
    const b = await cache.getOrCompute('auth', ['a', 'b'], 60, compute);
    const c2 = await cache.getOrCompute('auth', ['a', 'b'], 60, compute);
    expect(a.n).not.toBe(b.n);
    expect(c2.n).toBe(b.n);
    expect(authorizerCacheKey('auth', ['a,b'])).not.toBe(authorizerCacheKey('auth', ['a', 'b']));
  });

  it('never puts raw identity values into shared-store keys', async () => {
    const { store, cache, compute } = setup();
    const token = 'eyJhbGciOiJSUzI1NiJ9.secret-token-body.sig';
    await cache.getOrCompute('jwtAuth', [token, 'route-x'], 60, compute);
    const keys = [...store.gets, ...store.sets.map((s) => s.key)];
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) {
      expect(key).toMatch(/^authz:jwtAuth:[0-9a-f]{64}$/);
      expect(key).not.toContain('secret-token-body');
      expect(key).not.toContain('route-x');
    }
  });

  it('TTL 0 disables caching: every call computes and nothing is stored', async () => {
    const { store, cache, compute, calls } = setup();
    await Promise.all([
      cache.getOrCompute('auth', ['t'], 0, compute),
      cache.getOrCompute('auth', ['t'], 0, compute),
    ]);
    await cache.getOrCompute('auth', ['t'], 0, compute);
    await cache.getOrCompute('auth', ['t'], -5, compute);
    await cache.getOrCompute('auth', ['t'], Number.NaN, compute);
    expect(calls()).toBe(5);
    expect(store.gets).toHaveLength(0);
    expect(store.sets).toHaveLength(0);
    expect(cache.stats()).toMatchObject({ hits: 0, misses: 0, computes: 5, localEntries: 0 });
  });

  it('clamps the TTL to 3600 s', async () => {
    expect(effectiveTtlMs(7200)).toBe(MAX_AUTHORIZER_TTL_SECONDS * 1000);
    expect(effectiveTtlMs(1.5)).toBe(1500);
    expect(effectiveTtlMs(0)).toBe(0);
    const { c, store, cache, compute } = setup();
    await cache.getOrCompute('auth', ['t'], 86_400, compute);
    expect(store.sets[0]?.ttlMs).toBe(3_600_000);
    c.advance(3_599_999);
    expect((await cache.getOrCompute('auth', ['t'], 86_400, compute)).n).toBe(1);
    c.advance(1);
    expect((await cache.getOrCompute('auth', ['t'], 86_400, compute)).n).toBe(2);
  });

  it('bounds the local LRU and evicts the least recently used entry', async () => {
    const c = clock();
    const gets: string[] = [];
    // A shared store that never holds anything, so every hit below is a local hit.
    const empty: CacheStore = {
      cacheGet: async (key) => {
        gets.push(key);
        return undefined;
      },
      cacheSet: async () => undefined,
    };
    const cache = new AuthorizerCache({ state: empty, now: c.now, maxLocalEntries: 3 });
    let calls = 0;
    const compute = async () => ++calls;
    for (const id of ['a', 'b', 'c']) await cache.getOrCompute('auth', [id], 60, compute);
    expect(await cache.getOrCompute('auth', ['a'], 60, compute)).toBe(1); // touch a: b is now oldest
    await cache.getOrCompute('auth', ['d'], 60, compute); // evicts b
    expect(cache.stats().localEntries).toBe(3);
    expect(await cache.getOrCompute('auth', ['a'], 60, compute)).toBe(1);
    expect(await cache.getOrCompute('auth', ['c'], 60, compute)).toBe(3);
    expect(await cache.getOrCompute('auth', ['b'], 60, compute)).toBe(5); // recomputed
    expect(cache.stats().localEntries).toBe(3);
    for (let i = 0; i < 100; i++) await cache.getOrCompute('auth', [`k${i}`], 60, compute);
    expect(cache.stats().localEntries).toBe(3);
  });

  it('serves another node from the shared store with the same expiry', async () => {
    const c = clock();
    const shared = new MemoryClusterState({ nodeId: 'n1', now: c.now });
    const node1 = new AuthorizerCache({ state: shared, now: c.now });
    const node2 = new AuthorizerCache({ state: shared, now: c.now });
    let calls = 0;
    const compute = async () => ({ n: ++calls });
    await node1.getOrCompute('auth', ['t'], 10, compute);
    c.advance(4_000);
    expect(await node2.getOrCompute('auth', ['t'], 10, compute)).toEqual({ n: 1 });
    expect(node2.stats()).toMatchObject({ hits: 1, misses: 0, computes: 0 });
    c.advance(5_999);
    expect(await node2.getOrCompute('auth', ['t'], 10, compute)).toEqual({ n: 1 }); // local copy, same expiry
    c.advance(1);
    expect(await node2.getOrCompute('auth', ['t'], 10, compute)).toEqual({ n: 2 });
  });

  it('single flight: 200 concurrent calls for one key run compute once', async () => {
    const { cache } = setup();
    let calls = 0;
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const compute = async () => {
      calls++;
      await gate;
      return { principalId: 'u' };
    };
    const all = Array.from({ length: 200 }, () => cache.getOrCompute('auth', ['same-token'], 60, compute));
    await new Promise((r) => setTimeout(r, 10));
    expect(calls).toBe(1);
    release();
    const results = await Promise.all(all);
    expect(calls).toBe(1);
    expect(new Set(results).size).toBe(1);
    expect(cache.stats()).toMatchObject({ misses: 1, computes: 1, hits: 199, coalesced: 199 });
  });

  it('does not cache a rejected compute; waiters all see the rejection; the next call recomputes', async () => {
    const { store, cache } = setup();
    let calls = 0;
    const failing = async (): Promise<string> => {
      calls++;
      await new Promise((r) => setTimeout(r, 5));
      throw new Error('authorizer crashed');
    };
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () => cache.getOrCompute('auth', ['t'], 60, failing)),
    );
    expect(calls).toBe(1);
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(store.sets).toHaveLength(0);
    expect(await cache.getOrCompute('auth', ['t'], 60, async () => 'ok')).toBe('ok');
    expect(await cache.getOrCompute('auth', ['t'], 60, failing)).toBe('ok');
    expect(calls).toBe(1);
  });

  it('caches a negative decision returned as a value', async () => {
    const { cache } = setup();
    let calls = 0;
    const decide = async () => {
      calls++;
      return { unauthorized: true } as const;
    };
    await cache.getOrCompute('auth', ['bad-token'], 60, decide);
    expect(await cache.getOrCompute('auth', ['bad-token'], 60, decide)).toEqual({ unauthorized: true });
    expect(calls).toBe(1);
  });

  it('freezes cached values so one caller cannot alter what the next one gets', async () => {
    const { cache } = setup();
    const first = await cache.getOrCompute('auth', ['t'], 60, async () => ({ context: { role: 'user' } }));
    expect(Object.isFrozen(first)).toBe(true);
    expect(() => {
      (first.context as { role: string }).role = 'admin';
    }).toThrow(TypeError);
    const second = await cache.getOrCompute('auth', ['t'], 60, async () => ({ context: { role: 'other' } }));
    expect(second.context.role).toBe('user');
  });

  it('keeps working when the shared store fails, and counts the failures', async () => {
    const warnings: unknown[] = [];
    const broken: CacheStore = {
      cacheGet: async () => {
        throw new Error('redis down');
      },
      cacheSet: async () => {
        throw new Error('redis down');
      },
    };
    const c = clock();
    const cache = new AuthorizerCache({
      state: broken,
      now: c.now,
      log: { warn: (fields) => warnings.push(fields) },
    });
    let calls = 0;
    const compute = async () => ++calls;
    expect(await cache.getOrCompute('auth', ['secret-token'], 60, compute)).toBe(1);
    expect(await cache.getOrCompute('auth', ['secret-token'], 60, compute)).toBe(1); // local layer still works
    expect(cache.stats().sharedErrors).toBe(2);
    expect(warnings).toHaveLength(2);
    expect(JSON.stringify(warnings)).not.toContain('secret-token');
  });

  it('with maxLocalEntries 0 relies on the shared store alone', async () => {
    const { store, cache, compute } = setup({ maxLocalEntries: 0 });
    await cache.getOrCompute('auth', ['t'], 60, compute);
    expect((await cache.getOrCompute('auth', ['t'], 60, compute)).n).toBe(1);
    expect(store.gets).toHaveLength(2);
    expect(cache.stats().localEntries).toBe(0);
  });
});
