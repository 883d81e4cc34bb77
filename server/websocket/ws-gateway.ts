import { isUtf8 } from 'node:buffer';
import { unpack } from 'msgpackr';
import type { ClusterState, CommandOutcome, ConnectionRecord } from '../cluster/cluster-state.ts';
import { nextId } from '../ids.ts';
import { IntegrationTimeoutError } from '../integrations/deadlines.ts';
import type { Continuation, IntegrationResponse, Invocation } from '../integrations/integration.ts';
import { CLOSE, type Limits } from '../limits.ts';
import type { Logger } from '../log.ts';
import type { GatewayMetrics } from '../metrics.ts';
import { StringTable } from '../string-table.ts';
import { type Admission, apiKeyOf } from '../throttling/admission.ts';
import type { RawRequest, Socket, UpgradeResponder } from '../transport/uws.ts';
import { type ConnectInfo, connectEvent, disconnectEvent, messageEvent } from './events.ts';
import { ERR, errorFrame, errorFrameMsgpack, toMsgpackReply } from './frames.ts';
import { headerMaps, queryMaps } from './headers.ts';
import { INVALID, NEEDS_PARSE, scanTopLevelKey } from './json-scan.ts';
import { Session } from './session.ts';
import type { StageRoute, StageRuntime } from './stage-runtime.ts';

/** The socket operations the gateway needs; the uWS transport provides them. */
export interface SocketOps {
  send(ws: Socket<Session>, data: string | Uint8Array, binary: boolean): number;
  end(ws: Socket<Session>, code: number, reason: string): void;
  bufferedAmount(ws: Socket<Session>): number;
  /** Run `fn` with the socket corked: its sends leave in one write. */
  cork(ws: Socket<Session>, fn: () => void): void;
}

/** Result of the authorization step of `$connect` (filled by the authorizers issue). */
export type ConnectAuthorization =
  | { ok: true; authorizer?: Record<string, unknown> | undefined; protocol?: string | undefined; usageIdentifierKey?: string | undefined }
  | { ok: false; status: number; body: string; headers?: Record<string, string> };

export type ConnectAuthorizer = (req: RawRequest, stage: StageRuntime, info: ConnectInfo) => Promise<ConnectAuthorization>;

export type LocalOutcome = CommandOutcome | { status: 'not_local' };

const SEND_DROPPED = 2;
const decoder = new TextDecoder();

class MessageInvocation implements Continuation {
  constructor(
    readonly gateway: WsGateway,
    readonly session: Session,
    readonly route: StageRoute,
    readonly requestId: string,
    readonly body: string,
    readonly now: number,
  ) {}
  get routeKey(): string {
    return this.route.routeKey;
  }
  complete(err: unknown, res: IntegrationResponse | undefined): void {
    if (err === undefined) {
      this.route.stats.IntegrationLatency.observe(Date.now() - this.now);
      this.gateway.reply(this.session, this.route, res);
    } else this.gateway.integrationFailed(this.session, this.route, this.requestId, err);
  }
  buildEvent(): object {
    return messageEvent(this.session, this.routeKey, this.requestId, this.body, this.now);
  }
  wsInfo() {
    return sessionInfo(this.session, this.routeKey, 'MESSAGE', this.body);
  }
}

/** What the HTTP-family integrations send to a backend for a WebSocket event. */
function sessionInfo(s: { connectionId: string; sourceIp: string }, routeKey: string, eventType: string, body: string, stage?: StageRuntime) {
  const st = stage ?? (s as Session).stage;
  return {
    connectionId: s.connectionId,
    routeKey,
    eventType,
    stage: st.name,
    body,
    stageVariables: st.variables,
    sourceIp: s.sourceIp,
    context: { connectionId: s.connectionId, routeKey, eventType, stage: st.name, apiId: st.apiId, identity: { sourceIp: s.sourceIp } },
  };
}

