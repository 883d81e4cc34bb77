import { ApiKeyIndex, apiKeyId, parseApiKeySpecs } from './api-keys.ts';
import { LocalRateLimitStore, type RateLimitStore } from './distributed.ts';
import { QUOTA_PERIODS, type QuotaPeriod } from './quota.ts';
import { TokenBucketTable } from './token-bucket.ts';

/**
 * Request admission against every configured limit, with API Gateway semantics:
 * - stage/route: one bucket per (stage, route). A route's own setting replaces the stage's
 *   default (DefaultRouteSettings), which otherwise applies to each route separately.
 * - usage plan: applied only on routes with `apiKeyRequired` (as in API Gateway). The plan's
 *   `throttle` is a bucket per API key across all routes and stages ("key"); a plan's
 *   per-route throttle is a bucket per API key and route ("plan"); the quota counts per API
 *   key per period. A missing or unknown key on such a route is 403 Forbidden.
 * - account: one bucket for the whole API, always applied when configured.
 * - beyond API Gateway: per connection (node-local: a connection lives on one node) and per
 *   client IP (shared store, so cluster-wide in Redis mode).
 * A request passes only if every applicable bucket admits it; tokens taken from buckets that
 * admitted are refunded when a later one refuses, so refused requests consume nothing. The
 * first refusal wins, in the order connection, ip, plan, key, route/stage, account, quota (API
 * Gateway reports plan before stage before account). The quota is counted last, only for
 * requests every bucket admitted. Rate limit exceeded: 429 "Too Many Requests"; quota: 429
 * "Limit Exceeded"; both with `retryAfterMs`.
 *
 * `check` is synchronous and, for known stages/routes/keys, allocates nothing on admission:
 * every bucket key string is built when the limiter is built (per-IP keys excepted).
 */
export interface ThrottleLimit {
  rateLimit: number;
  burstLimit: number;
}

export interface QuotaLimit {
  limit: number;
  period: QuotaPeriod;
}

export interface StageThrottling {
  default?: ThrottleLimit | undefined;
  routes?: Readonly<Record<string, ThrottleLimit>> | undefined;
}

export interface UsagePlanThrottling {
  throttle?: ThrottleLimit | undefined;
  quota?: QuotaLimit | undefined;
  routes?: Readonly<Record<string, ThrottleLimit>> | undefined;
  /** Key specs: literal keys or `key-env:VARNAME` (see api-keys.ts). */
  apiKeys: readonly string[];
}

export interface ThrottlingConfig {
  account?: ThrottleLimit | undefined;
  stages: Readonly<Record<string, StageThrottling>>;
  usagePlans: Readonly<Record<string, UsagePlanThrottling>>;
  perConnection?: ThrottleLimit | undefined;
  perClientIp?: ThrottleLimit | undefined;
}

export interface ThrottleRequest {
  stage: string;
  routeKey: string;
  apiKey?: string | undefined;
  connectionId?: string | undefined;
  clientIp?: string | undefined;
  apiKeyRequired: boolean;
}

export type ThrottleLevel = 'account' | 'stage' | 'route' | 'plan' | 'key' | 'connection' | 'ip' | 'quota' | 'apikey';

export type ThrottleDecision =
  | { ok: true }
  | {
      ok: false;
      status: 403 | 429;
      message: 'Forbidden' | 'Too Many Requests' | 'Limit Exceeded';
      retryAfterMs?: number;
      level: ThrottleLevel;
    };

export interface RequestLimiterOptions {
  config: ThrottlingConfig;
  /** Shared state; default a private `LocalRateLimitStore` (closed by `close()`). */
  store?: RateLimitStore | undefined;
  /** Environment for `key-env:` specs. Default `process.env`. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Monotonic clock (ms) of the default store. With `store`, the store's clock is used. */
  now?: (() => number) | undefined;
  /** Wall clock (epoch ms) for quota periods. */
  wallNow?: (() => number) | undefined;
  /** Prefix of every bucket key, to share one store between APIs. Default ''. */
  keyNamespace?: string | undefined;
}

