import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort, startBackend, type TestBackend } from '../fixtures/rest-api/backend.ts';
import { rawHeaderValues, rawRequest } from '../fixtures/rest-api/raw-http.ts';
import { type StartedGateway, startGateway } from '../helpers/gateway.ts';

/*
 * The `http` section's CORS policy and customised gateway responses (REST mode), and HTTP mode's
 * own answers (404 Not Found, apigw-requestid, payload 2.0 by default). Real gateway, real
 * node:http backend, real requests.
 */

const APP = 'https://app.example';

function corsApi(b: TestBackend, refused: number): string {
  return `
name: corsapi
stages:
  prod: {}
limits:
  integrationTimeoutMillis: 2000
  maxHttpBodyBytes: 1024
authorizers:
  tok: { type: TOKEN, handler: handlers/authorizer.token, identitySource: method.request.header.Authorization, resultTtlInSeconds: 0 }
http:
  mode: REST
  cors:
    allowOrigins: [${APP}, https://admin.example]
    allowMethods: [GET, POST, PUT, DELETE]
    allowHeaders: [Content-Type, X-Api-Key]
    exposeHeaders: [X-Request-Id, X-Total]
    maxAge: 600
    allowCredentials: true
  gatewayResponses:
    DEFAULT_4XX:
      headers: { X-Error-Type: "$context.error.responseType", X-Request: "$context.requestId" }
      body: '{"error":$context.error.messageString,"type":"$context.error.responseType","requestId":"$context.requestId"}'
    MISSING_AUTHENTICATION_TOKEN:
      statusCode: 404
      body: '{"notFound":$context.error.messageString}'
    DEFAULT_5XX:
      headers: { X-Server-Error: "yes" }
    INTEGRATION_TIMEOUT:
      statusCode: 503
      headers: { Retry-After: "1" }
  routes:
    "GET /api/{proxy+}": { integration: { type: HTTP_PROXY, uri: "${b.origin}/cors/{proxy}" } }
    "POST /orders":
      integration: { type: MOCK, response: { statusCode: 201, body: '{"ok":true}' } }
      requestModel: models/order.json
      requestParameters: [method.request.querystring.store]
      requestValidator: ALL
    "POST /strict":
      integration: { type: HTTP, uri: "${b.origin}/strict", passthroughBehavior: NEVER, requestTemplates: { application/json: '{}' } }
    "GET /slow": { integration: { type: HTTP_PROXY, uri: "${b.origin}/hang", timeoutInMillis: 200 } }
    "GET /refused": { integration: { type: HTTP_PROXY, uri: "http://127.0.0.1:${refused}/x" } }
    "GET /secure": { integration: { type: MOCK }, authorizer: tok }
`;
}

const HTTP_API = `
name: httpmode
stages:
  prod: {}
http:
  mode: HTTP
  routes:
    "GET /echo": { integration: { type: LAMBDA, handler: handlers/rest.echoEvent } }
    "POST /echo1": { integration: { type: LAMBDA, handler: handlers/rest.echoEvent, payloadFormatVersion: "1.0" } }
    "GET /throws": { integration: { type: LAMBDA, handler: handlers/rest.throws } }
`;

let b: TestBackend;
let g: StartedGateway;
let h: StartedGateway;

beforeAll(async () => {
  b = await startBackend();
  const refused = await closedPort();
  b.route('/cors/', (_req, res) => {
    res.writeHead(200, {
      'content-type': 'application/json',
      'access-control-allow-origin': '*',
      'access-control-allow-methods': 'PATCH',
      'access-control-allow-headers': 'x-from-backend',
      'access-control-expose-headers': 'x-backend-only',
      'access-control-max-age': '1',
      'x-total': '3',
    });
    res.end('{"from":"backend"}');
  });
  b.route('/hang', () => {
    // never answers
  });
  [g, h] = await Promise.all([startGateway(corsApi(b, refused), {}, 'rest-api'), startGateway(HTTP_API, {}, 'rest-api')]);
});

afterAll(async () => {
  await Promise.all([g?.stop(), h?.stop()]);
  await b?.stop();
});

/** access-control-* headers of a response, lower-cased names. */
function corsOf(r: Response): Record<string, string> {
  const out: Record<string, string> = {};
  r.headers.forEach((v, k) => {
    if (k.startsWith('access-control-')) out[k] = v;
  });
  return out;
}

const preflight = (p: string, origin: string, method: string, headers?: string) =>
  fetch(g.httpUrl(p), {
    method: 'OPTIONS',
    headers: { Origin: origin, 'Access-Control-Request-Method': method, ...(headers ? { 'Access-Control-Request-Headers': headers } : {}) },
  });

