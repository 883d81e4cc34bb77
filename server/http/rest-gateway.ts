import type { AuthDecision, CompiledAuthorizer } from '../auth/authorizers.ts';
import { nextId, uuid } from '../ids.ts';
import type { Limits } from '../limits.ts';
import type { Logger } from '../log.ts';
import type { GatewayMetrics, RouteStats } from '../metrics.ts';
import { clfTime } from '../time.ts';
import type { HttpResponder, RawRequest } from '../transport/uws.ts';
import { canonicalHeaderName } from '../websocket/headers.ts';
import { type CorsPolicy, isPreflight, stripCorsHeaders } from './cors.ts';
import type { GatewayResponses, GatewayResponseType } from './gateway-responses.ts';
import type { HttpCall, HttpIntegration, HttpOutcome, OutcomeSink } from './http-integrations.ts';
import { buildEventV1 } from './proxy-events.ts';
import { type GatewayHttpRequest, headerValue, lowerHeaderValue, normalisePath, parseQueryString, singleValueMap } from './request.ts';
import type { RouteMatch, RouteTable } from './route-table.ts';
import type { RequestValidator } from './validation.ts';

export interface HttpRouteRuntime {
  readonly routeKey: string;
  readonly integration: HttpIntegration;
  readonly authorizer: CompiledAuthorizer | undefined;
  readonly authorizationScopes: string[] | undefined;
  readonly validator: RequestValidator | undefined;
  readonly apiKeyRequired: boolean;
}

/** A throttling / API-key decision for one request (filled by the throttling stage). */
export type AdmissionCheck = (ctx: {
  stage: string;
  routeKey: string;
  headers: ReadonlyArray<[string, string]>;
  sourceIp: string;
  apiKeyRequired: boolean;
  usageIdentifierKey: string | undefined;
}) => { ok: true } | { ok: false; type: GatewayResponseType; retryAfterSeconds?: number };

export interface RestGatewayOptions {
  mode: 'REST' | 'HTTP';
  apiId: string;
  accountId: string;
  arnBase: string;
  /** Each stage has its own compiled routes (integrations are bound to the stage). */
  stages: ReadonlyMap<string, { variables: Readonly<Record<string, string>> | undefined; routes: RouteTable<HttpRouteRuntime> }>;
  cors: CorsPolicy | undefined;
  responses: GatewayResponses;
  metrics: GatewayMetrics;
  limits: Limits;
  log: Logger;
  admission?: AdmissionCheck | undefined;
  /** Structured access log (`$context`-style fields), one record per request; off when undefined. */
  accessLog?: ((record: Record<string, unknown>) => void) | undefined;
  /** HEADER: limits apply before the authorizer; AUTHORIZER: after (the key comes from it). */
  apiKeySource?: 'HEADER' | 'AUTHORIZER' | undefined;
}

const NO_BODY_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE']);
const NO_HEADERS: ReadonlyArray<readonly [string, string]> = Object.freeze([]);

/** A stage as the gateway serves it, with the metrics of its routes (created on first use). */
interface StageRuntime {
  readonly name: string;
  readonly variables: Readonly<Record<string, string>> | undefined;
  readonly routes: RouteTable<HttpRouteRuntime>;
  readonly stats: Map<string, RouteStats>;
}

/**
 * REST routes through the shared pipeline. The stages, in order (each may answer and stop):
 *   stage lookup → path normalisation (400 on traversal) → CORS preflight → route match
 *   (403 Missing Authentication Token / 404 Not Found) → bounded body read (413) →
 *   authorize (401/403/500) → throttle & API keys (429/403) → validate (400) →
 *   integrate → response (CORS headers, request id).
 *
 * A request that needs none of the asynchronous stages (no body, authorizer, validator or
 * throttling) runs synchronously up to the integration, which answers through `Exchange.complete`
 * (at once for MOCK and synchronous Lambda handlers): no promise and no closure per request.
 */