export class ThrottleConfigError extends Error {
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(`${path}: ${message}`);
    this.name = 'ThrottleConfigError';
  }
}

export class CompiledBucket {
  constructor(
    readonly key: string,
    readonly rate: number,
    readonly burst: number,
    readonly level: ThrottleLevel,
  ) {}
}

class CompiledStage {
  readonly routes = new Map<string, CompiledBucket>();
  constructor(
    readonly prefix: string,
    readonly fallback: ThrottleLimit | undefined,
  ) {}
}

class CompiledKey {
  readonly routes = new Map<string, CompiledBucket>();
  throttle: CompiledBucket | undefined;
  constructor(
    readonly plan: string,
    readonly quotaKey: string,
    readonly quota: QuotaLimit | undefined,
  ) {}
}

const ALLOWED: ThrottleDecision = Object.freeze({ ok: true });
const FORBIDDEN: ThrottleDecision = Object.freeze({ ok: false, status: 403, message: 'Forbidden', level: 'apikey' });
/** Default-setting buckets cached per stage for routes without their own setting. */
const MAX_CACHED_ROUTES = 4096;
const MAX_TAKES = 8;
/** Prefixed per-IP bucket keys, cached so that a request does not build (and hash) a new string. */
const MAX_CACHED_IPS = 10_000;
const MAX_CONNECTION_BUCKETS = 1_000_000;

export class RequestLimiter {
  private readonly store: RateLimitStore;
  private readonly ownsStore: boolean;
  private readonly keys = new ApiKeyIndex<CompiledKey>();
  private readonly stages = new Map<string, CompiledStage>();
  private readonly account: CompiledBucket | undefined;
  private readonly perConnection: ThrottleLimit | undefined;
  private readonly perClientIp: ThrottleLimit | undefined;
  private readonly connections: TokenBucketTable;
  private readonly ipPrefix: string;
  private readonly ipKeys = new Map<string, string>();
  /** Whether any bucket is configured at all (else the clock is not even read). */
  private readonly anyBucket: boolean;
  private readonly wallNow: () => number;
  /** Keys taken during the current check, for refunds (check is synchronous and not re-entrant). */
  private readonly taken: string[] = new Array<string>(MAX_TAKES).fill('');

  constructor(opts: RequestLimiterOptions) {
    const { config } = opts;
    const ns = opts.keyNamespace ?? '';
    this.wallNow = opts.wallNow ?? Date.now;
    this.ownsStore = opts.store === undefined;
    this.store = opts.store ?? new LocalRateLimitStore({ now: opts.now, wallNow: opts.wallNow });
    const store = this.store;
    // Connections hold their bucket while active; idle full ones are reclaimed, closed ones dropped.
    this.connections = new TokenBucketTable({ now: () => store.now(), maxKeys: MAX_CONNECTION_BUCKETS });
    this.ipPrefix = `${ns}ip:`;
    this.account = config.account && bucket(`${ns}a`, checkLimit(config.account, 'account'), 'account');
    this.perConnection = config.perConnection && checkLimit(config.perConnection, 'perConnection');
    this.perClientIp = config.perClientIp && checkLimit(config.perClientIp, 'perClientIp');

    for (const [stage, st] of Object.entries(config.stages)) {
      const cs = new CompiledStage(`${ns}s:${stage}:`, st.default && checkLimit(st.default, `stages.${stage}.default`));
      for (const [route, lim] of Object.entries(st.routes ?? {})) {
        cs.routes.set(route, bucket(cs.prefix + route, checkLimit(lim, `stages.${stage}.routes.${route}`), 'route'));
      }
      this.stages.set(stage, cs);
    }

    for (const [plan, p] of Object.entries(config.usagePlans)) {
      const path = `usagePlans.${plan}`;
      const throttle = p.throttle && checkLimit(p.throttle, `${path}.throttle`);
      const quota = p.quota && checkQuota(p.quota, `${path}.quota`);
      const routes = Object.entries(p.routes ?? {}).map(
        ([route, lim]) => [route, checkLimit(lim, `${path}.routes.${route}`)] as const,
      );
      const values = parseApiKeySpecs(p.apiKeys, opts.env ?? process.env, `${path}.apiKeys`);
      values.forEach((value, i) => {
        const id = apiKeyId(value);
        const ck = new CompiledKey(plan, `${ns}q:${plan}:${id}`, quota);
        if (throttle) ck.throttle = bucket(`${ns}k:${plan}:${id}`, throttle, 'key');
        for (const [route, lim] of routes) ck.routes.set(route, bucket(`${ns}kr:${plan}:${id}:${route}`, lim, 'plan'));
        this.keys.add(value, ck, `${path}.apiKeys[${i}]`);
      });
    }
    this.anyBucket =
      this.account !== undefined ||
      this.perConnection !== undefined ||
      this.perClientIp !== undefined ||
      this.stages.size > 0 ||
      this.keys.size > 0;
  }

