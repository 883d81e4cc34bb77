import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { loadApiDefinition, type LoadedApi } from './api/load.ts';
import { Cluster, Redis } from 'ioredis';
import { compileAuthorizers } from './auth/authorizers.ts';
import { compileCors } from './http/cors.ts';
import { compileGatewayResponses } from './http/gateway-responses.ts';
import { compileRestRoutes } from './http/rest-api.ts';
import { type AdmissionCheck, type HttpRouteRuntime, RestGateway } from './http/rest-gateway.ts';
import type { RouteTable } from './http/route-table.ts';
import { restFactories, wsFactories } from './integrations/backend-integrations.ts';
import { HttpBackend } from './integrations/http-backend.ts';
import { Admission, apiKeyOf } from './throttling/admission.ts';
import type { GatehouseOps } from './integrations/lambda.ts';
import type { ClusterState } from './cluster/cluster-state.ts';
import { MemoryClusterState } from './cluster/memory-cluster-state.ts';
import { DEFAULT_LIMITS, type Limits } from './limits.ts';
import { createLogger, type Logger } from './log.ts';
import { ConnectionsApi, type ManagementAuth, matchConnectionsPath } from './management/connections-api.ts';
import { ConnectionOperations } from './management/operations.ts';
import { parseManagementKeys } from './management/sigv4.ts';
import { GatewayMetrics } from './metrics.ts';
import { type HttpResponder, type RawRequest, UwsHttpListener, UwsTransport } from './transport/uws.ts';
import type { Session } from './websocket/session.ts';
import { connectAuthorizer } from './websocket/connect-auth.ts';
import { compileStages } from './websocket/stage-runtime.ts';
import { WsGateway } from './websocket/ws-gateway.ts';

export interface GatewayOptions {
  apiFile: string;
  port?: number;
  host?: string;
  nodeId?: string;
  redisUrl?: string;
  /** Serve /metrics, /healthz and /readyz on this port only (default: on the main port). */
  adminPort?: number;
  /** GATEHOUSE_MANAGEMENT_KEYS form: `AKID:secret,AKID2:secret2` */
  managementKeys?: string;
  managementToken?: string;
  logger?: Logger;
  /** Generate and print development credentials when none are configured (npm start). */
  devCredentials?: boolean;
}

/** Stable 10-character API id derived from the API name (AWS form: lowercase alphanumerics). */
export function deriveApiId(name: string): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const digest = createHash('sha256').update(name).digest();
  let id = '';
  for (let i = 0; i < 10; i++) id += alphabet[digest[i]! % alphabet.length];
  return id;
}

/**
 * The composition root: the only place that chooses implementations and wires them together.
 * `Gateway.start()` loads and checks the API definition (nothing listens if it is bad), builds
 * the cluster state, the stage runtimes, the WebSocket gateway, the management API and the
 * transport, then listens.
 */
export class Gateway {
  private constructor(
    readonly api: LoadedApi,
    readonly apiId: string,
    readonly port: number,
    readonly adminPort: number,
    readonly host: string,
    readonly cluster: ClusterState,
    readonly ws: WsGateway,
    readonly ops: ConnectionOperations,
    readonly metrics: GatewayMetrics,
    readonly limits: Limits,
    readonly management: ManagementAuth & { generated: boolean },
    private readonly transport: UwsTransport<Session>,
    private readonly log: Logger,
    private readonly closeResources: () => Promise<void>,
  ) {}

