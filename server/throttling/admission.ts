import type { Cluster, Redis } from 'ioredis';
import type { ApiDefinition } from '../api/types.ts';
import type { Logger } from '../log.ts';
import type { GatewayMetrics } from '../metrics.ts';
import { LocalRateLimitStore, RedisRateLimitStore, type RateLimitStore } from './distributed.ts';
import { RequestLimiter, type ThrottleDecision, type ThrottlingConfig } from './limiter.ts';
import { MessageThrottle } from './message-throttle.ts';

/**
 * The throttling stage of the shared pipeline: one RequestLimiter for WebSocket messages,
 * `$connect` upgrades and REST requests. Built only when the definition configures a limit
 * or a usage plan, so an API without throttling pays nothing.
 */
export function throttlingConfig(def: ApiDefinition): ThrottlingConfig | undefined {
  const stages: Record<string, ThrottlingConfig['stages'][string]> = {};
  const routeLevel: Record<string, { rateLimit: number; burstLimit: number }> = {};
  for (const [k, r] of Object.entries(def.websocket?.routes ?? {})) if (r.throttling) routeLevel[k] = r.throttling;
  for (const [k, r] of Object.entries(def.http?.routes ?? {})) if (r.throttling) routeLevel[k] = r.throttling;
  let any = def.throttling !== undefined || Object.keys(routeLevel).length > 0 || def.clientLimits !== undefined;
  for (const [name, s] of Object.entries(def.stages)) {
    const routes = { ...routeLevel, ...(s.throttling?.routes ?? {}) };
    if (s.throttling?.default || Object.keys(routes).length > 0) any = true;
    stages[name] = { default: s.throttling?.default, routes };
  }
  const usagePlans: Record<string, ThrottlingConfig['usagePlans'][string]> = {};
  for (const [name, p] of Object.entries(def.usagePlans ?? {})) {
    any = true;
    usagePlans[name] = { throttle: p.throttle, quota: p.quota, routes: p.routes, apiKeys: p.apiKeys };
  }
  const requiresKeys = [...Object.values(def.websocket?.routes ?? {}), ...Object.values(def.http?.routes ?? {})].some((r) => r.apiKeyRequired);
  if (!any && !requiresKeys) return undefined;
  return { account: def.throttling, stages, usagePlans, perConnection: def.clientLimits?.perConnection, perClientIp: def.clientLimits?.perClientIp };
}

export interface AdmissionOptions {
  def: ApiDefinition;
  apiId: string;
  metrics: GatewayMetrics;
  log: Logger;
  /** Redis for cluster-wide buckets and quotas; undefined: this node's memory only. */
  redis?: { client: Redis | Cluster; keyPrefix: string; nodeId: string; nodeCount: () => number } | undefined;
}

export class Admission {
  private constructor(
    readonly limiter: RequestLimiter,
    private readonly store: RateLimitStore,
    private readonly metrics: GatewayMetrics,
    private readonly apiId: string,
  ) {}

  static create(o: AdmissionOptions): Admission | undefined {
    const config = throttlingConfig(o.def);
    if (!config) return undefined;
    const store: RateLimitStore = o.redis
      ? new RedisRateLimitStore({
          redis: o.redis.client,
          keyPrefix: o.redis.keyPrefix,
          nodeId: o.redis.nodeId,
          nodeCount: o.redis.nodeCount,
          onError: (err) => o.log.debug({ err: (err as Error).message }, 'rate limit store: Redis call failed, using local shares'),
        })
      : new LocalRateLimitStore();
    return new Admission(new RequestLimiter({ config, store }), store, o.metrics, o.apiId);
  }

  /** Count a refusal by stage and level (metrics), and return it. */
  private counted(stage: string, d: ThrottleDecision): ThrottleDecision {
    if (!d.ok) this.metrics.throttled(this.apiId, stage, d.level);
    return d;
  }

  check(stage: string, routeKey: string, apiKey: string | undefined, connectionId: string | undefined, clientIp: string | undefined, apiKeyRequired: boolean): ThrottleDecision {
    const d = this.limiter.check(stage, routeKey, apiKey, connectionId, clientIp, apiKeyRequired);
    return d.ok ? d : this.counted(stage, d);
  }

  /**
   * The lookup-free message path for (stage, route), in memory mode; undefined in Redis mode
   * (buckets shared through leases) — the caller then uses `check`.
   */
  messageThrottle(stage: string, routeKey: string): MessageThrottle | undefined {
    if (!(this.store instanceof LocalRateLimitStore)) return undefined;
    const store = this.store;
    const b = this.limiter.messageBuckets(stage, routeKey);
    return new MessageThrottle(store.clock, (key, rate, burst) => store.pin(key, rate, burst), b.route, b.account, b.perConnection);
  }

  /** Count a refusal decided outside `check` (the message fast path). */
  refused(stage: string, level: string): void {
    this.metrics.throttled(this.apiId, stage, level);
  }

  forgetConnection(connectionId: string): void {
    this.limiter.forgetConnection(connectionId);
  }

  async close(): Promise<void> {
    await this.limiter.close();
    await this.store.close();
  }
}

/** The API key of a request: `x-api-key`, or the authorizer's usageIdentifierKey (apiKeySource AUTHORIZER). */
export function apiKeyOf(headers: ReadonlyArray<[string, string]>, source: 'HEADER' | 'AUTHORIZER', usageIdentifierKey: string | undefined): string | undefined {
  if (source === 'AUTHORIZER') return usageIdentifierKey;
  for (const [k, v] of headers) if (k === 'x-api-key') return v;
  return undefined;
}