  /** Number of distinct API keys loaded from the usage plans. */
  get apiKeyCount(): number {
    return this.keys.size;
  }

  checkRequest(req: ThrottleRequest): ThrottleDecision {
    return this.check(req.stage, req.routeKey, req.apiKey, req.connectionId, req.clientIp, req.apiKeyRequired);
  }

  /** Positional form of `checkRequest` for the message hot path (no request object needed). */
  check(
    stage: string,
    routeKey: string,
    apiKey: string | undefined,
    connectionId: string | undefined,
    clientIp: string | undefined,
    apiKeyRequired: boolean,
  ): ThrottleDecision {
    let key: CompiledKey | undefined;
    if (apiKeyRequired) {
      if (apiKey === undefined || apiKey === '') return FORBIDDEN;
      key = this.keys.lookup(apiKey)?.owner;
      if (key === undefined) return FORBIDDEN;
    }
    if (!this.anyBucket) return ALLOWED;
    const store = this.store;
    const now = store.now(); // one clock read for every bucket of this request
    const taken = this.taken;
    let n = 0;
    let conn: string | undefined;
    let wait = 0;

    const pc = this.perConnection;
    if (pc !== undefined && connectionId !== undefined) {
      wait = this.connections.tryTakeAt(connectionId, pc.rateLimit, pc.burstLimit, 1, now);
      if (wait > 0) return throttled('connection', wait);
      conn = connectionId;
    }
    const pi = this.perClientIp;
    if (pi !== undefined && clientIp !== undefined) {
      let k = this.ipKeys.get(clientIp);
      if (k === undefined) {
        if (this.ipKeys.size >= MAX_CACHED_IPS) this.ipKeys.clear();
        k = this.ipPrefix + clientIp;
        this.ipKeys.set(clientIp, k);
      }
      wait = store.tryTakeAt(k, pi.rateLimit, pi.burstLimit, 1, now);
      if (wait > 0) return this.refuse('ip', wait, n, conn);
      taken[n++] = k;
    }
    if (key !== undefined) {
      const b = key.routes.get(routeKey);
      if (b !== undefined) {
        wait = store.tryTakeAt(b.key, b.rate, b.burst, 1, now);
        if (wait > 0) return this.refuse('plan', wait, n, conn);
        taken[n++] = b.key;
      }
      const t = key.throttle;
      if (t !== undefined) {
        wait = store.tryTakeAt(t.key, t.rate, t.burst, 1, now);
        if (wait > 0) return this.refuse('key', wait, n, conn);
        taken[n++] = t.key;
      }
    }
    const sb = this.stageBucket(stage, routeKey);
    if (sb !== undefined) {
      wait = store.tryTakeAt(sb.key, sb.rate, sb.burst, 1, now);
      if (wait > 0) return this.refuse(sb.level, wait, n, conn);
      taken[n++] = sb.key;
    }
    const a = this.account;
    if (a !== undefined) {
      wait = store.tryTakeAt(a.key, a.rate, a.burst, 1, now);
      if (wait > 0) return this.refuse('account', wait, n, conn);
      taken[n++] = a.key;
    }
    if (key?.quota !== undefined) {
      const q = store.tryQuota(key.quotaKey, key.quota.limit, key.quota.period);
      if (!q.ok) {
        this.rollback(n, conn);
        const ms = Math.ceil(q.resetAt - this.wallNow());
        return { ok: false, status: 429, message: 'Limit Exceeded', retryAfterMs: Math.max(ms, 1), level: 'quota' };
      }
    }
    return ALLOWED;
  }

