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
import type { HttpCall, HttpIntegration, HttpOutcome } from './http-integrations.ts';
import { buildEventV1 } from './proxy-events.ts';
import { type GatewayHttpRequest, headerValue, normalisePath, parseQueryString, singleValueMap } from './request.ts';
import type { RouteTable } from './route-table.ts';
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

/**
 * REST routes through the shared pipeline. The stages, in order (each may answer and stop):
 *   stage lookup → path normalisation (400 on traversal) → CORS preflight → route match
 *   (403 Missing Authentication Token / 404 Not Found) → bounded body read (413) →
 *   authorize (401/403/500) → throttle & API keys (429/403) → validate (400) →
 *   integrate → response (CORS headers, request id).
 */
export class RestGateway {
  private readonly stats = new Map<string, RouteStats>();
  constructor(private readonly o: RestGatewayOptions) {}

  private statsFor(stage: string, routeKey: string): RouteStats {
    const key = `${stage} ${routeKey}`;
    let s = this.stats.get(key);
    if (!s) {
      s = this.o.metrics.routeStats(this.o.apiId, stage, routeKey);
      this.stats.set(key, s);
    }
    return s;
  }

  async handle(raw: RawRequest, res: HttpResponder): Promise<void> {
    const o = this.o;
    const started = Date.now();
    const requestId = o.mode === 'REST' ? uuid() : nextId();
    const idHeaders: Array<[string, string]> = [['x-amzn-RequestId', requestId]];
    if (o.mode === 'HTTP') idHeaders.push(['apigw-requestid', requestId]);
    const origin = headerValue(raw.headers, 'origin');
    const corsHeaders = o.cors ? o.cors.responseHeaders(origin) : [];
    let stats: RouteStats | undefined;

    const finish = (status: number, headers: Array<[string, string]>, body: Buffer | string | undefined) => {
      if (stats) {
        stats.Count++;
        if (status >= 500) stats['5XXError']++;
        else if (status >= 400) stats['4XXError']++;
        stats.Latency.observe(Date.now() - started);
      }
      const all = headers.concat(idHeaders, corsHeaders);
      res.send(status, all, body, raw.method === 'HEAD');
      if (o.accessLog) {
        o.accessLog({
          requestId,
          ip: raw.remoteAddress,
          requestTime: clfTime(started),
          httpMethod: raw.method,
          path: raw.url,
          routeKey: routeKeyForLog,
          status,
          protocol: 'HTTP/1.1',
          responseLength: body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.length,
          responseLatency: Date.now() - started,
        });
      }
    };
    let routeKeyForLog = '-';
    const fail = (type: GatewayResponseType, message: string | null, extra: Array<[string, string]> = [], status?: number, body?: string) => {
      const r = o.responses.render(type, { message, requestId });
      finish(status ?? r.status, r.headers.concat(extra), body ?? r.body);
    };

    // Stage.
    const slash = raw.url.indexOf('/', 1);
    const stageName = safeDecode(raw.url.slice(1, slash < 0 ? undefined : slash));
    const stage = stageName === undefined ? undefined : o.stages.get(stageName);
    const notFound = () => (o.mode === 'REST' ? fail('MISSING_AUTHENTICATION_TOKEN', 'Missing Authentication Token') : fail('RESOURCE_NOT_FOUND', 'Not Found', [], 404));
    if (!stage || stageName === undefined) {
      notFound();
      return;
    }
    const norm = normalisePath(slash < 0 ? '/' : raw.url.slice(slash));
    if (!norm.ok) {
      fail('DEFAULT_4XX', 'Bad Request', [], 400);
      return;
    }
    const method = raw.method.toUpperCase();

    // CORS preflight is answered by the gateway itself (HTTP-API semantics), before routing.
    if (o.cors && isPreflight(method, raw.headers)) {
      const h = o.cors.preflight(origin, headerValue(raw.headers, 'access-control-request-method'), headerValue(raw.headers, 'access-control-request-headers'));
      res.send(204, (h ?? []).concat(idHeaders));
      return;
    }

    const match = stage.routes.match(method, norm.path);
    if ('notFound' in match) {
      notFound();
      return;
    }
    const route = match.route;
    routeKeyForLog = match.routeKey;
    stats = this.statsFor(stageName, match.routeKey);

    // A MOCK route with nothing to check answers at once: no body read, no request object.
    const fixed = route.integration.fixed;
    if (fixed && !route.authorizer && !route.validator && !o.admission && NO_BODY_METHODS.has(method) && headerValue(raw.headers, 'content-length') === undefined) {
      finish(fixed.status, fixed.headers, fixed.body);
      return;
    }

    // Body: bounded while reading; 413 at once past the limit, never buffered beyond it.
    let body: Buffer = EMPTY;
    const hasBody = !NO_BODY_METHODS.has(method) || headerValue(raw.headers, 'content-length') !== undefined || headerValue(raw.headers, 'transfer-encoding') !== undefined;
    if (hasBody) {
      const b = await res.readBody(o.limits.maxHttpBodyBytes);
      if (b === 'aborted') return;
      if (b === 'too_large') {
        fail('REQUEST_TOO_LARGE', 'Request Too Long');
        res.destroy();
        return;
      }
      body = b;
    }
    const hostHeader = headerValue(raw.headers, 'host') ?? 'localhost';
    const req: GatewayHttpRequest = {
      method,
      stage: stageName,
      path: norm.path,
      rawPath: raw.url,
      rawQueryString: raw.query,
      headers: raw.headers.map(([k, v]) => [canonicalHeaderName(k), v]),
      sourceIp: raw.remoteAddress,
      body,
      requestId,
      requestTimeEpoch: started,
      domainName: hostHeader.replace(/:\d+$/, ''),
    };

    // Throttling, API keys and quotas (before the authorizer when keys come in a header).
    const admit = (usageIdentifierKey: string | undefined): boolean => {
      if (!o.admission) return true;
      const a = o.admission({ stage: stageName, routeKey: match.routeKey, headers: raw.headers, sourceIp: raw.remoteAddress, apiKeyRequired: route.apiKeyRequired, usageIdentifierKey });
      if (a.ok) return true;
      stats!.Throttled++;
      fail(a.type, null, a.retryAfterSeconds !== undefined ? [['Retry-After', String(a.retryAfterSeconds)]] : []);
      return false;
    };
    const afterAuth = o.apiKeySource === 'AUTHORIZER';
    if (!afterAuth && !admit(undefined)) return;

    // Authorize.
    let authorizer: Record<string, unknown> | undefined;
    let usageIdentifierKey: string | undefined;
    if (route.authorizer) {
      const d = await this.authorize(route, req, match, stage.variables);
      if (res.aborted) return;
      if (!d.ok) {
        const type: GatewayResponseType = d.status === 401 ? 'UNAUTHORIZED' : d.status === 403 ? 'ACCESS_DENIED' : 'AUTHORIZER_CONFIGURATION_ERROR';
        const extra = Object.entries(d.headers).filter(([k]) => k.toLowerCase() === 'www-authenticate');
        fail(type, messageOf(d.body), extra, d.status);
        return;
      }
      authorizer = d.authorizer;
      usageIdentifierKey = d.usageIdentifierKey;
    }

    if (afterAuth && !admit(usageIdentifierKey)) return;

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
        o.log.info({ requestId, route: match.routeKey, validation: v.detail }, 'request validation failed');
        fail(v.type, v.message);
        return;
      }
      parsedBody = v.parsedBody;
    }

    // Integrate.
    const call: HttpCall = { req, match, stageVariables: stage.variables, authorizer, parsedBody };
    const integrationStarted = Date.now();
    let outcome: HttpOutcome;
    try {
      outcome = await route.integration.invoke(call);
    } catch (err) {
      o.log.error({ err, requestId, route: match.routeKey }, 'integration threw');
      outcome = { kind: 'error', type: 'DEFAULT_5XX', status: 500, message: 'Internal server error' };
    }
    if (route.integration.type !== 'MOCK') stats.IntegrationLatency.observe(Date.now() - integrationStarted);
    if (res.aborted) return;
    if (outcome.kind === 'error') {
      stats.IntegrationError++;
      fail(outcome.type, outcome.message, [], outcome.status, outcome.body);
      return;
    }
    // HTTP-API CORS: the gateway's CORS headers replace whatever the backend sent.
    const headers = o.cors ? stripCorsHeaders(outcome.headers) : outcome.headers;
    finish(outcome.status, headers, outcome.body);
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