export class RestGateway {
  private readonly stageRuntimes = new Map<string, StageRuntime>();
  constructor(private readonly o: RestGatewayOptions) {
    for (const [name, s] of o.stages) this.stageRuntimes.set(name, { name, variables: s.variables, routes: s.routes, stats: new Map() });
  }

  private statsFor(stage: StageRuntime, routeKey: string): RouteStats {
    let s = stage.stats.get(routeKey);
    if (!s) {
      s = this.o.metrics.routeStats(this.o.apiId, stage.name, routeKey);
      stage.stats.set(routeKey, s);
    }
    return s;
  }

  /** A promise only while the request is still in an asynchronous stage (body, authorizer, a promise-based integration). */
  handle(raw: RawRequest, res: HttpResponder): Promise<void> | undefined {
    const o = this.o;
    const x = new Exchange(o, raw, res);

    // Stage.
    const url = raw.url;
    const slash = url.indexOf('/', 1);
    const segment = slash < 0 ? url.slice(1) : url.slice(1, slash);
    const stageName = segment.includes('%') ? safeDecode(segment) : segment;
    const stage = stageName === undefined ? undefined : this.stageRuntimes.get(stageName);
    if (stage === undefined) {
      x.notFound();
      return;
    }
    const norm = normalisePath(slash < 0 ? '/' : url.slice(slash));
    if (!norm.ok) {
      x.fail('DEFAULT_4XX', 'Bad Request', NO_HEADERS, 400);
      return;
    }
    const method = raw.method === 'GET' ? 'GET' : raw.method.toUpperCase();

    // CORS preflight is answered by the gateway itself (HTTP-API semantics), before routing.
    if (o.cors && isPreflight(method, raw.headers)) {
      const h = o.cors.preflight(x.origin(), headerValue(raw.headers, 'access-control-request-method'), headerValue(raw.headers, 'access-control-request-headers'));
      res.send(204, h ?? NO_HEADERS, undefined, false, x.idHeaders());
      return;
    }

    const match = stage.routes.match(method, norm.path);
    if ('notFound' in match) {
      x.notFound();
      return;
    }
    const route = match.route;
    x.routeKey = match.routeKey;
    x.stats = this.statsFor(stage, match.routeKey);

    // Framing: names from the transport are lower-case.
    let contentLength = false;
    let transferEncoding = false;
    const headers = raw.headers;
    for (let i = 0; i < headers.length; i++) {
      const name = headers[i]![0];
      if (name === 'content-length') contentLength = true;
      else if (name === 'transfer-encoding') transferEncoding = true;
    }
    const noBodyMethod = NO_BODY_METHODS.has(method);
    const direct = !route.authorizer && !route.validator && !o.admission;

    // A MOCK route with nothing to check answers at once: no body read, no request object.
    const fixed = route.integration.fixed;
    if (fixed && direct && noBodyMethod && !contentLength) {
      x.finish(fixed.status, fixed.headers, fixed.body);
      return;
    }

    const hasBody = !noBodyMethod || contentLength || transferEncoding;
    if (direct && !hasBody) {
      const req = new RestRequest(raw, method, stage.name, norm.path, EMPTY, x.requestId, x.started);
      return x.integrate(route.integration, { req, match, stageVariables: stage.variables, authorizer: undefined, parsedBody: undefined });
    }
    return this.handleAsync(x, raw, res, method, stage, norm.path, match, hasBody);
  }