/**
 * The WebSocket API: `$connect` while the upgrade is pending, route selection and integration
 * per message, `$disconnect` after every close, idle/lifetime limits, slow-consumer policy and
 * the node-local half of the @connections operations.
 *
 * Message pipeline (in order; each step can answer with an error frame and stop):
 *   size limit (close 1009) → decode (JSON / msgpack) → route selection → [throttle] →
 *   [validate] → integrate → route response (two-way routes only)
 */
export class WsGateway {
  /** Open connections by id (a StringTable, not a Map: one insert and one delete per connection). */
  readonly sessions = new StringTable<Session>();
  private readonly pendingDisconnects = new Set<Promise<void>>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private socket: SocketOps | undefined;
  private draining = false;
  /** Connections with posts queued in this turn (see postLocal), flushed by one setImmediate. */
  private flushList: Session[] = [];
  private flushSpare: Session[] = [];
  private flushScheduled = false;
  private readonly flushAllPostsBound = () => this.flushAllPosts();
  authorizeConnect: ConnectAuthorizer | undefined;
  /** The throttling stage (undefined when the API configures no limits); see `setAdmission`. */
  admission: Admission | undefined;

  /** Install the throttling stage and resolve each route's message-path buckets once. */
  setAdmission(admission: Admission | undefined): void {
    this.admission = admission;
    if (!admission) return;
    for (const stage of this.stages.values()) {
      for (const route of stage.routes.values()) route.throttle = admission.messageThrottle(stage.name, route.routeKey);
    }
  }
  apiKeySource: 'HEADER' | 'AUTHORIZER' = 'HEADER';
  /** Structured access log for connects and disconnects (GATEHOUSE_ACCESS_LOG=1). */
  accessLog: ((record: Record<string, unknown>) => void) | undefined;

  constructor(
    private readonly stages: ReadonlyMap<string, StageRuntime>,
    private readonly cluster: ClusterState,
    private readonly metrics: GatewayMetrics,
    private readonly limits: Limits,
    private readonly log: Logger,
  ) {}

  attach(socket: SocketOps): void {
    this.socket = socket;
    this.sweepTimer = setInterval(() => this.sweep(), 1000);
    this.sweepTimer.unref();
  }

  stage(name: string): StageRuntime | undefined {
    return this.stages.get(name);
  }

  // ---- $connect -------------------------------------------------------------------------

  upgrade(req: RawRequest, res: UpgradeResponder): void {
    const stageName = stageFromPath(req.url);
    const stage = stageName === undefined ? undefined : this.stages.get(stageName);
    if (!stage) {
      res.reject(404, '{"message":"Not Found"}');
      return;
    }
    if (this.draining) {
      res.reject(503, '{"message":"Service Unavailable"}', { 'Retry-After': '1' });
      return;
    }
    const now = Date.now();
    let userAgent = '';
    let host = '';
    for (const [k, v] of req.headers) {
      if (k === 'user-agent') userAgent = v;
      else if (k === 'host') host = v;
    }
    const info: ConnectInfo = {
      connectionId: nextId(),
      connectedAt: now,
      sourceIp: req.remoteAddress,
      userAgent,
      domainName: host || 'localhost',
      headerMaps: headerMaps(withForwardedHeaders(req)),
      query: queryMaps(req.query),
      authorizer: undefined,
    };
    this.connect(req, res, stage, info).catch((err: unknown) => {
      this.log.error({ err, connectionId: info.connectionId }, '$connect failed unexpectedly');
      res.reject(500, '{"message": "Internal server error"}');
    });
  }

  /** Throttling and API keys for an upgrade: 429 over a limit, 403 for a missing or unknown key. */
  private admitConnect(req: RawRequest, stage: StageRuntime, usageKey: string | undefined): { status: number; body: string; headers: Record<string, string> } | undefined {
    const required = stage.connect?.def.apiKeyRequired === true;
    const apiKey = apiKeyOf(req.headers, this.apiKeySource, usageKey);
    const d = this.admission!.check(stage.name, '$connect', apiKey, undefined, req.remoteAddress, required);
    if (d.ok) return undefined;
    stage.unmatchedStats.Throttled++;
    const retry: Record<string, string> = d.retryAfterMs === undefined ? {} : { 'Retry-After': String(Math.ceil(d.retryAfterMs / 1000)) };
    const type = d.status === 403 ? 'ForbiddenException' : d.message === 'Limit Exceeded' ? 'LimitExceededException' : 'TooManyRequestsException';
    return { status: d.status, body: JSON.stringify({ message: d.message }), headers: { 'x-amzn-ErrorType': type, ...retry } };
  }