  static async start(opts: GatewayOptions): Promise<Gateway> {
    const log = opts.logger ?? createLogger();
    const api = await loadApiDefinition(opts.apiFile);
    const def = api.definition;
    const apiId = def.apiId ?? deriveApiId(def.name);
    const limits: Limits = Object.freeze({ ...DEFAULT_LIMITS, ...def.limits });
    const nodeId = opts.nodeId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    const region = def.region ?? 'us-east-1';
    const accountId = def.accountId ?? '123456789012';

    const cluster: ClusterState = await createClusterState(opts.redisUrl, nodeId, def.name, log);
    await cluster.start();

    const metrics = new GatewayMetrics();
    let opsRef: ConnectionOperations | undefined;
    let portRef = 0;
    // Handlers are compiled before the operations exist: bind each stage's operations on first use
    // (once, not per call: a fan-out calls postToConnection once per recipient).
    const opsFor = (stage: string): GatehouseOps => {
      let bound: GatehouseOps | undefined;
      const get = (): GatehouseOps => {
        bound ??= opsRef!.opsForStage(stage);
        return bound;
      };
      return {
        postToConnection: (i) => get().postToConnection(i),
        getConnection: (i) => get().getConnection(i),
        deleteConnection: (i) => get().deleteConnection(i),
        listConnections: () => get().listConnections(),
      };
    };
    const arnPrefix = `arn:aws:lambda:${region}:${accountId}:function:`;
    const backend = new HttpBackend();
    const streamRedis = usesRedisStreams(def) ? createStreamRedis(opts.redisUrl, log) : undefined;
    const backendDeps = { backend, redis: streamRedis, maxResponseBytes: limits.maxHttpBodyBytes, port: () => portRef };
    let stages: ReturnType<typeof compileStages>;
    try {
      stages = compileStages(def, apiId, metrics, (stage) => ({
        handlers: api.handlers,
        ops: opsFor(stage),
        arnPrefix,
        defaultTimeoutMs: limits.integrationTimeoutMillis,
        extra: wsFactories(backendDeps),
      }));
    } catch (err) {
      await Promise.all([cluster.close(), backend.close()]);
      streamRedis?.disconnect();
      throw err;
    }
    const ws = new WsGateway(stages, cluster, metrics, limits, log);
    const ops = new ConnectionOperations(ws, cluster);
    opsRef = ops;
    const arnBase = `arn:aws:execute-api:${region}:${accountId}:${apiId}`;
    const authorizers = compileAuthorizers(def.authorizers, {
      handlers: api.handlers,
      cluster,
      timeoutMs: limits.authorizerTimeoutMillis,
      ops: ops.opsForStage(Object.keys(def.stages)[0]!),
      arnPrefix,
      log,
      apiId,
    });
    if (authorizers.size > 0) ws.authorizeConnect = connectAuthorizer(authorizers, arnBase);
    const apiKeySource = def.apiKeySource ?? 'HEADER';
    const admission = Admission.create({ def, apiId, metrics, log, redis: opts.redisUrl ? rateLimitRedis(opts.redisUrl, def.name, nodeId, log) : undefined });
    ws.setAdmission(admission);
    ws.accessLog = accessLog(log);
    ws.apiKeySource = apiKeySource;

    let rest: RestGateway | undefined;
    if (def.http) {
      const mode = def.http.mode ?? 'HTTP';
      const restStages = new Map<string, { variables: Readonly<Record<string, string>> | undefined; routes: RouteTable<HttpRouteRuntime> }>();
      for (const [name, s] of Object.entries(def.stages)) {
        const routes = compileRestRoutes(api, authorizers, {
          handlers: api.handlers,
          ops: opsFor(name),
          arnPrefix,
          accountId,
          apiId,
          defaultTimeoutMs: limits.integrationTimeoutMillis,
          mode,
          binaryMediaTypes: def.http.binaryMediaTypes,
          extra: restFactories(backendDeps),
        });
        restStages.set(name, { variables: s.variables && Object.keys(s.variables).length ? s.variables : undefined, routes });
      }
      rest = new RestGateway({
        accessLog: accessLog(log),
        admission: admission ? restAdmission(admission, apiKeySource) : undefined,
        apiKeySource,
        mode,
        apiId,
        accountId,
        arnBase,
        stages: restStages,
        cors: def.http.cors ? compileCors(def.http.cors) : undefined,
        responses: compileGatewayResponses(def.http.gatewayResponses),
        metrics,
        limits,
        log,
      });
    }

    const management = resolveManagementAuth(def, opts);
    const connectionsApi = new ConnectionsApi(ops, management, new Set(stages.keys()), limits.maxPostBytes, log);

    const adminSeparate = opts.adminPort !== undefined;
    const httpDeps: HttpDeps = { connectionsApi, metrics, cluster, log, rest, admin: !adminSeparate };
    const http = (req: RawRequest, res: HttpResponder) => {
      // Most requests are answered synchronously or through the REST gateway's own callbacks:
      // a promise is only watched when the route handler returned one.
      let pending: Promise<void> | undefined;
      try {
        pending = routeHttp(req, res, httpDeps);
      } catch (err) {
        unhandledHttpError(err, req, res, log);
        return;
      }
      if (pending !== undefined) pending.catch((err: unknown) => unhandledHttpError(err, req, res, log));
    };
    const transport = new UwsTransport<Session>(
      {
        upgrade: (req, res) => ws.upgrade(req, res),
        open: (s) => ws.open(s),
        message: (s, data, isBinary) => ws.message(s, data, isBinary),
        drain: (s) => ws.drain(s),
        close: (s, code, reason) => ws.closed(s, code, reason),
        http,
      },
      {
        // uWS force-closes (no close frame) above this; keep it above our own limit so that
        // clients get a proper 1009 from the gateway for anything up to twice the limit.
        maxPayloadLength: Math.max(limits.maxFrameBytes, limits.maxMessageBytes) * 2,
        maxBackpressure: limits.maxSendBufferBytes,
      },
    );
    ws.attach(transport);
    const host = opts.host ?? '0.0.0.0';
    let port: number;
    try {
      port = await transport.listen(host, opts.port ?? 8080);
    } catch (err) {
      await Promise.all([cluster.close(), backend.close()]);
      streamRedis?.disconnect();
      throw err;
    }
    portRef = port;
    let adminListener: UwsHttpListener | undefined;
    let adminPort = port;
    if (adminSeparate) {
      adminListener = new UwsHttpListener((req, res) => {
        if (!serveAdmin(req, res, metrics, cluster, log)) res.send(404, { 'Content-Type': 'application/json' }, '{"message":"Not Found"}');
      });
      try {
        adminPort = await adminListener.listen(host, opts.adminPort!);
      } catch (err) {
        transport.closeAll();
        await Promise.all([cluster.close(), backend.close()]);
        streamRedis?.disconnect();
        throw err;
      }
    }
    const gw = new Gateway(api, apiId, port, adminPort, host, cluster, ws, ops, metrics, limits, management, transport, log, async () => {
      adminListener?.close();
      await admission?.close();
      await backend.close();
      streamRedis?.disconnect();
    });
    log.info({ port, nodeId, apiId, cluster: cluster.kind, stages: [...stages.keys()] }, 'gateway listening');
    return gw;
  }