  /** The stages that may wait: body, throttling and API keys, authorizer, validation. */
  private async handleAsync(
    x: Exchange,
    raw: RawRequest,
    res: HttpResponder,
    method: string,
    stage: StageRuntime,
    path: string,
    match: RouteMatch<HttpRouteRuntime>,
    hasBody: boolean,
  ): Promise<void> {
    const o = this.o;
    const route = match.route;
    // Body: bounded while reading; 413 at once past the limit, never buffered beyond it.
    let body: Buffer = EMPTY;
    if (hasBody) {
      const b = await res.readBody(o.limits.maxHttpBodyBytes);
      if (b === 'aborted') return;
      if (b === 'too_large') {
        res.closeAfterAnswer(); // the rest of the body is never read
        x.fail('REQUEST_TOO_LARGE', 'Request Too Long');
        return;
      }
      body = b;
    }
    const req = new RestRequest(raw, method, stage.name, path, body, x.requestId, x.started);

    // Throttling, API keys and quotas (before the authorizer when keys come in a header).
    const afterAuth = o.apiKeySource === 'AUTHORIZER';
    if (!afterAuth && !this.admit(x, raw, stage, match, undefined)) return;

    // Authorize.
    let authorizer: Record<string, unknown> | undefined;
    let usageIdentifierKey: string | undefined;
    if (route.authorizer) {
      const d = await this.authorize(route, req, match, stage.variables);
      if (res.aborted) return;
      if (!d.ok) {
        const type: GatewayResponseType = d.status === 401 ? 'UNAUTHORIZED' : d.status === 403 ? 'ACCESS_DENIED' : 'AUTHORIZER_CONFIGURATION_ERROR';
        const extra = Object.entries(d.headers).filter(([k]) => k.toLowerCase() === 'www-authenticate');
        x.fail(type, messageOf(d.body), extra, d.status);
        return;
      }
      authorizer = d.authorizer;
      usageIdentifierKey = d.usageIdentifierKey;
    }

    if (afterAuth && !this.admit(x, raw, stage, match, usageIdentifierKey)) return;

    // Validate.
    let parsedBody: unknown;
    if (route.validator) {
      const v = route.validator({
        body,
        contentType: headerValue(raw.headers, 'content-type'),
        query: singleValueMap(parseQueryString(raw.query)),
        headers: raw.headers,
        pathParameters: match.pathParameters,
      });
      if (!v.ok) {
        o.log.info({ requestId: x.requestId, route: match.routeKey, validation: v.detail }, 'request validation failed');
        x.fail(v.type, v.message);
        return;
      }
      parsedBody = v.parsedBody;
    }

    // Integrate.
    await x.integrate(route.integration, { req, match, stageVariables: stage.variables, authorizer, parsedBody });
  }

  /** Throttling, API keys and quotas; false when the request was answered (429/403). */
  private admit(x: Exchange, raw: RawRequest, stage: StageRuntime, match: RouteMatch<HttpRouteRuntime>, usageIdentifierKey: string | undefined): boolean {
    const admission = this.o.admission;
    if (!admission) return true;
    const a = admission({
      stage: stage.name,
      routeKey: match.routeKey,
      headers: raw.headers,
      sourceIp: raw.remoteAddress,
      apiKeyRequired: match.route.apiKeyRequired,
      usageIdentifierKey,
    });
    if (a.ok) return true;
    x.stats!.Throttled++;
    x.fail(a.type, null, a.retryAfterSeconds !== undefined ? [['Retry-After', String(a.retryAfterSeconds)]] : NO_HEADERS);
    return false;
  }

