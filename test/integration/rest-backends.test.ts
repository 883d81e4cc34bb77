import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort, rawHeader, rawHeaderAll, type SeenRequest, startBackend, type TestBackend } from '../fixtures/rest-api/backend.ts';
import { rawHeaderValues, rawRequest } from '../fixtures/rest-api/raw-http.ts';
import { type StartedGateway, startGateway } from '../helpers/gateway.ts';

/*
 * REST routes with HTTP_PROXY, HTTP (mapping templates) and MOCK integrations, against a real
 * node:http backend on an ephemeral port. Requests go through the real gateway (uWS) with fetch
 * or raw sockets; the backend records exactly what reached it.
 */

const HANG_TIMEOUT_MS = 300;

function api(b: TestBackend, refused: number): string {
  return `
name: backends
stages:
  prod: { variables: { backend: "127.0.0.1:${b.port}", env: production } }
limits:
  integrationTimeoutMillis: 3000
  maxHttpBodyBytes: 65536
http:
  mode: REST
  binaryMediaTypes: [application/octet-stream]
  routes:
    "ANY /proxy/{proxy+}": { integration: { type: HTTP_PROXY, uri: "http://\${stageVariables.backend}/base/{proxy}" } }
    "GET /users/{id}/orders/{orderId}": { integration: { type: HTTP_PROXY, uri: "${b.origin}/u/{id}/orders/{orderId}?fixed=1" } }
    "POST /as-put": { integration: { type: HTTP_PROXY, method: PUT, uri: "${b.origin}/as-put" } }
    "GET /slow": { integration: { type: HTTP_PROXY, uri: "${b.origin}/hang", timeoutInMillis: ${HANG_TIMEOUT_MS} } }
    "GET /refused": { integration: { type: HTTP_PROXY, uri: "http://127.0.0.1:${refused}/nothing" } }
    "GET /health": { integration: { type: MOCK, response: { statusCode: 200, body: '{"ok":true}' } } }
    "GET /teapot":
      integration:
        type: MOCK
        response: { statusCode: 418, headers: { X-Mock: brewed, Content-Type: text/plain, Cache-Control: no-store }, body: "short and stout" }
    "GET /mock-default": { integration: { type: MOCK } }
    "POST /tpl/{p}":
      integration:
        type: HTTP
        uri: "${b.origin}/tpl/{p}"
        passthroughBehavior: NEVER
        requestTemplates:
          application/json: |
            {"x": $input.json('$.x'), "name": "$input.path('$.name')", "p": "$input.params('p')", "q": "$input.params('q')", "h": "$input.params('X-Tenant')", "requestId": "$context.requestId", "env": "$stageVariables.env", "quoted": "$util.escapeJavaScript($input.path('$.quote'))"}
          text/plain: |
            {"text": "$util.escapeJavaScript($input.body)", "from": "text template"}
        responseTemplates:
          application/json: |
            {"mapped": $input.json('$.result'), "count": $input.path('$.items').size(), "status": "$context.integration.status", "requestId": "$context.requestId"}
    "POST /loose":
      integration:
        type: HTTP
        uri: "${b.origin}/loose"
        requestTemplates:
          application/json: '{"wrapped": $input.json(''$'')}'
    "POST /bad-request-template":
      integration:
        type: HTTP
        uri: "${b.origin}/never-called"
        requestTemplates:
          application/json: '{"v": "$util.base64Decode(''***not base64***'')"}'
    "GET /bad-response-template":
      integration:
        type: HTTP
        uri: "${b.origin}/plain-json"
        responseTemplates:
          application/json: '{"v": "$util.base64Decode($input.body)"}'
    "GET /tpl-slow": { integration: { type: HTTP, uri: "${b.origin}/hang", timeoutInMillis: ${HANG_TIMEOUT_MS} } }
    "GET /tpl-refused": { integration: { type: HTTP, uri: "http://127.0.0.1:${refused}/x" } }
    "GET /bad-response-json":
      integration:
        type: HTTP
        uri: "${b.origin}/not-json"
        responseTemplates:
          application/json: '{"v": $input.json(''$.a'')}'
`;
}