  /**
   * The buckets a message without an API key passes through on (stage, route), for the
   * message fast path: the route's (or stage default's) bucket, the API-level bucket, and the
   * per-connection limit. Undefined when API keys or per-IP limits make the general path needed.
   */
  messageBuckets(stage: string, routeKey: string): { route: CompiledBucket | undefined; account: CompiledBucket | undefined; perConnection: ThrottleLimit | undefined } {
    return { route: this.stageBucket(stage, routeKey), account: this.account, perConnection: this.perConnection };
  }

  /** Drop the per-connection bucket of a closed connection (also reclaimed lazily when full). */
  forgetConnection(connectionId: string): void {
    this.connections.delete(connectionId);
  }

  async close(): Promise<void> {
    this.connections.clear();
    if (this.ownsStore) await this.store.close();
  }

  private stageBucket(stage: string, routeKey: string): CompiledBucket | undefined {
    const cs = this.stages.get(stage);
    if (cs === undefined) return undefined;
    const b = cs.routes.get(routeKey);
    if (b !== undefined || cs.fallback === undefined) return b;
    const nb = bucket(cs.prefix + routeKey, cs.fallback, 'stage');
    if (cs.routes.size < MAX_CACHED_ROUTES) cs.routes.set(routeKey, nb);
    return nb;
  }

  private refuse(level: ThrottleLevel, wait: number, n: number, conn: string | undefined): ThrottleDecision {
    this.rollback(n, conn);
    return throttled(level, wait);
  }

  /** Refund the first `n` store buckets taken for this request and the connection bucket. */
  private rollback(n: number, conn: string | undefined): void {
    for (let i = 0; i < n; i++) this.store.refund(this.taken[i] ?? '');
    if (conn !== undefined) this.connections.refund(conn);
  }
}

function throttled(level: ThrottleLevel, wait: number): ThrottleDecision {
  return { ok: false, status: 429, message: 'Too Many Requests', retryAfterMs: wait, level };
}

function bucket(key: string, lim: ThrottleLimit, level: ThrottleLevel): CompiledBucket {
  return new CompiledBucket(key, lim.rateLimit, lim.burstLimit, level);
}

function checkLimit(lim: ThrottleLimit, path: string): ThrottleLimit {
  const ok = (x: number): boolean => Number.isFinite(x) && x >= 0;
  if (!ok(lim.rateLimit)) throw new ThrottleConfigError('rateLimit must be a finite number >= 0', path);
  if (!ok(lim.burstLimit)) throw new ThrottleConfigError('burstLimit must be a finite number >= 0', path);
  return lim;
}

function checkQuota(q: QuotaLimit, path: string): QuotaLimit {
  if (!Number.isInteger(q.limit) || q.limit < 0) throw new ThrottleConfigError('limit must be an integer >= 0', path);
  if (!QUOTA_PERIODS.includes(q.period)) throw new ThrottleConfigError('period must be DAY, WEEK or MONTH', path);
  return q;
}