  urls(): string[] {
    const h = this.host === '0.0.0.0' ? '127.0.0.1' : this.host;
    if (!this.api.definition.websocket) return [];
    return Object.keys(this.api.definition.stages).map((s) => `ws://${h}:${this.port}/${s}`);
  }

  /** Graceful drain: stop accepting, close clients with 1001, run their $disconnect, deregister. */
  async drain(timeoutMs = this.limits.drainTimeoutSeconds * 1000): Promise<void> {
    this.transport.stopListening();
    await this.ws.drainAll(timeoutMs);
    await this.cluster.close();
    this.transport.closeAll();
    await this.closeResources();
    this.log.info({ nodeId: this.cluster.nodeId }, 'drained and stopped');
  }

  /** Immediate stop (tests): closes every socket, waits for $disconnect handlers. */
  async stop(): Promise<void> {
    await this.drain(2000);
  }
}

async function createClusterState(redisUrl: string | undefined, nodeId: string, apiName: string, log: Logger): Promise<ClusterState> {
  if (!redisUrl) return new MemoryClusterState({ nodeId });
  const { RedisClusterState } = await import('./cluster/redis-cluster-state.ts');
  const keyPrefix = `gatehouse:${apiName}:`;
  const timing = clusterTimingFromEnv(process.env);
  // Several comma-separated seed URLs mean a sharded Redis Cluster.
  return new RedisClusterState({ url: redisUrl, cluster: redisUrl.includes(','), keyPrefix, nodeId, logger: log, ...timing });
}

const DEFAULT_HEARTBEAT_MS = 5000;
const DEFAULT_NODE_TTL_MS = 15_000;