  private async connect(req: RawRequest, res: UpgradeResponder, stage: StageRuntime, info: ConnectInfo): Promise<void> {
    let protocol = '';
    let usageKey: string | undefined;
    // With keys in a header, limits apply before the authorizer runs (a flood never reaches it).
    if (this.admission && this.apiKeySource === 'HEADER') {
      const refused = this.admitConnect(req, stage, undefined);
      if (refused) {
        res.reject(refused.status, refused.body, refused.headers);
        return;
      }
    }
    if (this.authorizeConnect) {
      const auth = await this.authorizeConnect(req, stage, info);
      if (!auth.ok) {
        stage.unmatchedStats.ClientError++;
        res.reject(auth.status, auth.body, auth.headers);
        return;
      }
      info.authorizer = auth.authorizer;
      protocol = auth.protocol ?? '';
      usageKey = auth.usageIdentifierKey;
      if (res.aborted) return;
    }
    if (this.admission && this.apiKeySource === 'AUTHORIZER') {
      const refused = this.admitConnect(req, stage, usageKey);
      if (refused) {
        res.reject(refused.status, refused.body, refused.headers);
        return;
      }
    }
    if (stage.connect?.def.apiKeyRequired) info.apiKey = apiKeyOf(req.headers, this.apiKeySource, usageKey);
    const route = stage.connect;
    const extra: Record<string, string> = {};
    if (route?.integration) {
      route.stats.ConnectCount++;
      const requestId = nextId();
      const started = Date.now();
      let result: IntegrationResponse | undefined;
      try {
        const inv = { requestId, buildEvent: () => connectEvent(stage, info, requestId, started), wsInfo: () => sessionInfo(info, '$connect', 'CONNECT', '', stage) };
        result = await route.integration.invoke(inv);
        if (route.integration.type !== 'MOCK') route.stats.IntegrationLatency.observe(Date.now() - started);
      } catch (err) {
        const timedOut = err instanceof IntegrationTimeoutError;
        route.stats.ExecutionError++;
        this.log.warn({ err, requestId, connectionId: info.connectionId, route: '$connect' }, timedOut ? '$connect integration timed out' : '$connect integration failed');
        res.reject(timedOut ? 502 : 500, timedOut ? '{"message": "Endpoint request timed out"}' : '{"message": "Internal server error"}');
        return;
      }
      const status = result?.statusCode ?? 200;
      if (status < 200 || status > 299) {
        route.stats.IntegrationError++;
        res.reject(status, result?.body ?? '', result?.headers);
        return;
      }
      for (const [k, v] of Object.entries(result?.headers ?? {})) {
        const lk = k.toLowerCase();
        if (lk === 'sec-websocket-protocol') protocol = v;
        else if (!HOP_BY_HOP.has(lk)) extra[k] = v;
      }
    }
    if (res.aborted) {
      // The client left while $connect ran: the backend saw a CONNECT, so it gets its DISCONNECT.
      this.fireDisconnect(this.newSession(stage, info), CLOSE.ABNORMAL, 'Client left before the connection was established');
      return;
    }
    res.accept(this.newSession(stage, info), protocol, extra);
  }

  private newSession(stage: StageRuntime, info: ConnectInfo): Session {
    return new Session(info.connectionId, stage, info.connectedAt, info.sourceIp, info.userAgent, internDomain(info.domainName), info.authorizer, info.apiKey);
  }

