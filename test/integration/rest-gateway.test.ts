import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type StartedGateway, startGateway } from '../helpers/gateway.ts';

const API = `
name: resttest
stages:
  prod: { variables: { env: production } }
  dev: {}
limits:
  integrationTimeoutMillis: 500
  maxHttpBodyBytes: 65536
authorizers:
  tok: { type: TOKEN, handler: handlers/authorizer.token, identitySource: method.request.header.Authorization, identityValidationExpression: "Bearer [a-z]+", resultTtlInSeconds: 0 }
  req: { type: REQUEST, handler: handlers/authorizer.request, identitySource: [method.request.header.X-Key], resultTtlInSeconds: 0 }
http:
  mode: REST
  binaryMediaTypes: [image/png, application/octet-stream]
  routes:
    "GET /items/{id}": { integration: { type: LAMBDA, handler: handlers/rest.echoEvent } }
    "GET /items/special": { integration: { type: MOCK, response: { statusCode: 200, body: '{"special":true}' } } }
    "HEAD /items/special": { integration: { type: MOCK, response: { statusCode: 200, body: '{"special":true}' } } }
    "ANY /items/{id}": { integration: { type: MOCK, response: { statusCode: 200, body: '{"any":true}' } } }
    "GET /files/{proxy+}": { integration: { type: LAMBDA, handler: handlers/rest.echoEvent } }
    "ANY /files/{proxy+}": { integration: { type: MOCK, response: { statusCode: 202, body: '{"greedyAny":true}' } } }
    "POST /echo": { integration: { type: LAMBDA, handler: handlers/rest.echoEvent } }
    "POST /echo2": { integration: { type: LAMBDA, handler: handlers/rest.echoEvent, payloadFormatVersion: "2.0" } }
    "GET /multi": { integration: { type: LAMBDA, handler: handlers/rest.multi } }
    "GET /binary": { integration: { type: LAMBDA, handler: handlers/rest.binary } }
    "GET /cookies": { integration: { type: LAMBDA, handler: handlers/rest.cookies, payloadFormatVersion: "2.0" } }
    "GET /inferred": { integration: { type: LAMBDA, handler: handlers/rest.inferred, payloadFormatVersion: "2.0" } }
    "GET /bare": { integration: { type: LAMBDA, handler: handlers/rest.bareString, payloadFormatVersion: "2.0" } }
    "GET /malformed": { integration: { type: LAMBDA, handler: handlers/rest.malformed } }
    "GET /malformed2": { integration: { type: LAMBDA, handler: handlers/rest.malformed, payloadFormatVersion: "2.0" } }
    "GET /throws": { integration: { type: LAMBDA, handler: handlers/rest.throws } }
    "GET /hangs": { integration: { type: LAMBDA, handler: handlers/rest.hangs } }
    "ANY /app/{proxy+}": { integration: { type: LAMBDA, handler: handlers/express-app.handler } }
    "POST /orders": { integration: { type: MOCK, response: { statusCode: 201, body: '{"ok":true}' } }, requestModel: models/order.json, requestParameters: [method.request.querystring.store, method.request.header.X-Tenant], requestValidator: ALL }
    "GET /secure": { integration: { type: LAMBDA, handler: handlers/rest.echoEvent }, authorizer: tok }
    "POST /secure": { integration: { type: MOCK }, authorizer: tok }
    "GET /req": { integration: { type: LAMBDA, handler: handlers/rest.echoEvent }, authorizer: req }
    "GET /health": { integration: { type: MOCK, response: { statusCode: 200, body: '{"ok":true}' } } }
`;

let g: StartedGateway;
beforeAll(async () => {
  g = await startGateway(API, {}, 'rest-api');
});
afterAll(() => g?.stop());

const get = (p: string, init?: RequestInit) => fetch(g.httpUrl(p), init);

/** Send raw bytes and return the status code of the answer. */
function rawStatus(port: number, request: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(request));
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
      if (m) {
        s.destroy();
        resolve(Number(m[1]));
      }
    });
    s.on('error', reject);
  });
}