let b: TestBackend;
let g: StartedGateway;
let refusedPort: number;

beforeAll(async () => {
  b = await startBackend();
  refusedPort = await closedPort();
  g = await startGateway(api(b, refusedPort), {}, 'rest-api');

  // Backend behaviours. The default (no route) echoes the request as JSON.
  b.route('/base/binary', (_req, res, seen) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.end(Buffer.concat([Buffer.from([0xff, 0x00]), seen.body]));
  });
  b.route('/base/cookies', (_req, res) => {
    res.writeHead(201, [
      ['Set-Cookie', 'a=1; Path=/; HttpOnly'],
      ['Set-Cookie', 'b=2; Max-Age=60'],
      ['Set-Cookie', 'c=3; SameSite=Strict'],
      ['X-Multi', 'one'],
      ['X-Multi', 'two'],
      ['Content-Type', 'text/plain; charset=utf-8'],
      ['ETag', '"v1"'],
    ]);
    res.end('cookies set');
  });
  b.route('/base/status/404', (_req, res) => {
    res.writeHead(404, { 'content-type': 'application/problem+json', 'x-backend': 'yes' });
    res.end('{"title":"not found upstream"}');
  });
  b.route('/base/redirect', (_req, res) => {
    res.writeHead(302, { location: 'https://elsewhere.example/x' });
    res.end();
  });
  b.route('/base/hop', (_req, res) => {
    res.writeHead(200, [
      ['Connection', 'X-Backend-Hop, keep-alive'],
      ['Keep-Alive', 'timeout=5'],
      ['X-Backend-Hop', 'dropped'],
      ['Proxy-Authenticate', 'Basic realm="x"'],
      ['X-Backend-Kept', 'kept'],
      ['Content-Type', 'text/plain'],
    ]);
    res.end('hop');
  });
  b.route('/base/reset-before', (req) => {
    req.socket.destroy();
  });
  b.route('/base/reset-mid', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
    res.write('only part of it', () => res.socket?.destroy());
  });
  b.route('/base/big-declared', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(100 * 1024) });
    res.end(Buffer.alloc(100 * 1024, 0x61));
  });
  b.route('/base/big-chunked', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    for (let i = 0; i < 10; i++) res.write(Buffer.alloc(16 * 1024, 0x62));
    res.end();
  });
  b.route('/base/exact', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(Buffer.alloc(65536, 0x63));
  });
  b.route('/hang', () => {
    // Never answers; the socket is destroyed when the backend stops.
  });
  b.route('/tpl/', (_req, res) => {
    res.writeHead(201, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify({ result: { ok: true, n: 7 }, items: [1, 2, 3], ignored: 'x' }));
  });
  b.route('/plain-json', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"present":1}');
  });
  b.route('/not-json', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('this is { not json');
  });
});

afterAll(async () => {
  await g?.stop();
  await b?.stop();
});

const url = (p: string) => g.httpUrl(p);

/** The requests the backend received since `mark` (an index into `b.requests`). */
const since = (mark: number): SeenRequest[] => b.requests.slice(mark);

