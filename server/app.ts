import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { loadApiDefinition, type LoadedApi } from './api/load.ts';
import { compileAuthorizers } from './auth/authorizers.ts';
import type { ClusterState } from './cluster/cluster-state.ts';
import { MemoryClusterState } from './cluster/memory-cluster-state.ts';
import { DEFAULT_LIMITS, type Limits } from './limits.ts';
import { createLogger, type Logger } from './log.ts';
import { ConnectionsApi, type ManagementAuth, matchConnectionsPath } from './management/connections-api.ts';
import { ConnectionOperations } from './management/operations.ts';
import { parseManagementKeys } from './management/sigv4.ts';
import { GatewayMetrics } from './metrics.ts';
import { type HttpResponder, type RawRequest, UwsTransport } from './transport/uws.ts';
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
    readonly host: string,
    readonly cluster: ClusterState,
    readonly ws: WsGateway,
    readonly ops: ConnectionOperations,
    readonly metrics: GatewayMetrics,
    readonly limits: Limits,
    readonly management: ManagementAuth & { generated: boolean },
    private readonly transport: UwsTransport<Session>,
    private readonly log: Logger,
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
    const stages = compileStages(def, apiId, metrics, (stage) => ({
      handlers: api.handlers,
      ops: {
        postToConnection: (i) => opsRef!.opsForStage(stage).postToConnection(i),
        getConnection: (i) => opsRef!.opsForStage(stage).getConnection(i),
        deleteConnection: (i) => opsRef!.opsForStage(stage).deleteConnection(i),
        listConnections: () => opsRef!.opsForStage(stage).listConnections(),
      },
      arnPrefix: `arn:aws:lambda:${region}:${accountId}:function:`,
      defaultTimeoutMs: limits.integrationTimeoutMillis,
    }));
    const ws = new WsGateway(stages, cluster, metrics, limits, log);
    const ops = new ConnectionOperations(ws, cluster);
    opsRef = ops;
    const arnBase = `arn:aws:execute-api:${region}:${accountId}:${apiId}`;
    const authorizers = compileAuthorizers(def.authorizers, {
      handlers: api.handlers,
      cluster,
      timeoutMs: limits.authorizerTimeoutMillis,
      ops: ops.opsForStage(Object.keys(def.stages)[0]!),
      arnPrefix: `arn:aws:lambda:${region}:${accountId}:function:`,
      log,
      apiId,
    });
    if (authorizers.size > 0) ws.authorizeConnect = connectAuthorizer(authorizers, arnBase);

    const management = resolveManagementAuth(def, opts);
    const connectionsApi = new ConnectionsApi(ops, management, new Set(stages.keys()), limits.maxPostBytes, log);

    const http = (req: RawRequest, res: HttpResponder) => {
      routeHttp(req, res, { connectionsApi, metrics, cluster, log }).catch((err: unknown) => {
        log.error({ err, url: req.url }, 'unhandled error in HTTP handler');
        res.send(500, { 'Content-Type': 'application/json' }, '{"message":"Internal server error"}');
      });
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
      await cluster.close();
      throw err;
    }
    const gw = new Gateway(api, apiId, port, host, cluster, ws, ops, metrics, limits, management, transport, log);
    log.info({ port, nodeId, apiId, cluster: cluster.kind, stages: [...stages.keys()] }, 'gateway listening');
    return gw;
  }

  urls(): string[] {
    const h = this.host === '0.0.0.0' ? '127.0.0.1' : this.host;
    return Object.keys(this.api.definition.stages).map((s) => `ws://${h}:${this.port}/${s}`);
  }

  /** Graceful drain: stop accepting, close clients with 1001, run their $disconnect, deregister. */
  async drain(timeoutMs = this.limits.drainTimeoutSeconds * 1000): Promise<void> {
    this.transport.stopListening();
    await this.ws.drainAll(timeoutMs);
    await this.cluster.close();
    this.transport.closeAll();
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
  // Several comma-separated seed URLs mean a sharded Redis Cluster.
  return new RedisClusterState({ url: redisUrl, cluster: redisUrl.includes(','), keyPrefix, nodeId, logger: log });
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
  connectionsApi: ConnectionsApi;
  metrics: GatewayMetrics;
  cluster: ClusterState;
  log: Logger;
}

async function routeHttp(req: RawRequest, res: HttpResponder, d: HttpDeps): Promise<void> {
  const conn = matchConnectionsPath(req.url);
  if (conn) {
    await d.connectionsApi.handle(req, res, conn.stage, conn.connectionId);
    return;
  }
  if (req.method === 'GET') {
    switch (req.url) {
      case '/healthz':
        res.send(200, { 'Content-Type': 'application/json' }, '{"status":"ok"}');
        return;
      case '/readyz': {
        const ready = d.cluster.isReady();
        res.send(ready ? 200 : 503, { 'Content-Type': 'application/json' }, JSON.stringify({ status: ready ? 'ready' : 'not ready', cluster: d.cluster.kind }));
        return;
      }
      case '/metrics': {
        const m = await d.metrics.render();
        res.send(200, { 'Content-Type': m.contentType }, m.body);
        return;
      }
    }
  }
  res.send(404, { 'Content-Type': 'application/json', 'x-amzn-ErrorType': 'NotFoundException' }, '{"message":"Not Found"}');
}