/**
 * GATEHOUSE_HEARTBEAT_MS (default 5000) and GATEHOUSE_NODE_TTL_MS (default 15000): how often a
 * node refreshes its heartbeat, and how long after its last heartbeat a dead node's connections
 * are purged. Positive integers, and the TTL must exceed the heartbeat interval.
 */
export function clusterTimingFromEnv(env: NodeJS.ProcessEnv): { heartbeatIntervalMs: number; nodeTtlMs: number } {
  const read = (name: string, fallback: number): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') return fallback;
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n <= 0) {
      throw new Error(`${name} must be a positive integer number of milliseconds, got "${raw}"`);
    }
    return n;
  };
  const heartbeatIntervalMs = read('GATEHOUSE_HEARTBEAT_MS', DEFAULT_HEARTBEAT_MS);
  const nodeTtlMs = read('GATEHOUSE_NODE_TTL_MS', DEFAULT_NODE_TTL_MS);
  if (nodeTtlMs <= heartbeatIntervalMs) {
    throw new Error(`GATEHOUSE_NODE_TTL_MS (${nodeTtlMs}) must be greater than GATEHOUSE_HEARTBEAT_MS (${heartbeatIntervalMs})`);
  }
  return { heartbeatIntervalMs, nodeTtlMs };
}

function resolveManagementAuth(def: LoadedApi['definition'], opts: GatewayOptions): ManagementAuth & { generated: boolean } {
  const keys = new Map<string, string>();
  for (const k of def.management?.accessKeys ?? []) keys.set(k.accessKeyId, k.secretAccessKey);
  const envKeys = opts.managementKeys ?? process.env.GATEHOUSE_MANAGEMENT_KEYS;
  if (envKeys) for (const [id, secret] of parseManagementKeys(envKeys)) keys.set(id, secret);
  const bearerToken = opts.managementToken ?? process.env.GATEHOUSE_MANAGEMENT_TOKEN ?? def.management?.bearerToken;
  const required = def.management?.authentication !== 'NONE';
  let generated = false;
  if (required && keys.size === 0 && !bearerToken && opts.devCredentials) {
    keys.set(`AKIADEV${randomBytes(6).toString('hex').toUpperCase()}`, randomBytes(24).toString('base64url'));
    generated = true;
  }
  return { keys, bearerToken, required, generated };
}

interface HttpDeps {
  /** Serve the admin endpoints here (no separate admin port). */
  admin: boolean;
  rest: RestGateway | undefined;
  connectionsApi: ConnectionsApi;
  metrics: GatewayMetrics;
  cluster: ClusterState;
  log: Logger;
}

function unhandledHttpError(err: unknown, req: RawRequest, res: HttpResponder, log: Logger): void {
  log.error({ err, url: req.url }, 'unhandled error in HTTP handler');
  res.send(500, { 'Content-Type': 'application/json' }, '{"message":"Internal server error"}');
}

/** A promise only when the request is still being served asynchronously. */
function routeHttp(req: RawRequest, res: HttpResponder, d: HttpDeps): Promise<void> | undefined {
  // `@connections` is spelled with '@' or '%40' (see CONNECTIONS_RE): skip the regex otherwise.
  const conn = req.url.includes('@') || req.url.includes('%40') ? matchConnectionsPath(req.url) : undefined;
  if (conn) return d.connectionsApi.handle(req, res, conn.stage, conn.connectionId);
  if (d.admin && serveAdmin(req, res, d.metrics, d.cluster, d.log)) return;
  if (d.rest) return d.rest.handle(req, res);
  res.send(404, { 'Content-Type': 'application/json', 'x-amzn-ErrorType': 'NotFoundException' }, '{"message":"Not Found"}');
}

/** GATEHOUSE_ACCESS_LOG=1: one JSON line per REST request on stderr, `$context`-style fields. */
function accessLog(log: Logger): ((record: Record<string, unknown>) => void) | undefined {
  if (process.env.GATEHOUSE_ACCESS_LOG !== '1') return undefined;
  const access = log.child({ log: 'access' });
  return (record) => access.info(record, 'access');
}