describe('routing', () => {
  it('prefers an exact path over a parameter, an explicit method over ANY, and a full match over greedy', async () => {
    expect(await (await get('/prod/items/special')).json()).toEqual({ special: true });
    const ev = (await (await get('/prod/items/42')).json()) as Record<string, unknown>;
    expect(ev.resource).toBe('/items/{id}');
    expect(ev.pathParameters).toEqual({ id: '42' });
    expect(await (await get('/prod/items/42', { method: 'DELETE' })).json()).toEqual({ any: true });
    const greedy = (await (await get('/prod/files/a/b/c.txt')).json()) as Record<string, unknown>;
    expect(greedy.resource).toBe('/files/{proxy+}');
    expect(greedy.pathParameters).toEqual({ proxy: 'a/b/c.txt' });
    expect((await get('/prod/files/x', { method: 'PUT' })).status).toBe(202);
  });

  it('answers an unknown path or method with 403 Missing Authentication Token (REST mode)', async () => {
    for (const [p, method] of [['/prod/nope', 'GET'], ['/prod/files', 'GET'], ['/prod/health', 'POST'], ['/nostage/health', 'GET']] as const) {
      const r = await get(p, { method });
      expect(r.status).toBe(403);
      expect(r.headers.get('x-amzn-errortype')).toBe('MissingAuthenticationTokenException');
      expect(await r.json()).toEqual({ message: 'Missing Authentication Token' });
      expect(r.headers.get('x-amzn-requestid')).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it('answers HEAD with the GET length and no body, and never sends Date twice', async () => {
    const head = await get('/prod/items/special', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String('{"special":true}'.length));
    expect(await head.text()).toBe('');
    expect(head.headers.get('date')?.match(/GMT/g)).toHaveLength(1);
  });

  it('puts a request id header on every response', async () => {
    const r = await get('/prod/health');
    expect(r.headers.get('x-amzn-requestid')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('rejects path traversal with 400 before routing (raw requests: fetch would normalise them)', async () => {
    for (const p of ['/prod/files/..%2F..%2Fetc/passwd', '/prod/files/%2e%2e/secret', '/prod/files/a/%2E%2E/b', '/prod/files/../../etc/passwd', '/prod/files/a%5C..%5Cb']) {
      expect(await rawStatus(g.port, `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`)).toBe(400);
    }
  });
});

describe('LAMBDA proxy, payload 1.0', () => {
  it('builds the event field for field', async () => {
    const r = await get('/prod/echo?a=1&a=2&b=x', { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Custom': 'c' }, body: '{"k":1}' });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-handler')).toBe('echo');
    const ev = (await r.json()) as Record<string, unknown> & { requestContext: Record<string, unknown> };
    expect(ev).toMatchObject({
      resource: '/echo',
      path: '/echo',
      httpMethod: 'POST',
      queryStringParameters: { a: '2', b: 'x' },
      multiValueQueryStringParameters: { a: ['1', '2'], b: ['x'] },
      pathParameters: null,
      stageVariables: { env: 'production' },
      body: '{"k":1}',
      isBase64Encoded: false,
    });
    expect((ev.headers as Record<string, string>)['X-Custom']).toBe('c');
    expect((ev.multiValueHeaders as Record<string, string[]>)['X-Custom']).toEqual(['c']);
    expect(ev.requestContext).toMatchObject({ httpMethod: 'POST', stage: 'prod', resourcePath: '/echo', path: '/prod/echo', protocol: 'HTTP/1.1' });
    expect(ev.requestContext.identity).toMatchObject({ sourceIp: '127.0.0.1' });
    expect(ev.requestContext.requestId).toBe(r.headers.get('x-amzn-requestid'));
  });

  it('passes a binary media type base64-encoded', async () => {
    const body = Buffer.from([0, 1, 2, 250, 251, 252]);
    const ev = (await (await get('/prod/echo', { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body })).json()) as Record<string, unknown>;
    expect(ev.isBase64Encoded).toBe(true);
    expect(Buffer.from(ev.body as string, 'base64')).toEqual(body);
  });

  it('maps multiValueHeaders over headers and decodes base64 bodies', async () => {
    const r = await get('/prod/multi');
    expect(r.status).toBe(201);
    expect(r.headers.get('x-single')).toBe('a');
    expect(r.headers.get('x-multi')).toBe('1, 2');
    expect(r.headers.get('x-both')).toBe('from-multi');
    expect(await r.text()).toBe('created');
    const b = await get('/prod/binary');
    expect(b.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await b.arrayBuffer())).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff]));
  });

  it('answers 502 Internal server error for a malformed response or a throw, 504 on timeout', async () => {
    for (const p of ['/prod/malformed', '/prod/throws']) {
      const r = await get(p);
      expect(r.status).toBe(502);
      expect(await r.text()).toBe('{"message": "Internal server error"}');
    }
    const t = await get('/prod/hangs');
    expect(t.status).toBe(504);
    expect(await t.json()).toEqual({ message: 'Endpoint request timed out' });
  });
});

describe('LAMBDA proxy, payload 2.0', () => {
  it('builds the 2.0 event: lower-cased headers, cookies, comma-joined duplicates', async () => {
    const r = await get('/prod/echo2?x=1&x=2', { method: 'POST', headers: { 'X-Dup': 'a', Cookie: 'c1=v1; c2=v2', 'Content-Type': 'text/plain' }, body: 'hi' });
    const ev = (await r.json()) as Record<string, unknown> & { requestContext: Record<string, unknown> };
    expect(ev.version).toBe('2.0');
    expect(ev.routeKey).toBe('POST /echo2');
    expect(ev.rawPath).toBe('/prod/echo2');
    expect(ev.rawQueryString).toBe('x=1&x=2');
    expect(ev.queryStringParameters).toEqual({ x: '1,2' });
    expect(ev.cookies).toEqual(['c1=v1', 'c2=v2']);
    expect((ev.headers as Record<string, string>)['x-dup']).toBe('a');
    expect(ev.body).toBe('hi');
    expect(ev.requestContext.http).toMatchObject({ method: 'POST', sourceIp: '127.0.0.1' });
  });

  it('turns cookies into separate set-cookie headers and infers a response without statusCode', async () => {
    const c = await get('/prod/cookies');
    expect(c.headers.getSetCookie()).toEqual(['a=1; Path=/', 'b=2; HttpOnly']);
    const i = await get('/prod/inferred');
    expect(i.status).toBe(200);
    expect(i.headers.get('content-type')).toBe('application/json');
    expect(await i.json()).toEqual({ hello: 'world' });
    expect(await (await get('/prod/bare')).text()).toBe('just a string');
  });

  it('answers 500 Internal Server Error for a malformed 2.0 response', async () => {
    const r = await get('/prod/malformed2');
    expect(r.status).toBe(500);
    expect(await r.json()).toEqual({ message: 'Internal Server Error' });
  });
});

describe('an Express app wrapped by serverless-http, unmodified', () => {
  it('keeps routes, status codes, headers, cookies and JSON bodies intact', async () => {
    const a = await get('/prod/app/items/7?q=search');
    expect(a.status).toBe(200);
    expect(a.headers.get('x-powered-by-test')).toBe('express');
    expect(await a.json()).toEqual({ id: '7', q: 'search' });
    const b = await get('/prod/app/items', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"name":"widget"}' });
    expect(b.status).toBe(201);
    expect(b.headers.getSetCookie()[0]).toMatch(/^session=abc123; Path=\/; HttpOnly/);
    expect(await b.json()).toEqual({ created: { name: 'widget' } });
    const c = await get('/prod/app/missing');
    expect(c.status).toBe(404);
    expect(await c.json()).toEqual({ error: 'not here' });
    const d = await get('/prod/app/redirect', { redirect: 'manual' });
    expect(d.status).toBe(302);
    expect(d.headers.get('location')).toBe('/items/1');
  });
});

describe('request validation', () => {
  const ok = { method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Tenant': 't1' }, body: '{"item":"pen","quantity":2}' };
  it('accepts a valid request', async () => {
    expect((await get('/prod/orders?store=s1', ok)).status).toBe(201);
  });
  it('answers 400 Missing required request parameters', async () => {
    const r = await get('/prod/orders', { ...ok, headers: { 'Content-Type': 'application/json' } });
    expect(r.status).toBe(400);
    expect(await r.json()).toEqual({ message: 'Missing required request parameters: [store, X-Tenant]' });
  });
  it.each(['{"item":"pen"}', '{"item":"pen","quantity":0}', 'not json', '{"item":"pen","quantity":1,"extra":true}'])('answers 400 Invalid request body for %s', async (body) => {
    const r = await get('/prod/orders?store=s1', { ...ok, body });
    expect(r.status).toBe(400);
    expect(await r.json()).toEqual({ message: 'Invalid request body' });
  });
});

describe('authorizers on REST routes', () => {
  it('TOKEN: validation regex, allow with context, deny, unauthorized', async () => {
    expect((await get('/prod/secure')).status).toBe(401);
    expect((await get('/prod/secure', { headers: { Authorization: 'Bearer BAD123' } })).status).toBe(401);
    const ok = await get('/prod/secure', { headers: { Authorization: 'Bearer good' } });
    expect(ok.status).toBe(200);
    const ev = (await ok.json()) as { requestContext: { authorizer: Record<string, unknown> } };
    expect(ev.requestContext.authorizer).toMatchObject({ principalId: 'rest-user', tier: 'gold' });
    const deny = await get('/prod/secure', { headers: { Authorization: 'Bearer deny' } });
    expect(deny.status).toBe(403);
    expect(await deny.json()).toEqual({ message: 'User is not authorized to access this resource with an explicit deny' });
  });

  it('answers 500 {"message": null} for an authorizer that throws or returns a malformed policy', async () => {
    for (const t of ['boom', 'malformed']) {
      const r = await get('/prod/secure', { headers: { Authorization: `Bearer ${t}` } });
      expect(r.status).toBe(500);
      expect(r.headers.get('x-amzn-errortype')).toBe('AuthorizerConfigurationException');
      expect(await r.text()).toBe('{"message": null}');
    }
  });

  it('evaluates the policy against the method ARN: GET allowed, POST implicitly denied', async () => {
    expect((await get('/prod/secure', { headers: { Authorization: 'Bearer getonly' } })).status).toBe(200);
    const post = await get('/prod/secure', { method: 'POST', headers: { Authorization: 'Bearer getonly' } });
    expect(post.status).toBe(403);
    expect(await post.json()).toEqual({ message: 'User is not authorized to access this resource' });
  });

  it('REQUEST: 401 when the identity header is missing, context when allowed', async () => {
    expect((await get('/prod/req')).status).toBe(401);
    const r = await get('/prod/req', { headers: { 'X-Key': 'open' } });
    expect(r.status).toBe(200);
    const authEvent = (globalThis as { __restAuthEvent?: Record<string, unknown> }).__restAuthEvent!;
    expect(authEvent).toMatchObject({ type: 'REQUEST', httpMethod: 'GET', resource: '/req' });
    expect(authEvent.methodArn).toMatch(/\/prod\/GET\/req$/);
  });
});

describe('bad input', () => {
  it('answers 413 for an oversized body while reading, and other requests go on', async () => {
    const r = await get('/prod/echo', { method: 'POST', body: Buffer.alloc(1024 * 1024, 120) }).catch((e: unknown) => e);
    if (r instanceof Response) expect(r.status).toBe(413);
    expect((await get('/prod/health')).status).toBe(200);
  });

  it('survives a client that aborts mid-body', async () => {
    await new Promise<void>((resolve) => {
      const s = net.connect(g.port, '127.0.0.1', () => {
        s.write('POST /prod/echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"partial":');
        s.destroy();
        resolve();
      });
    });
    expect((await get('/prod/health')).status).toBe(200);
  });

  it('answers a header flood with an error and keeps serving', async () => {
    const headers: Record<string, string> = {};
    for (let i = 0; i < 200; i++) headers[`x-h${i}`] = 'v'.repeat(100);
    const r = await get('/prod/health', { headers }).catch((e: unknown) => e);
    if (r instanceof Response) expect(r.status).toBeGreaterThanOrEqual(400);
    expect((await get('/prod/health')).status).toBe(200);
  });
});