describe('HTTP_PROXY: request to the backend', () => {
  it('substitutes {param} segments (encoded) and keeps the URI template query', async () => {
    const mark = b.requests.length;
    const r = await fetch(url('/prod/users/a%20b/orders/7?extra=yes'));
    expect(r.status).toBe(200);
    const [seen] = since(mark);
    expect(seen?.url).toBe('/u/a%20b/orders/7?fixed=1&extra=yes');
  });

  it('substitutes a greedy {proxy} and ${stageVariables.x} and passes the raw query string through', async () => {
    const mark = b.requests.length;
    const r = await fetch(url('/prod/proxy/a/b/c.txt?x=1&x=2&y=%20z&flag'));
    expect(r.status).toBe(200);
    const [seen] = since(mark);
    expect(seen?.url).toBe('/base/a/b/c.txt?x=1&x=2&y=%20z&flag');
    expect(rawHeader(seen!.rawHeaders, 'host')).toBe(`127.0.0.1:${b.port}`);
    // Decoded once for routing, re-encoded per segment: '?' and '#' stay in the path.
    const mark2 = b.requests.length;
    expect((await fetch(url('/prod/proxy/q%3Fx/%23h/%C3%A9t%C3%A9/a+b?z=1'))).status).toBe(200);
    expect(since(mark2)[0]?.url).toBe('/base/q%3Fx/%23h/%C3%A9t%C3%A9/a%2Bb?z=1');
  });

  it('passes method, end-to-end headers (repeated ones too) and body', async () => {
    for (const method of ['PUT', 'PATCH', 'DELETE', 'POST']) {
      const mark = b.requests.length;
      const r = await fetch(url(`/prod/proxy/m/${method.toLowerCase()}`), {
        method,
        headers: [
          ['Content-Type', 'application/json'],
          ['X-Custom', 'c1'],
          ['Authorization', 'Bearer abc'],
          ['Cookie', 'k=v'],
        ],
        body: `{"method":"${method}"}`,
      });
      expect(r.status).toBe(200);
      const [seen] = since(mark);
      expect(seen?.method).toBe(method);
      expect(seen?.body.toString()).toBe(`{"method":"${method}"}`);
      expect(rawHeader(seen!.rawHeaders, 'content-type')).toBe('application/json');
      expect(rawHeader(seen!.rawHeaders, 'x-custom')).toBe('c1');
      expect(rawHeader(seen!.rawHeaders, 'authorization')).toBe('Bearer abc');
      expect(rawHeader(seen!.rawHeaders, 'cookie')).toBe('k=v');
      expect(rawHeader(seen!.rawHeaders, 'content-length')).toBe(String(Buffer.byteLength(`{"method":"${method}"}`)));
    }
    // Repeated request headers stay repeated (raw request: fetch would join them).
    const mark = b.requests.length;
    const r = await rawRequest(g.port, 'GET /prod/proxy/repeat HTTP/1.1\r\nHost: x\r\nX-Rep: 1\r\nX-Rep: 2\r\n\r\n');
    expect(r.status).toBe(200);
    expect(rawHeaderAll(since(mark)[0]!.rawHeaders, 'x-rep')).toEqual(['1', '2']);
  });

  it('uses the integration method when one is set', async () => {
    const mark = b.requests.length;
    expect((await fetch(url('/prod/as-put'), { method: 'POST', body: 'payload' })).status).toBe(200);
    const [seen] = since(mark);
    expect(seen?.method).toBe('PUT');
    expect(seen?.body.toString()).toBe('payload');
  });

  it('passes a binary body through byte for byte (not base64), both ways', async () => {
    const body = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) body[i] = i;
    const mark = b.requests.length;
    const r = await fetch(url('/prod/proxy/binary'), { method: 'POST', headers: { 'Content-Type': 'application/octet-stream' }, body });
    expect(r.status).toBe(200);
    expect(since(mark)[0]?.body).toEqual(body);
    expect(r.headers.get('content-type')).toBe('application/octet-stream');
    expect(Buffer.from(await r.arrayBuffer())).toEqual(Buffer.concat([Buffer.from([0xff, 0x00]), body]));
  });

  it('strips hop-by-hop request headers (and those named in Connection) and sets X-Forwarded-*', async () => {
    const mark = b.requests.length;
    const r = await rawRequest(
      g.port,
      [
        'GET /prod/proxy/hop-request HTTP/1.1',
        'Host: gw.example:9999',
        'Connection: keep-alive, X-Hop-Custom',
        'X-Hop-Custom: must-not-pass',
        'Keep-Alive: timeout=30',
        'TE: trailers',
        'Proxy-Authorization: Basic Zm9vOmJhcg==',
        'Proxy-Connection: keep-alive',
        'X-Forwarded-For: 203.0.113.9',
        'X-Forwarded-Proto: https',
        'X-Forwarded-Host: spoofed.example',
        'X-Forwarded-Port: 1',
        'X-End-To-End: kept',
        '',
        '',
      ].join('\r\n'),
    );
    expect(r.status).toBe(200);
    const h = since(mark)[0]!.rawHeaders;
    for (const name of ['x-hop-custom', 'keep-alive', 'te', 'proxy-authorization', 'proxy-connection']) {
      expect(rawHeader(h, name), name).toBeUndefined();
    }
    expect(rawHeaderAll(h, 'connection').join(',')).not.toMatch(/x-hop-custom/i);
    expect(rawHeader(h, 'x-end-to-end')).toBe('kept');
    expect(rawHeader(h, 'x-forwarded-for')).toBe('203.0.113.9, 127.0.0.1');
    expect(rawHeader(h, 'x-forwarded-proto')).toBe('http');
    expect(rawHeader(h, 'x-forwarded-port')).toBe(String(g.port));
    expect(rawHeader(h, 'x-forwarded-host')).toBe('gw.example');
    expect(rawHeader(h, 'host')).toBe(`127.0.0.1:${b.port}`);
  });
});