  open(ws: Socket<Session>): void {
    const s = ws.getUserData();
    s.ws = ws;
    if (this.draining) {
      this.close(s, CLOSE.GOING_AWAY, 'Going away: server shutting down');
      return;
    }
    this.sessions.set(s.connectionId, s);
    this.metrics.connections++;
    this.accessLog?.({ eventType: 'CONNECT', connectionId: s.connectionId, ip: s.sourceIp, stage: s.stage.name, status: 101, connectedAt: s.connectedAt });
    this.cluster.registerConnection(this.record(s)).catch((err: unknown) => {
      this.log.warn({ err, connectionId: s.connectionId }, 'could not register connection in cluster state');
    });
  }

  // ---- messages ---------------------------------------------------------------------------

  message(ws: Socket<Session>, data: ArrayBuffer, isBinary: boolean): void {
    const s = ws.getUserData();
    const size = data.byteLength;
    // uWS reassembles fragments before we see them, so the frame limit applies to the message.
    if (size > this.limits.maxFrameBytes || size > this.limits.maxMessageBytes) {
      this.close(s, CLOSE.TOO_BIG, 'Message too big');
      return;
    }
    const now = Date.now();
    s.lastActiveAt = now;
    const stage = s.stage;
    let body: string;
    let parsed: unknown;
    let isJson = false;
    let key: string | undefined;
    if (isBinary) {
      s.binary = true;
      try {
        // Copy: the ArrayBuffer is neutered after this callback and msgpackr may keep views into it.
        parsed = unpack(Buffer.from(new Uint8Array(data)));
      } catch {
        stage.unmatchedStats.ClientError++;
        const requestId = nextId();
        this.send(s, errorFrameMsgpack(ERR.INVALID_MSGPACK, s.connectionId, requestId), true);
        return;
      }
      isJson = true;
      body = JSON.stringify(parsed) ?? '';
    } else {
      body = decoder.decode(data);
      const selection = stage.selection;
      if (selection.usesBody) {
        const c = body.charCodeAt(0);
        if (c === 123 || c === 91 || c === 32 || c === 10 || c === 13 || c === 9) {
          const scanned = selection.fastKey === undefined ? NEEDS_PARSE : scanTopLevelKey(body, selection.fastKey);
          if (scanned === NEEDS_PARSE) {
            try {
              parsed = JSON.parse(body);
              isJson = true;
            } catch {
              isJson = false;
            }
          } else if (scanned !== INVALID) {
            // Valid JSON and the key's plain string value, found without building an object.
            key = scanned;
          }
        }
      }
    }
    let route: StageRoute | undefined;
    if (key === undefined && (isJson || !stage.selection.usesBody)) key = stage.selection.evaluate(parsed);
    if (key !== undefined && key.charCodeAt(0) !== 36 /* $ */) route = stage.routes.get(key);
    route ??= stage.default;
    if (!route) {
      stage.unmatchedStats.ClientError++;
      this.sendError(s, ERR.FORBIDDEN, nextId());
      return;
    }
    if (this.admission) {
      // Over a limit: an error frame, and the connection stays open (PRODUCT section 6).
      const t = route.throttle;
      if (t !== undefined && s.apiKey === undefined) {
        const r = t.check(s);
        if (!r.ok) {
          route.stats.Throttled++;
          this.admission.refused(stage.name, r.level);
          this.sendError(s, ERR.THROTTLED, nextId());
          return;
        }
      } else {
        const d = this.admission.check(stage.name, route.routeKey, s.apiKey, s.connectionId, undefined, s.apiKey !== undefined);
        if (!d.ok) {
          route.stats.Throttled++;
          this.sendError(s, d.status === 403 ? ERR.FORBIDDEN : d.message, nextId());
          return;
        }
      }
    }
    const mock = route.mockReply;
    if (mock) {
      // Two-way MOCK: pre-encoded reply, no event, no request id, no promise.
      route.stats.MessageCount += 2;
      if (s.binary) this.send(s, mock.packed, true);
      else this.send(s, mock.text, false);
      return;
    }
    const requestId = nextId();
    route.stats.MessageCount++;
    const integration = route.integration;
    if (!integration) return;
    const inv = new MessageInvocation(this, s, route, requestId, body, now);
    if (integration.start) {
      integration.start(inv);
      return;
    }
    let result: IntegrationResponse | undefined | Promise<IntegrationResponse | undefined>;
    try {
      result = integration.invoke(inv);
    } catch (err) {
      this.integrationFailed(s, route, requestId, err);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (r) => {
          route.stats.IntegrationLatency.observe(Date.now() - now);
          this.reply(s, route, r);
        },
        (err: unknown) => this.integrationFailed(s, route, requestId, err),
      );
    } else {
      this.reply(s, route, result);
    }
  }

  /**
   * Route response of an integration. uWS.js drains microtasks inside its (corked) read
   * handler, so replies from promise callbacks still leave in one write per read.
   */
  reply(s: Session, route: StageRoute, r: IntegrationResponse | undefined): void {
    if (!route.twoWay || r?.body === undefined || s.closed) return;
    route.stats.MessageCount++;
    if (s.binary) this.send(s, toMsgpackReply(r.body), true);
    else this.send(s, r.body, false);
  }

  integrationFailed(s: Session, route: StageRoute, requestId: string, err: unknown): void {
    const timedOut = err instanceof IntegrationTimeoutError;
    route.stats.ExecutionError++;
    route.stats.IntegrationError++;
    this.log.warn({ err, requestId, connectionId: s.connectionId, route: route.routeKey }, timedOut ? 'integration timed out' : 'integration failed');
    if (!s.closed) this.sendError(s, timedOut ? ERR.TIMEOUT : ERR.INTERNAL, requestId);
  }

  sendError(s: Session, message: string, requestId: string): void {
    if (s.binary) this.send(s, errorFrameMsgpack(message, s.connectionId, requestId), true);
    else this.send(s, errorFrame(message, s.connectionId, requestId), false);
  }

  /** Send with the slow-consumer policy: a send the buffer cannot take closes with 1013. */
  private send(s: Session, data: string | Uint8Array, binary: boolean): boolean {
    if (!s.ws || s.closed) return false;
    // Posts accepted earlier in this turn go first: per-connection order is kept.
    if (s.out !== undefined) this.flushPosts(s);
    if (this.socket!.send(s.ws, data, binary) === SEND_DROPPED) {
      this.close(s, CLOSE.TRY_AGAIN_LATER, 'Slow consumer: send buffer full');
      return false;
    }
    return true;
  }

  /**
   * Writes the posts queued on one connection: corked, so that all of them leave in one write
   * (a broadcast burst reaching a client several times in one turn costs one syscall, not one
   * per message).
   */
  private flushPosts(s: Session): void {
    const out = s.out;
    if (out === undefined) return;
    s.out = undefined;
    s.outBytes = 0;
    if (!s.ws || s.closed) return;
    if (out.length === 2) {
      this.sendQueued(s, out[0] as string | Uint8Array, out[1] as boolean);
      return;
    }
    this.socket!.cork(s.ws, () => {
      for (let i = 0; i < out.length; i += 2) if (!this.sendQueued(s, out[i] as string | Uint8Array, out[i + 1] as boolean)) return;
    });
  }

  private sendQueued(s: Session, data: string | Uint8Array, binary: boolean): boolean {
    if (!s.ws || s.closed || s.closeCode) return false;
    if (this.socket!.send(s.ws, data, binary) === SEND_DROPPED) {
      // Accepted (the post was answered 200) but the buffer cannot take it after all: the client
      // must learn it missed something, so it is closed like any slow consumer.
      this.close(s, CLOSE.TRY_AGAIN_LATER, 'Slow consumer: send buffer full');
      return false;
    }
    return true;
  }

  private flushAllPosts(): void {
    this.flushScheduled = false;
    const list = this.flushList;
    this.flushList = this.flushSpare;
    this.flushSpare = list;
    for (let i = 0; i < list.length; i++) this.flushPosts(list[i]!);
    list.length = 0;
  }

  drain(_ws: Socket<Session>): void {
    // Backpressure drained; nothing queued in the gateway itself.
  }

  // ---- close / $disconnect ----------------------------------------------------------------

  close(s: Session, code: number, reason: string): void {
    if (s.closed || !s.ws || s.closeCode) return;
    // Posts already answered 200 leave before the close frame.
    if (s.out !== undefined) this.flushPosts(s);
    if (s.closed || s.closeCode) return;
    s.closeCode = code;
    s.closeReason = reason;
    this.socket!.end(s.ws, code, reason);
  }

  closed(ws: Socket<Session>, code: number, reason: string): void {
    const s = ws.getUserData();
    if (s.closed) return;
    s.closed = true;
    this.admission?.forgetConnection(s.connectionId);
    if (this.sessions.delete(s.connectionId)) {
      this.metrics.connections--;
      this.cluster.unregisterConnection(s.connectionId).catch((err: unknown) => {
        this.log.warn({ err, connectionId: s.connectionId }, 'could not unregister connection');
      });
    }
    let dcode = code;
    let dreason = reason;
    if (s.closeCode) {
      dcode = s.closeCode;
      dreason = s.closeReason;
    } else if (code === CLOSE.ABNORMAL && reason === 'Received too big message') {
      dcode = CLOSE.TOO_BIG;
      dreason = 'Message too big';
    } else if (code === CLOSE.NO_STATUS) {
      dreason = 'Client-side close frame status not set';
    }
    this.accessLog?.({ eventType: 'DISCONNECT', connectionId: s.connectionId, ip: s.sourceIp, stage: s.stage.name, disconnectStatusCode: dcode, disconnectReason: dreason });
    this.fireDisconnect(s, dcode, dreason);
  }

  private fireDisconnect(s: Session, code: number, reason: string): void {
    const route = s.stage.disconnect;
    if (!route?.integration) return;
    const requestId = nextId();
    const now = Date.now();
    const integration = route.integration;
    const p = (async () => {
      try {
        await integration.invoke({
          requestId,
          buildEvent: () => disconnectEvent(s, requestId, code, reason, now),
          wsInfo: () => sessionInfo(s, '$disconnect', 'DISCONNECT', ''),
        } as Invocation);
      } catch (err) {
        route.stats.ExecutionError++;
        this.log.warn({ err, requestId, connectionId: s.connectionId, route: '$disconnect' }, '$disconnect integration failed');
      }
    })();
    this.pendingDisconnects.add(p);
    void p.finally(() => this.pendingDisconnects.delete(p));
  }

  private sweep(): void {
    const now = Date.now();
    const idleMs = this.limits.idleTimeoutSeconds * 1000;
    const lifeMs = this.limits.maxConnectionDurationSeconds * 1000;
    for (const s of this.sessions.values()) {
      if (now - s.connectedAt >= lifeMs) this.close(s, CLOSE.GOING_AWAY, 'Going away: maximum connection duration reached');
      else if (now - s.lastActiveAt >= idleMs) this.close(s, CLOSE.GOING_AWAY, 'Going away: idle timeout');
    }
  }

  // ---- node-local @connections operations -------------------------------------------------

  private localSession(stage: string | undefined, connectionId: string): Session | undefined {
    const s = this.sessions.get(connectionId);
    if (!s || s.closed || (stage !== undefined && s.stage.name !== stage)) return undefined;
    return s;
  }

  postLocal(stage: string | undefined, connectionId: string, data: Uint8Array | string): LocalOutcome {
    const s = this.localSession(stage, connectionId);
    if (!s) return this.sessions.has(connectionId) ? { status: 'gone' } : { status: 'not_local' };
    const size = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
    if (size > this.limits.maxPostBytes) return { status: 'too_large' };
    // Refuse (429) rather than queue past the send-buffer bound; an empty buffer takes any message.
    // Posts queued in this turn count as buffered.
    const buffered = this.socket!.bufferedAmount(s.ws!) + s.outBytes;
    if (buffered > 0 && buffered + size > this.limits.maxSendBufferBytes) return { status: 'throttled' };
    // Valid UTF-8 goes out as a text frame, bytes as they are (no decode and re-encode); a string
    // (an in-process post) is text by construction.
    const binary = typeof data !== 'string' && !isUtf8(data);
    s.lastActiveAt = Date.now();
    s.stage.callbackStats.MessageCount++;
    // Written at the end of this event-loop turn, together with anything else posted to this
    // connection meanwhile (a sender's own route replies flush the queue first: order is kept).
    if (s.out === undefined) {
      s.out = [];
      this.flushList.push(s);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(this.flushAllPostsBound);
      }
    }
    s.out.push(data, binary);
    s.outBytes += size;
    return { status: 'ok' };
  }

  deleteLocal(stage: string | undefined, connectionId: string): LocalOutcome {
    const s = this.localSession(stage, connectionId);
    if (!s) return this.sessions.has(connectionId) ? { status: 'gone' } : { status: 'not_local' };
    this.close(s, CLOSE.NORMAL, 'Connection Closed Normally');
    return { status: 'ok' };
  }

  describeLocal(stage: string | undefined, connectionId: string): LocalOutcome {
    const s = this.localSession(stage, connectionId);
    if (!s) return this.sessions.has(connectionId) ? { status: 'gone' } : { status: 'not_local' };
    return { status: 'ok', record: this.record(s) };
  }

  record(s: Session): ConnectionRecord {
    return {
      connectionId: s.connectionId,
      nodeId: this.cluster.nodeId,
      stage: s.stage.name,
      connectedAt: s.connectedAt,
      lastActiveAt: s.lastActiveAt,
      sourceIp: s.sourceIp,
      userAgent: s.userAgent,
      authorizer: s.authorizer,
    };
  }

  // ---- shutdown ---------------------------------------------------------------------------

  /** Stop accepting, close every client with 1001, and wait (bounded) for their $disconnect. */
  async drainAll(timeoutMs: number): Promise<void> {
    this.draining = true;
    for (const s of [...this.sessions.values()]) this.close(s, CLOSE.GOING_AWAY, 'Going away: server shutting down');
    const deadline = Date.now() + timeoutMs;
    while (this.pendingDisconnects.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.allSettled([...this.pendingDisconnects]), new Promise((r) => setTimeout(r, Math.max(1, deadline - Date.now())).unref())]);
    }
    if (this.sweepTimer) clearInterval(this.sweepTimer);
  }

  /** Wait until every $disconnect fired so far has finished (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.pendingDisconnects.size > 0) await Promise.allSettled([...this.pendingDisconnects]);
  }
}

/** Headers of a $connect integration's answer that never go into the 101 response. */
const HOP_BY_HOP = new Set([
  'connection',
  'upgrade',
  'sec-websocket-accept',
  'sec-websocket-extensions',
  'content-length',
  'content-type',
  'transfer-encoding',
  'keep-alive',
  'date',
  'server',
]);

