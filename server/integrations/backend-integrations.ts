import type { Cluster, Redis } from 'ioredis';
import type { IntegrationDef } from '../api/types.ts';
import { headerValue, parseQueryString, singleValueMap } from '../http/request.ts';
import type { HttpIntegration, HttpOutcome } from '../http/http-integrations.ts';
import { clfTime } from '../time.ts';
import { IntegrationTimeoutError } from './deadlines.ts';
import { type BackendResult, type HttpBackend, proxyRequestHeaders, proxyResponseHeaders, substituteUri } from './http-backend.ts';
import type { CompiledIntegration, IntegrationResponse, Invocation } from './integration.ts';
import { RedisStreamSink, streamAck } from './redis-stream.ts';
import { compileTemplate, render, type Template, VtlError } from './vtl.ts';

export interface HttpProxyDef {
  type: 'HTTP_PROXY';
  uri: string;
  method?: string;
  timeoutInMillis?: number;
}
export interface HttpDef {
  type: 'HTTP';
  uri: string;
  method?: string;
  timeoutInMillis?: number;
  requestTemplates?: Record<string, string>;
  responseTemplates?: Record<string, string>;
  passthroughBehavior?: 'WHEN_NO_MATCH' | 'WHEN_NO_TEMPLATES' | 'NEVER';
  templateSelectionExpression?: string;
}
export interface RedisStreamDef {
  type: 'REDIS_STREAM';
  stream: string;
  maxLen?: number;
  timeoutInMillis?: number;
}

export interface BackendDeps {
  backend: HttpBackend;
  /** Redis for REDIS_STREAM integrations (undefined when none is configured). */
  redis: Redis | Cluster | undefined;
  maxResponseBytes: number;
  port: () => number;
}

/** The message of a WebSocket invocation, as the HTTP-family integrations need it. */
export interface WsBackendInvocation extends Invocation {
  readonly wsInfo: () => { connectionId: string; routeKey: string; eventType: string; stage: string; body: string; stageVariables: Readonly<Record<string, string>> | undefined; sourceIp: string; context: Record<string, unknown> };
}

const JSON_CT = 'application/json';

function compileTemplates(map: Record<string, string> | undefined): Map<string, Template> {
  const out = new Map<string, Template>();
  for (const [k, v] of Object.entries(map ?? {})) out.set(k.toLowerCase(), compileTemplate(v));
  return out;
}

function mediaType(ct: string | undefined): string {
  return (ct ?? JSON_CT).split(';')[0]!.trim().toLowerCase() || JSON_CT;
}

function failure(r: Extract<BackendResult, { ok: false }>): HttpOutcome {
  if (r.kind === 'timeout') return { kind: 'error', type: 'INTEGRATION_TIMEOUT', message: 'Endpoint request timed out' };
  return { kind: 'error', type: 'INTEGRATION_FAILURE', status: 502, message: 'Bad Gateway' };
}

// ---- REST ------------------------------------------------------------------------------------