describe('HTTP_PROXY: response from the backend', () => {
  it('returns status, headers (several Set-Cookie, repeated ones) and body intact', async () => {
    const r = await fetch(url('/prod/proxy/cookies'));
    expect(r.status).toBe(201);
    expect(r.headers.getSetCookie()).toEqual(['a=1; Path=/; HttpOnly', 'b=2; Max-Age=60', 'c=3; SameSite=Strict']);
    expect(r.headers.get('x-multi')).toBe('one, two');
    expect(r.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(r.headers.get('etag')).toBe('"v1"');
    expect(r.headers.get('x-amzn-requestid')).toMatch(/^[0-9a-f-]{36}$/);
    expect(await r.text()).toBe('cookies set');
  });

  it('passes a backend 4xx and a 3xx through as they are (no redirect followed)', async () => {
    const nf = await fetch(url('/prod/proxy/status/404'));
    expect(nf.status).toBe(404);
    expect(nf.headers.get('content-type')).toBe('application/problem+json');
    expect(nf.headers.get('x-backend')).toBe('yes');
    expect(nf.headers.get('x-amzn-errortype')).toBeNull();
    expect(await nf.json()).toEqual({ title: 'not found upstream' });
    const redirect = await fetch(url('/prod/proxy/redirect'), { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toBe('https://elsewhere.example/x');
  });

  it('strips hop-by-hop response headers', async () => {
    const r = await rawRequest(g.port, 'GET /prod/proxy/hop HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('hop');
    expect(rawHeaderValues(r, 'x-backend-kept')).toEqual(['kept']);
    for (const name of ['x-backend-hop', 'keep-alive', 'proxy-authenticate']) expect(rawHeaderValues(r, name), name).toEqual([]);
    // The gateway writes its own Date; the backend's must not make it two.
    expect(rawHeaderValues(r, 'date')).toHaveLength(1);
    expect(rawHeaderValues(r, 'connection').join(',')).not.toMatch(/x-backend-hop/i);
  });
});

describe('HTTP_PROXY: failures', () => {
  it('answers 504 Endpoint request timed out within the integration timeout, and keeps serving meanwhile', async () => {
    const started = Date.now();
    let slowDone = false;
    const slow = fetch(url('/prod/slow')).then(async (r) => {
      slowDone = true;
      return { status: r.status, body: await r.text(), at: Date.now() - started };
    });
    await b.nextRequest('/hang');
    // While the backend hangs, other requests (other routes, the same backend) are served.
    const health = await fetch(url('/prod/health'));
    expect(health.status).toBe(200);
    const proxied = await fetch(url('/prod/proxy/meanwhile'));
    expect(proxied.status).toBe(200);
    expect(slowDone).toBe(false);
    const s = await slow;
    expect(s.status).toBe(504);
    expect(JSON.parse(s.body)).toEqual({ message: 'Endpoint request timed out' });
    expect(s.at).toBeGreaterThanOrEqual(HANG_TIMEOUT_MS - 25);
    expect(s.at).toBeLessThan(HANG_TIMEOUT_MS + 1500);
  });

  it('answers 502 when the backend refuses the connection', async () => {
    const started = Date.now();
    const r = await fetch(url('/prod/refused'));
    expect(r.status).toBe(502);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(typeof ((await r.json()) as { message: unknown }).message).toBe('string');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('answers 502 when the backend resets the connection before or during the response', async () => {
    for (const p of ['/prod/proxy/reset-before', '/prod/proxy/reset-mid']) {
      const r = await fetch(url(p));
      expect(r.status, p).toBe(502);
      const body = (await r.json()) as { message: unknown };
      expect(typeof body.message).toBe('string');
    }
    expect((await fetch(url('/prod/health'))).status).toBe(200);
  });

  it('answers 502 for a response over maxHttpBodyBytes (declared or chunked), and passes one of exactly the limit', async () => {
    for (const p of ['/prod/proxy/big-declared', '/prod/proxy/big-chunked']) {
      const r = await fetch(url(p));
      expect(r.status, p).toBe(502);
      await r.arrayBuffer();
    }
    const exact = await fetch(url('/prod/proxy/exact'));
    expect(exact.status).toBe(200);
    expect((await exact.arrayBuffer()).byteLength).toBe(65536);
  });
});

describe('HTTP_PROXY: connections and paths', () => {
  it('reuses keep-alive connections to the backend (50 sequential requests, then 2 x 50 concurrent)', async () => {
    const mark = b.requests.length;
    for (let i = 0; i < 50; i++) {
      const r = await fetch(url(`/prod/proxy/ka/${i}`));
      expect(r.status).toBe(200);
      await r.arrayBuffer();
    }
    const used = new Set(since(mark).map((s) => s.connection));
    expect(since(mark)).toHaveLength(50);
    expect(used.size).toBeLessThanOrEqual(2);

    const burst = async () => {
      const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => fetch(url(`/prod/proxy/burst/${i}`)).then((r) => r.status)));
      expect(rs.every((s) => s === 200)).toBe(true);
    };
    await burst();
    const afterFirst = b.connections();
    await burst();
    // The second burst finds the first burst's connections idle in the pool.
    expect(b.connections() - afterFirst).toBeLessThanOrEqual(5);
  });

  it('never lets a traversal in {proxy+} reach the backend (raw requests: 400)', async () => {
    const mark = b.requests.length;
    for (const p of [
      '/prod/proxy/../secret',
      '/prod/proxy/a/../../secret',
      '/prod/proxy/%2e%2e/secret',
      '/prod/proxy/a/%2E%2E/%2e%2e/etc/passwd',
      '/prod/proxy/..%2F..%2Fsecret',
      '/prod/proxy/.%2e/secret',
      '/prod/proxy/%252e%252e/secret',
      '/prod/proxy/a%5C..%5Csecret',
      '/prod/proxy/./secret',
    ]) {
      const r = await rawRequest(g.port, `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(r.status, p).toBe(400);
    }
    expect(since(mark)).toEqual([]);
  });
});

describe('HTTP integration with mapping templates', () => {
  it('maps the request with $input.json/path/params, $context, $stageVariables and $util.escapeJavaScript', async () => {
    const mark = b.requests.length;
    const r = await fetch(url('/prod/tpl/pv?q=qv'), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Tenant': 'acme' },
      body: JSON.stringify({ x: { deep: [1, 'two'] }, name: 'widget', quote: 'say "hi"\n/é' }),
    });
    expect(r.status).toBe(201);
    const requestId = r.headers.get('x-amzn-requestid');
    const seen = since(mark)[0]!;
    expect(seen.method).toBe('POST');
    expect(seen.url).toBe('/tpl/pv');
    expect(rawHeader(seen.rawHeaders, 'content-type')).toBe('application/json');
    const text = seen.body.toString();
    expect(text).toContain(String.raw`"quoted": "say \"hi\"\n\/\u00E9"`);
    expect(JSON.parse(text)).toEqual({
      x: { deep: [1, 'two'] },
      name: 'widget',
      p: 'pv',
      q: 'qv',
      h: 'acme',
      requestId,
      env: 'production',
      quoted: 'say "hi"\n/é',
    });
    // The response template maps the backend's JSON; the backend's other fields are dropped.
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(await r.json()).toEqual({ mapped: { ok: true, n: 7 }, count: 3, status: '201', requestId });
  });

  it('selects the request template by content type', async () => {
    const mark = b.requests.length;
    const r = await fetch(url('/prod/tpl/t'), { method: 'POST', headers: { 'Content-Type': 'text/plain; charset=utf-8' }, body: "it's a \"text\"" });
    expect(r.status).toBe(201);
    const seen = since(mark)[0]!;
    expect(rawHeader(seen.rawHeaders, 'content-type')).toBe('text/plain');
    expect(seen.body.toString()).toBe(`{"text": "it\\'s a \\"text\\"", "from": "text template"}\n`);
  });

  it('passthroughBehavior NEVER: 415 for an unmatched content type, without calling the backend', async () => {
    const mark = b.requests.length;
    const r = await fetch(url('/prod/tpl/x'), { method: 'POST', headers: { 'Content-Type': 'application/xml' }, body: '<x/>' });
    expect(r.status).toBe(415);
    expect(r.headers.get('x-amzn-errortype')).toBe('UnsupportedMediaTypeException');
    expect(await r.json()).toEqual({ message: 'Unsupported Media Type' });
    expect(since(mark)).toEqual([]);
  });

  it('WHEN_NO_MATCH (the default): an unmatched content type passes through unchanged', async () => {
    const mark = b.requests.length;
    const r = await fetch(url('/prod/loose'), { method: 'POST', headers: { 'Content-Type': 'application/xml' }, body: '<x a="1"/>' });
    expect(r.status).toBe(200);
    const seen = since(mark)[0]!;
    expect(seen.body.toString()).toBe('<x a="1"/>');
    expect(rawHeader(seen.rawHeaders, 'content-type')).toBe('application/xml');
    const mapped = await fetch(url('/prod/loose'), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"a":1}' });
    expect(mapped.status).toBe(200);
    expect(since(mark)[1]?.body.toString()).toBe('{"wrapped": {"a":1}}');
  });

  it('answers 400 when a template reads a body that is not JSON', async () => {
    const mark = b.requests.length;
    const r = await fetch(url('/prod/tpl/x'), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{not json' });
    expect(r.status).toBe(400);
    expect(await r.json()).toEqual({ message: 'Could not parse request body into json' });
    expect(since(mark)).toEqual([]);
  });

  it('answers 500 for a request or response template that fails while rendering', async () => {
    const mark = b.requests.length;
    const req = await fetch(url('/prod/bad-request-template'), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    expect(req.status).toBe(500);
    expect(await req.json()).toEqual({ message: 'Internal server error' });
    expect(since(mark)).toEqual([]);
    for (const p of ['/prod/bad-response-template', '/prod/bad-response-json']) {
      const res = await fetch(url(p));
      expect(res.status, p).toBe(500);
      expect(await res.json()).toEqual({ message: 'Internal server error' });
    }
  });

  it('answers 504 / 502 when the backend hangs or refuses, as HTTP_PROXY does', async () => {
    const slow = await fetch(url('/prod/tpl-slow'));
    expect(slow.status).toBe(504);
    expect(await slow.json()).toEqual({ message: 'Endpoint request timed out' });
    expect((await fetch(url('/prod/tpl-refused'))).status).toBe(502);
  });
});

describe('MOCK integration', () => {
  it('answers with the configured status, custom headers and body', async () => {
    const r = await fetch(url('/prod/teapot'));
    expect(r.status).toBe(418);
    expect(r.headers.get('x-mock')).toBe('brewed');
    expect(r.headers.get('content-type')).toBe('text/plain');
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(r.headers.get('x-amzn-requestid')).toMatch(/^[0-9a-f-]{36}$/);
    expect(await r.text()).toBe('short and stout');
  });

  it('defaults to 200, application/json and an empty body', async () => {
    const r = await fetch(url('/prod/mock-default'));
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(await r.text()).toBe('');
  });
});