  private authorize(route: HttpRouteRuntime, req: GatewayHttpRequest, match: { routeKey: string; resource: string; pathParameters: Record<string, string> | null }, variables: Readonly<Record<string, string>> | undefined): Promise<AuthDecision> {
    const o = this.o;
    const requestContext = {
      accountId: o.accountId,
      apiId: o.apiId,
      httpMethod: req.method,
      path: `/${req.stage}${req.path}`,
      resourcePath: match.resource,
      requestId: req.requestId,
      requestTime: clfTime(req.requestTimeEpoch),
      requestTimeEpoch: req.requestTimeEpoch,
      stage: req.stage,
      routeKey: match.routeKey,
      identity: { sourceIp: req.sourceIp, userAgent: headerValue(req.headers, 'user-agent') ?? null },
      domainName: req.domainName,
    };
    return route.authorizer!.authorize(
      {
        headers: req.headers.map(([k, v]) => [k.toLowerCase(), v]),
        query: singleValueMap(parseQueryString(req.rawQueryString)) ?? undefined,
        stageVariables: variables,
        context: requestContext,
        methodArn: `${o.arnBase}/${req.stage}/${req.method}${req.path}`.replace(/\/$/, '/'),
        eventBase: () => {
          const e = buildEventV1(req, match, { accountId: o.accountId, apiId: o.apiId, stageVariables: variables });
          return {
            resource: e.resource,
            path: e.path,
            httpMethod: e.httpMethod,
            headers: e.headers,
            multiValueHeaders: e.multiValueHeaders,
            queryStringParameters: e.queryStringParameters,
            multiValueQueryStringParameters: e.multiValueQueryStringParameters,
            pathParameters: e.pathParameters,
            stageVariables: e.stageVariables,
            requestContext: e.requestContext,
          };
        },
      },
      route.authorizationScopes,
    );
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * One request from routing to its answer: the state the stages share, the answer (`finish`,
 * `fail`), and the integration's callback (`complete`). One object per request, methods on the
 * prototype.
 */
class Exchange implements OutcomeSink {
  readonly started = Date.now();
  readonly requestId: string;
  /** the matched route key, '-' until a route matched (access log) */
  routeKey = '-';
  stats: RouteStats | undefined = undefined;
  private integrationType = '';
  private integrationStarted = 0;

  constructor(
    private readonly o: RestGatewayOptions,
    private readonly raw: RawRequest,
    private readonly res: HttpResponder,
  ) {
    this.requestId = o.mode === 'REST' ? uuid() : nextId();
  }

  origin(): string | undefined {
    return headerValue(this.raw.headers, 'origin');
  }

  /** `x-amzn-RequestId` (and `apigw-requestid` in HTTP mode), as a flat name/value list. */
  idHeaders(): string[] {
    const id = this.requestId;
    return this.o.mode === 'HTTP' ? ['x-amzn-RequestId', id, 'apigw-requestid', id] : ['x-amzn-RequestId', id];
  }

  finish(status: number, headers: ReadonlyArray<readonly [string, string]>, body: Buffer | string | undefined): void {
    const o = this.o;
    const stats = this.stats;
    if (stats) {
      stats.Count++;
      if (status >= 500) stats['5XXError']++;
      else if (status >= 400) stats['4XXError']++;
      stats.Latency.observe(Date.now() - this.started);
    }
    const extra = this.idHeaders();
    if (o.cors) for (const [k, v] of o.cors.responseHeaders(this.origin())) extra.push(k, v);
    const raw = this.raw;
    const accessLog = o.accessLog;
    // The remote address is read from the transport's response, so before the answer ends it.
    const ip = accessLog ? raw.remoteAddress : '';
    this.res.send(status, headers, body, raw.method === 'HEAD', extra);
    if (accessLog) {
      const started = this.started;
      accessLog({
        requestId: this.requestId,
        ip,
        requestTime: clfTime(started),
        httpMethod: raw.method,
        path: raw.url,
        routeKey: this.routeKey,
        status,
        protocol: 'HTTP/1.1',
        responseLength: body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.length,
        responseLatency: Date.now() - started,
      });
    }
  }

  fail(type: GatewayResponseType, message: string | null, extra: ReadonlyArray<readonly [string, string]> = NO_HEADERS, status?: number, body?: string): void {
    const r = this.o.responses.render(type, { message, requestId: this.requestId });
    this.finish(status ?? r.status, extra.length === 0 ? r.headers : r.headers.concat(extra as Array<[string, string]>), body ?? r.body);
  }

  notFound(): void {
    if (this.o.mode === 'REST') this.fail('MISSING_AUTHENTICATION_TOKEN', 'Missing Authentication Token');
    else this.fail('RESOURCE_NOT_FOUND', 'Not Found', NO_HEADERS, 404);
  }

  /** Runs the integration; its outcome arrives in `complete`. A promise only for promise-based integrations. */
  integrate(integration: HttpIntegration, call: HttpCall): Promise<void> | undefined {
    this.integrationType = integration.type;
    this.integrationStarted = Date.now();
    let pending: Promise<HttpOutcome>;
    try {
      if (integration.start !== undefined) {
        integration.start(call, this);
        return;
      }
      pending = integration.invoke(call);
    } catch (err) {
      this.threw(err);
      return;
    }
    return pending.then(
      (outcome) => this.complete(outcome),
      (err: unknown) => this.threw(err),
    );
  }

  private threw(err: unknown): void {
    this.o.log.error({ err, requestId: this.requestId, route: this.routeKey }, 'integration threw');
    this.complete(INTEGRATION_THREW);
  }

  complete(outcome: HttpOutcome): void {
    // Called from promise callbacks and the deadline ticker too: nothing may escape from here.
    try {
      const stats = this.stats!;
      if (this.integrationType !== 'MOCK') stats.IntegrationLatency.observe(Date.now() - this.integrationStarted);
      if (this.res.aborted) return;
      if (outcome.kind === 'error') {
        stats.IntegrationError++;
        this.fail(outcome.type, outcome.message, NO_HEADERS, outcome.status, outcome.body);
        return;
      }
      // HTTP-API CORS: the gateway's CORS headers replace whatever the backend sent.
      const headers = this.o.cors ? stripCorsHeaders(outcome.headers) : outcome.headers;
      this.finish(outcome.status, headers, outcome.body);
    } catch (err) {
      this.o.log.error({ err, url: this.raw.url }, 'unhandled error in HTTP handler');
      this.res.send(500, INTERNAL_ERROR_HEADERS, '{"message":"Internal server error"}');
    }
  }
}

const INTEGRATION_THREW: HttpOutcome = Object.freeze({ kind: 'error', type: 'DEFAULT_5XX', status: 500, message: 'Internal server error' });
const INTERNAL_ERROR_HEADERS: ReadonlyArray<readonly [string, string]> = Object.freeze([Object.freeze(['Content-Type', 'application/json'] as const)]);

let lastHost = '';
let lastDomain = '';

/**
 * The request as the integrations see it. Derived fields are computed on first use: the
 * canonical-case headers (payload 2.0 uses the transport's lower-case ones as they are), the
 * domain name, and the source IP.
 */
class RestRequest implements GatewayHttpRequest {
  readonly rawPath: string;
  readonly rawQueryString: string;
  private canonical: Array<[string, string]> | undefined = undefined;
  constructor(
    private readonly raw: RawRequest,
    readonly method: string,
    readonly stage: string,
    readonly path: string,
    readonly body: Buffer,
    readonly requestId: string,
    readonly requestTimeEpoch: number,
  ) {
    this.rawPath = raw.url;
    this.rawQueryString = raw.query;
  }
  get lowerHeaders(): ReadonlyArray<readonly [string, string]> {
    return this.raw.headers;
  }
  get headers(): Array<[string, string]> {
    if (this.canonical === undefined) {
      const lower = this.raw.headers;
      const out: Array<[string, string]> = new Array(lower.length);
      for (let i = 0; i < lower.length; i++) out[i] = [canonicalHeaderName(lower[i]![0]), lower[i]![1]];
      this.canonical = out;
    }
    return this.canonical;
  }
  get sourceIp(): string {
    return this.raw.remoteAddress;
  }
  get domainName(): string {
    const host = lowerHeaderValue(this.raw.headers, 'host') ?? 'localhost';
    if (host !== lastHost) {
      lastDomain = host.replace(/:\d+$/, '');
      lastHost = host;
    }
    return lastDomain;
  }
}

function safeDecode(s: string): string | undefined {
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

function messageOf(body: string): string | null {
  try {
    const m = (JSON.parse(body) as { message?: unknown }).message;
    return typeof m === 'string' ? m : null;
  } catch {
    return null;
  }
}
