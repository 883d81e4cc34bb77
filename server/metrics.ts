import { Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Metrics named after API Gateway's CloudWatch metrics (reference section 8.4). The hot path
 * only increments plain numbers on a per-(stage, route) `RouteStats` object created when the
 * route table is built; prom-client reads them at scrape time. That keeps label hashing off
 * the message path entirely.
 */
export const LATENCY_BUCKETS_MS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 29000];

export class LatencyHistogram {
  readonly counts = new Float64Array(LATENCY_BUCKETS_MS.length + 1);
  sum = 0;
  count = 0;
  observe(ms: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[i]!) i++;
    this.counts[i]!++;
    this.sum += ms;
    this.count++;
  }
}

export class RouteStats {
  ConnectCount = 0;
  MessageCount = 0;
  IntegrationError = 0;
  ClientError = 0;
  ExecutionError = 0;
  Throttled = 0;
  Count = 0;
  '4XXError' = 0;
  '5XXError' = 0;
  readonly IntegrationLatency = new LatencyHistogram();
  readonly Latency = new LatencyHistogram();
  constructor(
    readonly apiId: string,
    readonly stage: string,
    readonly route: string,
  ) {}
}

type CounterName = 'ConnectCount' | 'MessageCount' | 'IntegrationError' | 'ClientError' | 'ExecutionError' | 'Throttled' | 'Count' | '4XXError' | '5XXError';

const COUNTERS: ReadonlyArray<[CounterName, string]> = [
  ['ConnectCount', 'Messages sent to the $connect route integration'],
  ['MessageCount', 'Messages sent to and from WebSocket clients, callbacks included'],
  ['IntegrationError', 'Requests whose integration failed or returned an error'],
  ['ClientError', '4XX errors returned by the gateway before the integration was invoked'],
  ['ExecutionError', 'Errors that occurred when calling the integration'],
  ['Throttled', 'Requests and messages rejected by throttling or quotas'],
  ['Count', 'REST requests'],
  ['4XXError', 'REST client-side errors'],
  ['5XXError', 'REST server-side errors'],
];

interface MetricValue {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

/** Prometheus metric names may not start with a digit: 4XXError is exposed as Error4XX. */
const exposedName = (n: string) => (/^\d/.test(n) ? `Error${n.slice(0, 3)}` : n);

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly stats: RouteStats[] = [];
  /** Per-connection gauges maintained by the WebSocket layer. */
  connections = 0;
  private readonly globalStats = new Map<string, RouteStats>();

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
    for (const [name, help] of COUNTERS) {
      this.registry.registerMetric(this.makeCounter(name, help) as never);
    }
    this.registry.registerMetric(this.makeHistogram('IntegrationLatency', 'Integration latency in ms') as never);
    this.registry.registerMetric(this.makeHistogram('Latency', 'REST request latency in ms') as never);
    const throttledHelp = 'Requests and messages refused by throttling, API keys or quotas, by level';
    this.registry.registerMetric({
      name: 'ThrottledRequests',
      help: throttledHelp,
      type: 'counter',
      get: async () => ({
        name: 'ThrottledRequests',
        help: throttledHelp,
        type: 'counter',
        aggregator: 'sum',
        values: [...this.throttledByLevel.values()].map((e) => ({ value: e.value, labels: { apiId: e.apiId, stage: e.stage, level: e.level } })),
      }),
      reset: () => undefined,
    } as never);
    this.registry.registerMetric({
      name: 'ConnectionCount',
      help: 'Open WebSocket connections on this node',
      type: 'gauge',
      get: async () => ({ name: 'ConnectionCount', help: 'Open WebSocket connections on this node', type: 'gauge', values: [{ value: this.connections, labels: {} }], aggregator: 'sum' }),
      reset: () => undefined,
    } as never);
  }

  private readonly throttledByLevel = new Map<string, { apiId: string; stage: string; level: string; value: number }>();

  /** Requests and messages refused by throttling, API keys or quotas, by level. */
  throttled(apiId: string, stage: string, level: string): void {
    const key = `${apiId} ${stage} ${level}`;
    let e = this.throttledByLevel.get(key);
    if (!e) {
      e = { apiId, stage, level, value: 0 };
      this.throttledByLevel.set(key, e);
    }
    e.value++;
  }

  /** One stats object per (api, stage, route), created at route-table build time. */
  routeStats(apiId: string, stage: string, route: string): RouteStats {
    const key = `${apiId}\u0000${stage}\u0000${route}`;
    let s = this.globalStats.get(key);
    if (!s) {
      s = new RouteStats(apiId, stage, route);
      this.globalStats.set(key, s);
      this.stats.push(s);
    }
    return s;
  }

  private makeCounter(name: CounterName, help: string) {
    const exposed = exposedName(name);
    return {
      name: exposed,
      help,
      type: 'counter',
      get: async () => ({
        name: exposed,
        help,
        type: 'counter',
        aggregator: 'sum',
        values: this.stats.filter((s) => s[name] > 0).map((s): MetricValue => ({ value: s[name], labels: { apiId: s.apiId, stage: s.stage, route: s.route } })),
      }),
      reset: () => undefined,
    };
  }

  private makeHistogram(name: 'IntegrationLatency' | 'Latency', help: string) {
    return {
      name,
      help,
      type: 'histogram',
      get: async () => {
        const values: MetricValue[] = [];
        for (const s of this.stats) {
          const h = s[name];
          if (h.count === 0) continue;
          const labels = { apiId: s.apiId, stage: s.stage, route: s.route };
          let cumulative = 0;
          LATENCY_BUCKETS_MS.forEach((le, i) => {
            cumulative += h.counts[i]!;
            values.push({ value: cumulative, labels: { ...labels, le }, metricName: `${name}_bucket` });
          });
          values.push({ value: h.count, labels: { ...labels, le: '+Inf' }, metricName: `${name}_bucket` });
          values.push({ value: h.sum, labels, metricName: `${name}_sum` });
          values.push({ value: h.count, labels, metricName: `${name}_count` });
        }
        return { name, help, type: 'histogram', aggregator: 'sum', values };
      },
      reset: () => undefined,
    };
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