describe('CORS (http.cors)', () => {
  it('answers a preflight itself (204 + allow headers), even where no OPTIONS route exists', async () => {
    const before = b.requests.length;
    // '/prod/secure' has an authorizer: the preflight is answered before it, unauthenticated.
    for (const p of ['/prod/api/things/1', '/prod/orders', '/prod/secure']) {
      const r = await preflight(p, APP, 'PUT', 'content-type, x-api-key');
      expect(r.status, p).toBe(204);
      expect(corsOf(r)).toEqual({
        'access-control-allow-origin': APP,
        'access-control-allow-credentials': 'true',
        'access-control-allow-methods': 'GET,POST,PUT,DELETE',
        'access-control-allow-headers': 'content-type,x-api-key',
        'access-control-max-age': '600',
      });
      expect(r.headers.get('vary')).toBe('Origin');
      expect(r.headers.get('x-amzn-requestid')).toMatch(/^[0-9a-f-]{36}$/);
      expect(await r.text()).toBe('');
    }
    // The HTTP_PROXY route matches OPTIONS too, yet the backend never saw the preflight.
    expect(b.requests.length).toBe(before);
  });

  it('refuses a preflight (204, no CORS headers) for a disallowed origin, method or header', async () => {
    for (const [origin, method, headers] of [
      ['https://evil.example', 'GET', undefined],
      [APP, 'PATCH', undefined],
      [APP, 'POST', 'x-not-allowed'],
    ] as const) {
      const r = await preflight('/prod/api/x', origin, method, headers);
      expect(r.status).toBe(204);
      expect(corsOf(r)).toEqual({});
    }
  });

  it('adds the CORS headers to an actual response for an allowed origin, replacing the backend ones', async () => {
    const r = await fetch(g.httpUrl('/prod/api/list'), { headers: { Origin: 'https://admin.example' } });
    expect(r.status).toBe(200);
    expect(corsOf(r)).toEqual({
      'access-control-allow-origin': 'https://admin.example',
      'access-control-allow-credentials': 'true',
      'access-control-expose-headers': 'X-Request-Id,X-Total',
    });
    expect(r.headers.get('x-total')).toBe('3');
    expect(await r.json()).toEqual({ from: 'backend' });
  });

  it('sends no CORS headers to a disallowed origin or without Origin (the backend ones are dropped too)', async () => {
    for (const headers of [{ Origin: 'https://evil.example' }, {}]) {
      const r = await fetch(g.httpUrl('/prod/api/list'), { headers });
      expect(r.status).toBe(200);
      expect(corsOf(r)).toEqual({});
    }
  });

  it('puts the CORS headers on gateway responses as well', async () => {
    const r = await fetch(g.httpUrl('/prod/nowhere'), { headers: { Origin: APP } });
    expect(r.status).toBe(404);
    expect(r.headers.get('access-control-allow-origin')).toBe(APP);
    const evil = await fetch(g.httpUrl('/prod/nowhere'), { headers: { Origin: 'https://evil.example' } });
    expect(corsOf(evil)).toEqual({});
  });
});

