import { createHash } from 'node:crypto';
import type { ClusterState } from '../cluster/cluster-state.ts';
import type { Logger } from '../log.ts';

/**
 * Authorizer result cache (reference/aws-apigw.md 4.5): results are cached per authorizer and per
 * identity-source values for `resultTtlInSeconds`, cluster-wide through `ClusterState.cacheGet/cacheSet`
 * (shared by every node in Redis mode), with a small bounded LRU in front of it on each node.
 *
 * Contract:
 * - Key: `authz:{authorizerName}:{sha256 of the identity values}`. Raw identity values (tokens) never
 *   appear in keys or log lines. Callers that serve several APIs from one store should make the
 *   name unique across them (e.g. `${apiId}/${name}`).
 * - TTL in seconds; 0, negative or NaN disables caching entirely (every call computes, no
 *   coalescing, as AWS invokes the authorizer on every request then); above 3600 it is clamped to
 *   3600 (the AWS maximum). The local copy never outlives the shared entry's expiry.
 * - Single flight per node: while a compute for a key is pending, further calls for that key on
 *   this node wait for it instead of computing again (two nodes may still compute the same key
 *   once each). `compute` must be bounded by the caller (authorizer timeout): waiters share its fate.
 * - Only resolved values are cached. A rejected compute is not cached and every waiter gets the
 *   rejection. To cache a negative decision (e.g. "Unauthorized" or a Deny policy), return it as a
 *   value instead of throwing.
 * - Values must be JSON-serialisable (they cross Redis). Cached values are deep-frozen so that one
 *   request cannot alter what the next one is served; treat them as read-only.
 * - The shared store failing (e.g. Redis down) degrades to computing locally; the error is logged
 *   (when a logger is given) and counted in `stats().sharedErrors`, never thrown to the caller.
 */

/** AWS maximum for `authorizerResultTtlInSeconds`. */
export const MAX_AUTHORIZER_TTL_SECONDS = 3600;
export const DEFAULT_MAX_LOCAL_ENTRIES = 10_000;

export interface AuthorizerCacheOptions {
  state: Pick<ClusterState, 'cacheGet' | 'cacheSet'>;
  /** Bound on this node's LRU (least recently used evicted first); 0 disables the local layer. */
  maxLocalEntries?: number;
  /** Clock in epoch ms (injectable for tests). */
  now?: () => number;
  log?: Pick<Logger, 'warn'>;
}

export interface AuthorizerCacheStats {
  /** Calls served without computing: local hit, shared hit, or joined a pending compute. */
  hits: number;
  /** Calls that found nothing cached and started a compute. */
  misses: number;
  /** Calls of `compute` (includes TTL-0 calls, which bypass the cache). */
  computes: number;
  /** Of the hits, those that joined a pending compute (single flight). */
  coalesced: number;
  /** Shared-store reads or writes that failed. */
  sharedErrors: number;
  /** Entries currently held in the local LRU (expired ones may linger until touched or evicted). */
  localEntries: number;
}

/** What goes into the shared store: the value plus its absolute expiry, so every node agrees on it. */
interface SharedEntry {
  v: unknown;
  /** epoch ms */
  e: number;
}