export function restFactories(deps: BackendDeps): Map<string, (def: IntegrationDef, timeoutMs: number) => HttpIntegration> {
  const m = new Map<string, (def: IntegrationDef, timeoutMs: number) => HttpIntegration>();
  m.set('HTTP_PROXY', (raw, timeoutMs) => {
    const def = raw as unknown as HttpProxyDef;
    return {
      type: 'HTTP_PROXY',
      async invoke(call) {
        const url = substituteUri(def.uri, { pathParameters: call.match.pathParameters, stageVariables: call.stageVariables, query: call.req.rawQueryString });
        if (!url.ok) return { kind: 'error', type: 'API_CONFIGURATION_ERROR', message: 'Internal server error' };
        const r = await deps.backend.request({
          method: def.method ?? call.req.method,
          url: url.url,
          headers: proxyRequestHeaders(call.req.headers, { sourceIp: call.req.sourceIp, proto: 'http', host: call.req.domainName, port: String(deps.port()) }),
          body: call.req.body.length ? call.req.body : undefined,
          timeoutMs,
          maxResponseBytes: deps.maxResponseBytes,
        });
        if (!r.ok) return failure(r);
        return { kind: 'response', status: r.status, headers: proxyResponseHeaders(r.headers), body: r.body };
      },
    };
  });
  m.set('HTTP', (raw, timeoutMs) => {
    const def = raw as unknown as HttpDef;
    const requestTemplates = compileTemplates(def.requestTemplates);
    const responseTemplates = compileTemplates(def.responseTemplates);
    const passthrough = def.passthroughBehavior ?? 'WHEN_NO_MATCH';
    return {
      type: 'HTTP',
      async invoke(call) {
        const req = call.req;
        const ct = mediaType(headerValue(req.headers, 'content-type'));
        const query = singleValueMap(parseQueryString(req.rawQueryString)) ?? {};
        const header: Record<string, string> = {};
        for (const [k, v] of req.headers) header[k] = v;
        const context: Record<string, unknown> = {
          requestId: req.requestId,
          stage: req.stage,
          httpMethod: req.method,
          resourcePath: call.match.resource,
          path: `/${req.stage}${req.path}`,
          domainName: req.domainName,
          requestTime: clfTime(req.requestTimeEpoch),
          requestTimeEpoch: req.requestTimeEpoch,
          identity: { sourceIp: req.sourceIp, userAgent: headerValue(req.headers, 'user-agent') ?? '' },
          authorizer: call.authorizer ?? {},
        };
        const vtl = { params: { path: call.match.pathParameters ?? {}, querystring: query, header }, context, stageVariables: call.stageVariables ?? {} };
        let body: Buffer | undefined = req.body;
        let outCt = ct;
        const tpl = requestTemplates.get(ct);
        if (tpl) {
          try {
            body = Buffer.from(render(tpl, { ...vtl, body: req.body.toString('utf8') }));
          } catch (err) {
            if (err instanceof VtlError && err.code === 'GW_ERR_VTL_BODY_NOT_JSON') {
              return { kind: 'error', type: 'BAD_REQUEST_BODY', status: 400, message: 'Could not parse request body into json' };
            }
            return { kind: 'error', type: 'API_CONFIGURATION_ERROR', message: 'Internal server error' };
          }
          outCt = ct;
        } else if (passthrough === 'NEVER' || (passthrough === 'WHEN_NO_TEMPLATES' && requestTemplates.size > 0)) {
          return { kind: 'error', type: 'UNSUPPORTED_MEDIA_TYPE', message: 'Unsupported Media Type' };
        }
        const url = substituteUri(def.uri, { pathParameters: call.match.pathParameters, stageVariables: call.stageVariables });
        if (!url.ok) return { kind: 'error', type: 'API_CONFIGURATION_ERROR', message: 'Internal server error' };
        const r = await deps.backend.request({
          method: def.method ?? req.method,
          url: url.url,
          headers: [['content-type', outCt], ['accept', JSON_CT]],
          body: body?.length ? body : undefined,
          timeoutMs,
          maxResponseBytes: deps.maxResponseBytes,
        });
        if (!r.ok) return failure(r);
        const rct = mediaType(headerValue(r.headers, 'content-type'));
        const rt = responseTemplates.get(rct) ?? responseTemplates.get(JSON_CT);
        if (!rt) return { kind: 'response', status: r.status, headers: [['Content-Type', headerValue(r.headers, 'content-type') ?? JSON_CT]], body: r.body };
        try {
          const out = render(rt, { ...vtl, body: r.body.toString('utf8'), context: { ...context, integration: { status: r.status } } });
          return { kind: 'response', status: r.status, headers: [['Content-Type', JSON_CT]], body: Buffer.from(out) };
        } catch {
          return { kind: 'error', type: 'API_CONFIGURATION_ERROR', message: 'Internal server error' };
        }
      },
    };
  });
  m.set('REDIS_STREAM', (raw, timeoutMs) => {
    const def = raw as unknown as RedisStreamDef;
    if (!deps.redis) throw new Error('REDIS_STREAM integrations need Redis: start the gateway with --redis URL (or REDIS_URL)');
    // connectWaitMs: requests that arrive while the client still makes its first connection wait for it.
    const sink = new RedisStreamSink({ redis: deps.redis, stream: def.stream, connectWaitMs: timeoutMs, ...(def.maxLen ? { maxLen: def.maxLen } : {}) });
    return {
      type: 'REDIS_STREAM',
      async invoke(call) {
        const req = call.req;
        const fields: Record<string, string | Buffer> = {
          // As bytes: a binary body must reach the stream as sent (and match the ack's MD5).
          body: req.body,
          requestId: req.requestId,
          method: req.method,
          path: req.path,
          stage: req.stage,
          sourceIp: req.sourceIp,
          contentType: headerValue(req.headers, 'content-type') ?? '',
          receivedAt: String(req.requestTimeEpoch),
        };
        if (call.authorizer) fields.authorizer = JSON.stringify(call.authorizer);
        try {
          const id = await sink.append(fields);
          const ack = streamAck(id, req.requestId, req.body);
          return { kind: 'response', status: ack.statusCode, headers: [['Content-Type', ack.contentType]], body: Buffer.from(ack.body) };
        } catch {
          return { kind: 'error', type: 'INTEGRATION_FAILURE', status: 502, message: 'Internal server error' };
        }
      },
    };
  });
  return m;
}

