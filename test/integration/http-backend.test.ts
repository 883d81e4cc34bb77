import { randomBytes } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BackendRequest,
  HttpBackend,
  proxyRequestHeaders,
  proxyResponseHeaders,
  substituteUri,
} from '../../server/integrations/http-backend.ts';

/*
 * The HTTP_PROXY client against real node:http backends on ephemeral ports. Each backend route
 * misbehaves in one specific way; the tests assert the classified result and, where it matters,
 * what the backend observed (connections, headers, bytes written).
 */

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface Backend {
  server: Server;
  origin: string;
  port: number;
  connections: number;
  /** raw headers of the last request seen, per path */
  seen: Map<string, string[]>;
  routes: Map<string, Handler>;
  stop(): Promise<void>;
}

async function startBackend(): Promise<Backend> {
  const routes = new Map<string, Handler>();
  const seen = new Map<string, string[]>();
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    seen.set(path, req.rawHeaders);
    const handler = routes.get(path);
    if (handler) handler(req, res);
    else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('no route');
    }
  });
  const backend: Backend = {
    server,
    origin: '',
    port: 0,
    connections: 0,
    seen,
    routes,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  server.on('connection', () => {
    backend.connections++;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  backend.port = (server.address() as AddressInfo).port;
  backend.origin = `http://127.0.0.1:${backend.port}`;
  return backend;
}

async function freeClosedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

const MB = 1024 * 1024;

function req(over: Partial<BackendRequest> & { url: string }): BackendRequest {
  return { method: 'GET', headers: [], timeoutMs: 5000, maxResponseBytes: 10 * MB, ...over };
}

describe('HttpBackend against local backends', () => {
  let backend: Backend;
  let client: HttpBackend;

  beforeAll(async () => {
    backend = await startBackend();
    client = new HttpBackend({ connectionsPerOrigin: 4 });

    backend.routes.set('/hello', (_req, res) => {
      res.setHeader('X-Mixed-Case', 'yes');
      res.setHeader('Set-Cookie', ['a=1', 'b=2']);
      res.writeHead(201, { 'content-type': 'text/plain' });
      res.end('hello');
    });
    backend.routes.set('/echo', (r, res) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => {
        res.writeHead(200, { 'content-type': r.headers['content-type'] ?? 'application/octet-stream' });
        res.end(Buffer.concat(chunks));
      });
    });
    backend.routes.set('/never', () => {
      // accepts the request, never answers
    });
    backend.routes.set('/stall-mid-body', (_req, res) => {
      res.writeHead(200, { 'content-length': '1000' });
      res.write(Buffer.alloc(100, 1));
    });
    backend.routes.set('/reset-mid-body', (_req, res) => {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 1), () => res.socket?.destroy());
    });
    backend.routes.set('/reset-chunked', (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial', () => res.socket?.destroy());
    });
    backend.routes.set('/reset-before-response', (_req, res) => {
      res.socket?.destroy();
    });
  });

  afterAll(async () => {
    await client.close();
    await backend.stop();
  });

  it('should return status, raw headers and body over reused keep-alive connections', async () => {
    const before = backend.connections;
    for (let i = 0; i < 20; i++) {
      const r = await client.request(req({ url: `${backend.origin}/hello?i=${i}` }));
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(r.status).toBe(201);
      expect(r.body.toString()).toBe('hello');
      expect(r.headers).toContainEqual(['X-Mixed-Case', 'yes']);
      expect(r.headers.filter(([k]) => k === 'Set-Cookie')).toEqual([
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
      ]);
    }
    // undici waits one event-loop turn before reusing a socket (pipelining 1), so a request sent
    // right after the previous answer may open a second connection; never one per request.
    expect(backend.connections - before).toBeLessThanOrEqual(2);
  });

  it('should bound connections per origin and reuse them across bursts', async () => {
    const fresh = await startBackend();
    const bounded = new HttpBackend({ connectionsPerOrigin: 3 });
    let inFlight = 0;
    let maxInFlight = 0;
    fresh.routes.set('/slow', (_req, res) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => {
        inFlight--;
        res.end('ok');
      }, 20);
    });
    try {
      const burst = () =>
        Promise.all(Array.from({ length: 12 }, () => bounded.request(req({ url: `${fresh.origin}/slow` }))));
      for (const r of await burst()) expect(r).toMatchObject({ ok: true, status: 200 });
      expect(fresh.connections).toBe(3);
      expect(maxInFlight).toBe(3);
      for (const r of await burst()) expect(r).toMatchObject({ ok: true, status: 200 });
      expect(fresh.connections).toBe(3);
    } finally {
      await bounded.close();
      await fresh.stop();
    }
  });

  it('should round-trip a binary body byte for byte', async () => {
    const payload = randomBytes(300_000);
    const r = await client.request(
      req({ method: 'POST', url: `${backend.origin}/echo`, headers: [['Content-Type', 'application/octet-stream']], body: payload }),
    );
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.body.equals(payload)).toBe(true);
  });

  it('should answer a 404 from the backend as a normal response', async () => {
    const r = await client.request(req({ url: `${backend.origin}/missing` }));
    expect(r).toMatchObject({ ok: true, status: 404 });
  });

  it('should time out a backend that never answers, within timeout + slack', async () => {
    const started = Date.now();
    const r = await client.request(req({ url: `${backend.origin}/never`, timeoutMs: 300 }));
    const elapsed = Date.now() - started;
    expect(r).toMatchObject({ ok: false, kind: 'timeout' });
    expect(elapsed).toBeGreaterThanOrEqual(290);
    expect(elapsed).toBeLessThan(1300);
  });

  it('should time out a backend that stops mid-body', async () => {
    const r = await client.request(req({ url: `${backend.origin}/stall-mid-body`, timeoutMs: 300 }));
    expect(r).toMatchObject({ ok: false, kind: 'timeout' });
  });

  it('should count time spent queued for a connection against the deadline', async () => {
    const single = new HttpBackend({ connectionsPerOrigin: 1 });
    try {
      const first = single.request(req({ url: `${backend.origin}/never`, timeoutMs: 1500 }));
      const started = Date.now();
      const queued = await single.request(req({ url: `${backend.origin}/hello`, timeoutMs: 300 }));
      expect(queued).toMatchObject({ ok: false, kind: 'timeout' });
      expect(Date.now() - started).toBeLessThan(1300);
      expect(await first).toMatchObject({ ok: false, kind: 'timeout' });
    } finally {
      await single.close();
    }
  });

  it('should classify a refused connection as connect', async () => {
    const port = await freeClosedPort();
    const r = await client.request(req({ url: `http://127.0.0.1:${port}/x` }));
    expect(r).toMatchObject({ ok: false, kind: 'connect' });
    if (!r.ok) expect(r.message).toMatch(/ECONNREFUSED/);
  });

  it('should classify an unresolvable host as connect', async () => {
    const r = await client.request(req({ url: 'http://gatehouse-test.invalid/x', timeoutMs: 10_000 }));
    expect(r).toMatchObject({ ok: false, kind: 'connect' });
  });

  it('should classify a socket destroyed mid-response as reset', async () => {
    expect(await client.request(req({ url: `${backend.origin}/reset-mid-body` }))).toMatchObject({ ok: false, kind: 'reset' });
    expect(await client.request(req({ url: `${backend.origin}/reset-chunked` }))).toMatchObject({ ok: false, kind: 'reset' });
    expect(await client.request(req({ url: `${backend.origin}/reset-before-response` }))).toMatchObject({ ok: false, kind: 'reset' });
    // the pool recovers
    expect(await client.request(req({ url: `${backend.origin}/hello` }))).toMatchObject({ ok: true, status: 201 });
  });

  it('should refuse a declared Content-Length over the limit at once, without reading the body', async () => {
    let closedEarly = false;
    let written = 0;
    backend.routes.set('/declared-huge', (_req, res) => {
      res.writeHead(200, { 'content-length': String(50 * MB) });
      const chunk = Buffer.alloc(64 * 1024);
      const pump = () => {
        if (res.destroyed || written >= 50 * MB) return;
        written += chunk.length;
        if (res.write(chunk)) setImmediate(pump);
        else res.once('drain', pump);
      };
      res.on('close', () => {
        closedEarly = !res.writableFinished;
      });
      pump();
    });
    const started = Date.now();
    const r = await client.request(req({ url: `${backend.origin}/declared-huge`, maxResponseBytes: MB }));
    expect(r).toMatchObject({ ok: false, kind: 'too_large' });
    if (!r.ok) expect(r.message).toMatch(/Content-Length 52428800/);
    expect(Date.now() - started).toBeLessThan(2000);
    await waitUntil(() => closedEarly);
    expect(written).toBeLessThan(50 * MB);
  });

  it('should stop reading a chunked body once it passes the limit', async () => {
    let closedEarly = false;
    let written = 0;
    const total = 256 * MB;
    backend.routes.set('/chunked-huge', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = () => {
        if (res.destroyed) return;
        if (written >= total) {
          res.end();
          return;
        }
        written += chunk.length;
        if (res.write(chunk)) setImmediate(pump);
        else res.once('drain', pump);
      };
      res.on('close', () => {
        closedEarly = !res.writableFinished;
      });
      pump();
    });
    const r = await client.request(req({ url: `${backend.origin}/chunked-huge`, maxResponseBytes: MB }));
    expect(r).toMatchObject({ ok: false, kind: 'too_large' });
    await waitUntil(() => closedEarly);
    // socket buffers hold a few MB at most: far from the whole body
    expect(written).toBeLessThan(32 * MB);
  });

  it('should accept a body of exactly maxResponseBytes', async () => {
    backend.routes.set('/exact', (_req, res) => res.end(Buffer.alloc(1000, 3)));
    expect(await client.request(req({ url: `${backend.origin}/exact`, maxResponseBytes: 1000 }))).toMatchObject({ ok: true });
    expect(await client.request(req({ url: `${backend.origin}/exact`, maxResponseBytes: 999 }))).toMatchObject({ ok: false, kind: 'too_large' });
  });

  it('should refuse URLs it cannot or must not call', async () => {
    for (const url of ['ftp://example.com/x', 'not a url', 'http://user:pw@127.0.0.1/x', 'file:///etc/passwd']) {
      expect(await client.request(req({ url }))).toMatchObject({ ok: false, kind: 'bad_url' });
    }
    expect(await client.request(req({ url: `${backend.origin}/hello`, method: 'CONNECT' }))).toMatchObject({ ok: false, kind: 'bad_url' });
    expect(await client.request(req({ url: `${backend.origin}/hello`, headers: [['X-Bad', 'a\r\nb']] }))).toMatchObject({
      ok: false,
      kind: 'bad_url',
    });
  });

  it('should send forwarded headers and strip hop-by-hop ones end to end', async () => {
    const incoming: Array<[string, string]> = [
      ['Host', 'api.example.com'],
      ['Connection', 'keep-alive, X-Hop'],
      ['X-Hop', 'secret'],
      ['Keep-Alive', 'timeout=5'],
      ['Proxy-Authorization', 'Basic Zm9vOmJhcg=='],
      ['TE', 'trailers'],
      ['Upgrade', 'websocket'],
      ['Content-Length', '2'],
      ['Expect', '100-continue'],
      ['X-Forwarded-For', '203.0.113.9'],
      ['Accept', 'application/json'],
      ['Content-Type', 'application/json'],
    ];
    const headers = proxyRequestHeaders(incoming, { sourceIp: '198.51.100.4', proto: 'https', host: 'api.example.com', port: '443' });
    const r = await client.request(req({ method: 'POST', url: `${backend.origin}/echo`, headers, body: Buffer.from('{}') }));
    expect(r).toMatchObject({ ok: true, status: 200 });
    const raw = backend.seen.get('/echo') ?? [];
    const got = new Map<string, string[]>();
    for (let i = 0; i < raw.length; i += 2) {
      const k = (raw[i] as string).toLowerCase();
      got.set(k, [...(got.get(k) ?? []), raw[i + 1] as string]);
    }
    expect(got.get('host')).toEqual([`127.0.0.1:${backend.port}`]);
    expect(got.get('x-forwarded-for')).toEqual(['203.0.113.9, 198.51.100.4']);
    expect(got.get('x-forwarded-proto')).toEqual(['https']);
    expect(got.get('x-forwarded-port')).toEqual(['443']);
    expect(got.get('x-forwarded-host')).toEqual(['api.example.com']);
    expect(got.get('content-length')).toEqual(['2']);
    expect(got.get('accept')).toEqual(['application/json']);
    for (const gone of ['x-hop', 'keep-alive', 'proxy-authorization', 'te', 'upgrade', 'expect']) expect(got.has(gone)).toBe(false);
  });
});