/** /healthz, /readyz and /metrics; false when the request is not one of them. */
function serveAdmin(req: RawRequest, res: HttpResponder, metrics: GatewayMetrics, cluster: ClusterState, log: Logger): boolean {
  if (req.method !== 'GET') return false;
  switch (req.url) {
    case '/healthz':
      res.send(200, { 'Content-Type': 'application/json' }, '{"status":"ok"}');
      return true;
    case '/readyz': {
      const ready = cluster.isReady();
      res.send(ready ? 200 : 503, { 'Content-Type': 'application/json' }, JSON.stringify({ status: ready ? 'ready' : 'not ready', cluster: cluster.kind }));
      return true;
    }
    case '/metrics':
      metrics.render().then(
        (m) => res.send(200, { 'Content-Type': m.contentType }, m.body),
        (err: unknown) => {
          log.error({ err }, 'metrics rendering failed');
          res.send(500, { 'Content-Type': 'application/json' }, '{"message":"Internal server error"}');
        },
      );
      return true;
    default:
      return false;
  }
}

/** REST admission: the limiter's decision as a gateway response type. */
function restAdmission(admission: Admission, source: 'HEADER' | 'AUTHORIZER'): AdmissionCheck {
  return (ctx) => {
    const d = admission.check(ctx.stage, ctx.routeKey, apiKeyOf(ctx.headers, source, ctx.usageIdentifierKey), undefined, ctx.sourceIp, ctx.apiKeyRequired);
    if (d.ok) return d;
    const type = d.status === 403 ? 'INVALID_API_KEY' : d.message === 'Limit Exceeded' ? 'QUOTA_EXCEEDED' : 'THROTTLED';
    return d.retryAfterMs === undefined ? { ok: false, type } : { ok: false, type, retryAfterSeconds: Math.max(1, Math.ceil(d.retryAfterMs / 1000)) };
  };
}

/**
 * Redis for cluster-wide rate limits: its own client (no offline queue) and a node-count
 * estimate from the cluster registry's node set (see RedisClusterState's key layout), so that
 * each node's fallback share is rate / nodes while Redis is unreachable.
 */
function rateLimitRedis(url: string, apiName: string, nodeId: string, log: Logger) {
  const client = createRedisClient(url, log, 'rate limits');
  const prefix = `gatehouse:${apiName}:`;
  const nodesKey = `${prefix}{${prefix}}nodes`;
  let nodes = 1;
  const refresh = () => {
    if (client.status !== 'ready') return;
    client.scard(nodesKey).then(
      (n) => {
        nodes = Math.max(1, n);
      },
      (err: unknown) => log.debug({ err: (err as Error).message }, 'node count refresh failed'),
    );
  };
  const timer = setInterval(refresh, 5000);
  timer.unref();
  client.once('ready', refresh);
  client.once('end', () => clearInterval(timer));
  return { client, keyPrefix: `${prefix}rl:`, nodeId, nodeCount: () => nodes };
}

function usesRedisStreams(def: LoadedApi['definition']): boolean {
  const all = [...Object.values(def.websocket?.routes ?? {}).map((r) => r.integration), ...Object.values(def.http?.routes ?? {}).map((r) => r.integration)];
  return all.some((i) => i?.type === 'REDIS_STREAM');
}

/** A dedicated client for REDIS_STREAM integrations: no offline queue, so an outage fails fast. */
function createStreamRedis(url: string | undefined, log: Logger): Redis | Cluster {
  if (!url) throw new Error('REDIS_STREAM integrations need Redis: start the gateway with --redis URL (or REDIS_URL)');
  return createRedisClient(url, log, 'REDIS_STREAM');
}

function createRedisClient(url: string, log: Logger, purpose: string): Redis | Cluster {
  const common = { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 1000, lazyConnect: false };
  // Cluster keeps its offline queue (it needs it while slots are discovered); callers check status.
  const client = url.includes(',')
    ? new Cluster(
        url.split(',').map((u) => u.trim()),
        { redisOptions: { maxRetriesPerRequest: 0, commandTimeout: 1000 } },
      )
    : new Redis(url, { ...common, retryStrategy: (n: number) => Math.min(2000, 50 * 2 ** Math.min(n, 6)) });
  client.on('error', (err: Error) => log.warn({ err: err.message, purpose }, 'Redis connection error'));
  return client;
}