// ---- WebSocket ---------------------------------------------------------------------------------

/**
 * WebSocket routes with HTTP/HTTP_PROXY post the message to the backend with the connection id,
 * route key and request id in headers; the backend's reply is the route response. So a backend
 * speaks to WebSocket clients over plain HTTP (and pushes later through @connections).
 */
export function wsFactories(deps: BackendDeps): Map<string, (def: IntegrationDef, timeoutMs: number) => CompiledIntegration> {
  const m = new Map<string, (def: IntegrationDef, timeoutMs: number) => CompiledIntegration>();
  const http = (raw: IntegrationDef, timeoutMs: number): CompiledIntegration => {
    const def = raw as unknown as HttpDef;
    const templates = compileTemplates(def.requestTemplates);
    const selection = def.templateSelectionExpression;
    return {
      type: def.type,
      timeoutMs,
      async invoke(inv): Promise<IntegrationResponse> {
        const w = (inv as WsBackendInvocation).wsInfo();
        const url = substituteUri(def.uri, { pathParameters: null, stageVariables: w.stageVariables });
        if (!url.ok) throw new Error(`integration URI: ${url.message}`);
        let body = w.body;
        if (templates.size > 0) {
          let key = '$default';
          if (selection) {
            try {
              const parsed = JSON.parse(w.body) as Record<string, unknown>;
              const m2 = /^\$\{?request\.body\.([A-Za-z0-9_.]+)\}?$/.exec(selection);
              key = m2 ? String(m2[1]!.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), parsed) ?? '$default') : selection.replace(/^\\/, '');
            } catch {
              key = '$default';
            }
          }
          const tpl = templates.get(key.toLowerCase()) ?? templates.get('$default');
          if (tpl) body = render(tpl, { body: w.body, params: { path: {}, querystring: {}, header: {} }, context: w.context, stageVariables: w.stageVariables ?? {} });
        }
        const r = await deps.backend.request({
          method: def.method ?? 'POST',
          url: url.url,
          headers: [
            ['content-type', body.startsWith('{') || body.startsWith('[') ? JSON_CT : 'text/plain; charset=utf-8'],
            ['x-gatehouse-connection-id', w.connectionId],
            ['x-gatehouse-route-key', w.routeKey],
            ['x-gatehouse-request-id', inv.requestId],
            ['x-gatehouse-event-type', w.eventType],
            ['x-gatehouse-stage', w.stage],
            ['x-forwarded-for', w.sourceIp],
          ],
          body: Buffer.from(body),
          timeoutMs,
          maxResponseBytes: deps.maxResponseBytes,
        });
        if (!r.ok) {
          if (r.kind === 'timeout') throw new IntegrationTimeoutError(timeoutMs);
          throw new Error(`backend ${r.kind}: ${r.message}`);
        }
        const headers: Record<string, string> = {};
        for (const [k, v] of proxyResponseHeaders(r.headers)) headers[k] = v;
        return { statusCode: r.status, headers, body: r.body.length ? r.body.toString('utf8') : undefined };
      },
    };
  };
  m.set('HTTP_PROXY', http);
  m.set('HTTP', http);
  m.set('REDIS_STREAM', (raw, timeoutMs) => {
    const def = raw as unknown as RedisStreamDef;
    if (!deps.redis) throw new Error('REDIS_STREAM integrations need Redis: start the gateway with --redis URL (or REDIS_URL)');
    // connectWaitMs: requests that arrive while the client still makes its first connection wait for it.
    const sink = new RedisStreamSink({ redis: deps.redis, stream: def.stream, connectWaitMs: timeoutMs, ...(def.maxLen ? { maxLen: def.maxLen } : {}) });
    return {
      type: 'REDIS_STREAM',
      timeoutMs,
      async invoke(inv): Promise<IntegrationResponse> {
        const w = (inv as WsBackendInvocation).wsInfo();
        const id = await sink.append({
          body: w.body,
          connectionId: w.connectionId,
          routeKey: w.routeKey,
          eventType: w.eventType,
          requestId: inv.requestId,
          stage: w.stage,
          sourceIp: w.sourceIp,
        });
        const ack = streamAck(id, inv.requestId, w.body);
        return { statusCode: ack.statusCode, body: ack.body };
      },
    };
  });
  return m;
}