async function waitUntil(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise<void>((resolve) => setTimeout(resolve, 10));
  }
}

describe('proxyRequestHeaders', () => {
  const info = { sourceIp: '10.1.2.3', proto: 'http' as const, host: 'gw.local', port: '8080' };

  it('should keep end-to-end headers in order and repeated ones repeated', () => {
    const out = proxyRequestHeaders(
      [
        ['Accept', 'a'],
        ['Cookie', 'x=1'],
        ['Cookie', 'y=2'],
        ['Authorization', 'Bearer t'],
      ],
      info,
    );
    expect(out).toEqual([
      ['Accept', 'a'],
      ['Cookie', 'x=1'],
      ['Cookie', 'y=2'],
      ['Authorization', 'Bearer t'],
      ['X-Forwarded-For', '10.1.2.3'],
      ['X-Forwarded-Proto', 'http'],
      ['X-Forwarded-Port', '8080'],
      ['X-Forwarded-Host', 'gw.local'],
    ]);
  });

  it('should strip every hop-by-hop header, including those named in any Connection header', () => {
    const out = proxyRequestHeaders(
      [
        ['connection', 'X-A'],
        ['Connection', ' x-b ,close'],
        ['X-A', '1'],
        ['x-b', '2'],
        ['Proxy-Connection', 'keep-alive'],
        ['Trailer', 'X-T'],
        ['Transfer-Encoding', 'chunked'],
        ['host', 'h'],
        ['content-length', '5'],
        ['X-Keep', 'yes'],
      ],
      info,
    );
    expect(out.map(([k]) => k)).toEqual(['X-Keep', 'X-Forwarded-For', 'X-Forwarded-Proto', 'X-Forwarded-Port', 'X-Forwarded-Host']);
  });

  it('should append the source IP to every incoming X-Forwarded-For and replace the other X-Forwarded-*', () => {
    const out = proxyRequestHeaders(
      [
        ['X-Forwarded-For', '1.1.1.1, 2.2.2.2'],
        ['x-forwarded-for', '3.3.3.3'],
        ['X-Forwarded-Proto', 'gopher'],
        ['X-Forwarded-Host', 'evil'],
        ['X-Forwarded-Port', '1'],
      ],
      info,
    );
    expect(out).toEqual([
      ['X-Forwarded-For', '1.1.1.1, 2.2.2.2, 3.3.3.3, 10.1.2.3'],
      ['X-Forwarded-Proto', 'http'],
      ['X-Forwarded-Port', '8080'],
      ['X-Forwarded-Host', 'gw.local'],
    ]);
  });

  it('should let extra headers replace same-named ones', () => {
    const out = proxyRequestHeaders([['Accept', 'a'], ['X-Api', 'client']], {
      ...info,
      extra: [
        ['x-api', 'mapped'],
        ['X-Request-Id', 'r1'],
      ],
    });
    expect(out.filter(([k]) => k.toLowerCase() === 'x-api')).toEqual([['x-api', 'mapped']]);
    expect(out).toContainEqual(['X-Request-Id', 'r1']);
    expect(out[0]).toEqual(['Accept', 'a']);
  });
});