/** `/prod` or `/prod/` → `prod`; anything deeper is not a WebSocket endpoint. */
function stageFromPath(url: string): string | undefined {
  const trimmed = url.endsWith('/') ? url.slice(1, -1) : url.slice(1);
  if (!trimmed || trimmed.includes('/')) return undefined;
  return trimmed;
}

/** AWS adds X-Forwarded-For/Port/Proto to the CONNECT event's headers. */
function withForwardedHeaders(req: RawRequest): Array<[string, string]> {
  const out = req.headers.slice();
  const has = (n: string) => out.some(([k]) => k === n);
  const xff = out.findIndex(([k]) => k === 'x-forwarded-for');
  if (xff >= 0) out[xff] = ['x-forwarded-for', `${out[xff]![1]}, ${req.remoteAddress}`];
  else out.push(['x-forwarded-for', req.remoteAddress]);
  if (!has('x-forwarded-proto')) out.push(['x-forwarded-proto', 'http']);
  if (!has('x-forwarded-port')) {
    const host = out.find(([k]) => k === 'host')?.[1] ?? '';
    const m = /:(\d+)$/.exec(host);
    out.push(['x-forwarded-port', m ? m[1]! : '80']);
  }
  return out;
}

const domains = new Map<string, string>();
/** Most connections share a handful of Host values: keep one copy of each. */
function internDomain(d: string): string {
  const hit = domains.get(d);
  if (hit !== undefined) return hit;
  if (domains.size < 1000) domains.set(d, d);
  return d;
}