describe('customised gateway responses (http.gatewayResponses)', () => {
  it('MISSING_AUTHENTICATION_TOKEN with statusCode 404 and its own body, headers from DEFAULT_4XX', async () => {
    for (const [p, method] of [['/prod/nowhere', 'GET'], ['/prod/orders', 'GET'], ['/nostage/api/x', 'GET']] as const) {
      const r = await fetch(g.httpUrl(p), { method });
      expect(r.status, p).toBe(404);
      expect(await r.json()).toEqual({ notFound: 'Missing Authentication Token' });
      expect(r.headers.get('x-amzn-errortype')).toBe('MissingAuthenticationTokenException');
      expect(r.headers.get('x-error-type')).toBe('MISSING_AUTHENTICATION_TOKEN');
      expect(r.headers.get('x-request')).toBe(r.headers.get('x-amzn-requestid'));
    }
  });

  it('DEFAULT_4XX applies to validation errors, 415, 401 and a rejected path', async () => {
    const cases: Array<{ p: string; init?: RequestInit; status: number; type: string; error: string }> = [
      { p: '/prod/orders?store=s1', init: { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"item":"pen"}' }, status: 400, type: 'BAD_REQUEST_BODY', error: 'Invalid request body' },
      { p: '/prod/orders', init: { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"item":"pen","quantity":1}' }, status: 400, type: 'BAD_REQUEST_PARAMETERS', error: 'Missing required request parameters: [store]' },
      { p: '/prod/strict', init: { method: 'POST', headers: { 'Content-Type': 'text/csv' }, body: 'a,b' }, status: 415, type: 'UNSUPPORTED_MEDIA_TYPE', error: 'Unsupported Media Type' },
      { p: '/prod/secure', status: 401, type: 'UNAUTHORIZED', error: 'Unauthorized' },
    ];
    for (const c of cases) {
      const r = await fetch(g.httpUrl(c.p), c.init);
      expect(r.status, c.p).toBe(c.status);
      const requestId = r.headers.get('x-amzn-requestid');
      expect(await r.json()).toEqual({ error: c.error, type: c.type, requestId });
      expect(r.headers.get('x-error-type')).toBe(c.type);
      expect(r.headers.get('x-request')).toBe(requestId);
    }
    const traversal = await rawRequest(g.port, 'GET /prod/api/%2e%2e/x HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(traversal.status).toBe(400);
    const body = JSON.parse(traversal.body.toString()) as Record<string, unknown>;
    expect(body).toMatchObject({ type: 'DEFAULT_4XX', error: 'Bad Request' });
    expect(rawHeaderValues(traversal, 'x-error-type')).toEqual(['DEFAULT_4XX']);
    // A valid request still succeeds.
    const ok = await fetch(g.httpUrl('/prod/orders?store=s1'), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"item":"pen","quantity":1}' });
    expect(ok.status).toBe(201);
  });

  it('REQUEST_TOO_LARGE is never customised', async () => {
    const body = 'x'.repeat(4096);
    const r = await rawRequest(g.port, `POST /prod/orders?store=s1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body.toString())).toEqual({ message: 'Request Too Long' });
    expect(rawHeaderValues(r, 'x-error-type')).toEqual([]);
  });

  it('DEFAULT_5XX headers reach 5xx answers; a type customised directly wins on status', async () => {
    const timeout = await fetch(g.httpUrl('/prod/slow'));
    expect(timeout.status).toBe(503);
    expect(timeout.headers.get('retry-after')).toBe('1');
    expect(timeout.headers.get('x-server-error')).toBe('yes');
    expect(await timeout.json()).toEqual({ message: 'Endpoint request timed out' });
    const refused = await fetch(g.httpUrl('/prod/refused'));
    expect(refused.status).toBe(502);
    expect(refused.headers.get('x-server-error')).toBe('yes');
    expect(refused.headers.get('x-error-type')).toBeNull();
  });
});

describe('HTTP mode', () => {
  it('answers an unknown route, method or stage with 404 {"message":"Not Found"} and apigw-requestid', async () => {
    for (const [p, method] of [['/prod/nope', 'GET'], ['/prod/echo', 'DELETE'], ['/other/echo', 'GET']] as const) {
      const r = await fetch(h.httpUrl(p), { method });
      expect(r.status, `${method} ${p}`).toBe(404);
      expect(await r.text()).toBe('{"message":"Not Found"}');
      expect(r.headers.get('content-type')).toBe('application/json');
      const id = r.headers.get('apigw-requestid');
      expect(id).toBeTruthy();
      expect(r.headers.get('x-amzn-requestid')).toBe(id);
    }
  });

  it('invokes LAMBDA with payload 2.0 by default (1.0 when asked)', async () => {
    const r = await fetch(h.httpUrl('/prod/echo?a=1&a=2'), { headers: { Cookie: 'c=1' } });
    expect(r.status).toBe(200);
    const ev = (await r.json()) as { version: string; routeKey: string; rawQueryString: string; queryStringParameters: unknown; cookies: unknown; requestContext: { requestId: string; http: { method: string } } };
    expect(ev.version).toBe('2.0');
    expect(ev.routeKey).toBe('GET /echo');
    expect(ev.rawQueryString).toBe('a=1&a=2');
    expect(ev.queryStringParameters).toEqual({ a: '1,2' });
    expect(ev.cookies).toEqual(['c=1']);
    expect(ev.requestContext.http.method).toBe('GET');
    expect(ev.requestContext.requestId).toBe(r.headers.get('apigw-requestid'));
    const v1 = (await (await fetch(h.httpUrl('/prod/echo1'), { method: 'POST', body: 'x' })).json()) as { version?: string; httpMethod: string };
    expect(v1.version).toBe('1.0');
    expect(v1.httpMethod).toBe('POST');
  });

  it('answers a failing function with 500 {"message":"Internal Server Error"}', async () => {
    const r = await fetch(h.httpUrl('/prod/throws'));
    expect(r.status).toBe(500);
    expect(await r.json()).toEqual({ message: 'Internal Server Error' });
  });
});