describe('proxyResponseHeaders', () => {
  it('should strip hop-by-hop headers and Content-Length, keeping the rest in order', () => {
    expect(
      proxyResponseHeaders([
        ['Content-Type', 'text/html'],
        ['Connection', 'keep-alive, X-Internal'],
        ['Keep-Alive', 'timeout=5'],
        ['X-Internal', 'node-7'],
        ['Transfer-Encoding', 'chunked'],
        ['Content-Length', '10'],
        ['Proxy-Authenticate', 'Basic'],
        ['Set-Cookie', 'a=1'],
        ['Set-Cookie', 'b=2'],
        ['Upgrade', 'h2c'],
      ]),
    ).toEqual([
      ['Content-Type', 'text/html'],
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
    ]);
  });
});

describe('substituteUri', () => {
  const vars = { pathParameters: { id: 'a b/c?', proxy: 'docs/read me/ü.txt' }, stageVariables: { host: 'backend.internal:8080', base: 'v2' } };

  it('should fill stage variables raw and path parameters encoded', () => {
    expect(substituteUri('http://${stageVariables.host}/${stageVariables.base}/items/{id}', vars)).toEqual({
      ok: true,
      url: 'http://backend.internal:8080/v2/items/a%20b/c%3F',
    });
  });

  it('should keep the slashes of a greedy value and encode each segment', () => {
    expect(substituteUri('https://files.example.com/{proxy}', vars)).toEqual({
      ok: true,
      url: 'https://files.example.com/docs/read%20me/%C3%BC.txt',
    });
    expect(substituteUri('https://files.example.com/{proxy+}', vars)).toEqual({
      ok: true,
      url: 'https://files.example.com/docs/read%20me/%C3%BC.txt',
    });
  });

  it('should never let a greedy value climb out of the template path', () => {
    for (const proxy of ['../admin', 'a/../../admin', './x', 'a/.']) {
      const r = substituteUri('http://b.example.com/public/{proxy}', { pathParameters: { proxy }, stageVariables: undefined });
      expect(r.ok).toBe(false);
    }
    for (const proxy of ['%2e%2e/admin', '..%2fadmin', '...', 'a\\..\\b', '.hidden/..x']) {
      const r = substituteUri('http://b.example.com/public/{proxy}', { pathParameters: { proxy }, stageVariables: undefined });
      expect(r.ok).toBe(true);
      if (r.ok) expect(new URL(r.url).pathname.startsWith('/public/')).toBe(true);
    }
    const encoded = substituteUri('http://b.example.com/public/{proxy}', { pathParameters: { proxy: '%2e%2e/admin' }, stageVariables: undefined });
    expect(encoded).toEqual({ ok: true, url: 'http://b.example.com/public/%252e%252e/admin' });
  });

  it('should fail on a missing path parameter, a missing stage variable or an unknown variable', () => {
    expect(substituteUri('http://h/{nope}', vars)).toEqual({ ok: false, message: 'path parameter nope has no value' });
    expect(substituteUri('http://${stageVariables.nope}/', vars)).toEqual({ ok: false, message: 'stage variable nope is not defined' });
    expect(substituteUri('http://${stageVariables.host}/{id}', { pathParameters: null, stageVariables: undefined })).toMatchObject({ ok: false });
    expect(substituteUri('http://h/${context.requestId}', vars)).toMatchObject({ ok: false, message: expect.stringMatching(/unsupported variable/) });
    expect(substituteUri('http://h/{toString}', { pathParameters: {}, stageVariables: undefined })).toMatchObject({ ok: false });
  });

  it('should append the raw query string when asked', () => {
    const p = { pathParameters: null, stageVariables: undefined };
    expect(substituteUri('http://h/x', { ...p, query: 'a=1&b=%20' })).toEqual({ ok: true, url: 'http://h/x?a=1&b=%20' });
    expect(substituteUri('http://h/x?fixed=1', { ...p, query: 'a=1' })).toEqual({ ok: true, url: 'http://h/x?fixed=1&a=1' });
    expect(substituteUri('http://h/x', { ...p, query: '' })).toEqual({ ok: true, url: 'http://h/x' });
    expect(substituteUri('http://h/x', p)).toEqual({ ok: true, url: 'http://h/x' });
  });

  it('should not substitute inside substituted values', () => {
    const r = substituteUri('http://h/{id}/${stageVariables.v}', { pathParameters: { id: '{other}' }, stageVariables: { v: '{id}' } });
    expect(r).toEqual({ ok: true, url: 'http://h/%7Bother%7D/{id}' });
  });
});