function isSharedEntry(x: unknown): x is SharedEntry {
  return typeof x === 'object' && x !== null && 'v' in x && typeof (x as { e?: unknown }).e === 'number';
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

export function authorizerCacheKey(authorizerName: string, identityValues: readonly string[]): string {
  // JSON of the array is unambiguous: ["a,b"] and ["a","b"] hash differently.
  const digest = createHash('sha256').update(JSON.stringify(identityValues)).digest('hex');
  return `authz:${authorizerName}:${digest}`;
}

/** Clamped TTL in ms; 0 means "do not cache". */
export function effectiveTtlMs(ttlSeconds: number): number {
  if (!(ttlSeconds > 0)) return 0;
  return Math.round(Math.min(ttlSeconds, MAX_AUTHORIZER_TTL_SECONDS) * 1000);
}

export class AuthorizerCache {
  private readonly state: Pick<ClusterState, 'cacheGet' | 'cacheSet'>;
  private readonly maxLocal: number;
  private readonly now: () => number;
  private readonly log: Pick<Logger, 'warn'> | undefined;
  /** Insertion order is recency order: a hit re-inserts the entry at the end. */
  private readonly local = new Map<string, { value: unknown; expiresAt: number }>();
  private readonly pending = new Map<string, Promise<unknown>>();
  private readonly counters = { hits: 0, misses: 0, computes: 0, coalesced: 0, sharedErrors: 0 };

  constructor(opts: AuthorizerCacheOptions) {
    this.state = opts.state;
    this.maxLocal = Math.max(0, Math.floor(opts.maxLocalEntries ?? DEFAULT_MAX_LOCAL_ENTRIES));
    this.now = opts.now ?? Date.now;
    this.log = opts.log;
  }

  stats(): AuthorizerCacheStats {
    return { ...this.counters, localEntries: this.local.size };
  }

  /**
   * Returns the cached result for (authorizerName, identityValues) or runs `compute` once and caches
   * what it resolves to for `ttlSeconds`. See the module comment for the full contract.
   */
  getOrCompute<T>(
    authorizerName: string,
    identityValues: string[],
    ttlSeconds: number,
    compute: () => Promise<T>,
  ): Promise<T> {
    const ttlMs = effectiveTtlMs(ttlSeconds);
    if (ttlMs === 0) {
      this.counters.computes++;
      return compute();
    }
    const key = authorizerCacheKey(authorizerName, identityValues);
    const hit = this.localGet(key);
    if (hit) {
      this.counters.hits++;
      return Promise.resolve(hit.value as T);
    }
    const inFlight = this.pending.get(key);
    if (inFlight) {
      this.counters.hits++;
      this.counters.coalesced++;
      return inFlight as Promise<T>;
    }
    // Registered synchronously, before any await, so that every concurrent caller finds it.
    const p = this.load(key, ttlMs, compute).finally(() => {
      this.pending.delete(key);
    });
    this.pending.set(key, p);
    return p;
  }

  private async load<T>(key: string, ttlMs: number, compute: () => Promise<T>): Promise<T> {
    const shared = await this.sharedGet(key);
    if (shared !== undefined && shared.e > this.now()) {
      this.counters.hits++;
      const value = deepFreeze(shared.v) as T;
      this.localSet(key, value, Math.min(shared.e, this.now() + ttlMs));
      return value;
    }
    this.counters.misses++;
    this.counters.computes++;
    const value = deepFreeze(await compute());
    const expiresAt = this.now() + ttlMs;
    this.localSet(key, value, expiresAt);
    await this.sharedSet(key, { v: value, e: expiresAt }, ttlMs);
    return value;
  }

  private localGet(key: string): { value: unknown } | undefined {
    const entry = this.local.get(key);
    if (!entry) return undefined;
    this.local.delete(key);
    if (entry.expiresAt <= this.now()) return undefined;
    this.local.set(key, entry);
    return entry;
  }

  private localSet(key: string, value: unknown, expiresAt: number): void {
    if (this.maxLocal === 0) return;
    this.local.delete(key);
    this.local.set(key, { value, expiresAt });
    while (this.local.size > this.maxLocal) {
      const oldest = this.local.keys().next();
      if (oldest.done) break;
      this.local.delete(oldest.value);
    }
  }

  private async sharedGet(key: string): Promise<SharedEntry | undefined> {
    try {
      const raw = await this.state.cacheGet<unknown>(key);
      return isSharedEntry(raw) ? raw : undefined;
    } catch (err) {
      this.sharedFailed('read', key, err);
      return undefined;
    }
  }

  private async sharedSet(key: string, entry: SharedEntry, ttlMs: number): Promise<void> {
    try {
      await this.state.cacheSet(key, entry, ttlMs);
    } catch (err) {
      this.sharedFailed('write', key, err);
    }
  }

  private sharedFailed(op: 'read' | 'write', key: string, err: unknown): void {
    this.counters.sharedErrors++;
    // The key holds only the authorizer name and a digest, never the identity values.
    this.log?.warn({ op, key, err }, 'authorizer cache: shared store failed, continuing without it');
  }
}
