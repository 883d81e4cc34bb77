import net from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { clearRecorded, recorded, type StartedGateway, startGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/wait.ts';
import { connect, rejectedUpgrade } from '../helpers/ws-client.ts';

const API = `
name: wstest
stages:
  test:
    variables: { color: blue, backend: "http://127.0.0.1:1/x" }
  other: {}
limits:
  integrationTimeoutMillis: 400
  maxFrameBytes: 32768
  maxMessageBytes: 131072
websocket:
  routeSelectionExpression: $request.body.action
  routes:
    $connect: { integration: { type: LAMBDA, handler: handlers/connect.handler } }
    $disconnect: { integration: { type: LAMBDA, handler: handlers/disconnect.handler } }
    $default: { integration: { type: MOCK, response: { statusCode: 200, body: '{"route":"default"}' } }, routeResponse: true }
    echo: { integration: { type: LAMBDA, handler: handlers/echo.handler }, routeResponse: true }
    oneway: { integration: { type: LAMBDA, handler: handlers/echo.handler } }
    sync: { integration: { type: LAMBDA, handler: handlers/echo.syncHandler }, routeResponse: true }
    callback: { integration: { type: LAMBDA, handler: handlers/echo.callbackHandler }, routeResponse: true }
    notfound: { integration: { type: LAMBDA, handler: handlers/echo.notFound }, routeResponse: true }
    nothing: { integration: { type: LAMBDA, handler: handlers/echo.nothing }, routeResponse: true }
    throws: { integration: { type: LAMBDA, handler: handlers/fail.throws }, routeResponse: true }
    throwsSync: { integration: { type: LAMBDA, handler: handlers/fail.throwsSync } }
    hangs: { integration: { type: LAMBDA, handler: handlers/fail.hangs }, routeResponse: true }
    garbage: { integration: { type: LAMBDA, handler: handlers/fail.garbage }, routeResponse: true }
    badBody: { integration: { type: LAMBDA, handler: handlers/fail.badBody }, routeResponse: true }
    vars: { integration: { type: LAMBDA, handler: handlers/stagevars.handler }, routeResponse: true }
    postBack: { integration: { type: LAMBDA, handler: handlers/echo.postBack } }
    postOrder: { integration: { type: LAMBDA, handler: handlers/echo.postOrder }, routeResponse: true }
    postThenDelete: { integration: { type: LAMBDA, handler: handlers/echo.postThenDelete } }
    postFlood: { integration: { type: LAMBDA, handler: handlers/echo.postFlood }, routeResponse: true }
`;

let g: StartedGateway;
beforeAll(async () => {
  g = await startGateway(API);
});
afterAll(async () => {
  await g?.stop();
});
beforeEach(() => clearRecorded());

const ERROR_FRAME = /^\{"message": "([^"]+)", "connectionId":"([A-Za-z0-9_-]{15}=)", "requestId":"([A-Za-z0-9_-]{15}=)"\}$/;

describe('route selection', () => {
  it('routes by $request.body.action to the exact route key, with a MESSAGE event', async () => {
    const c = await connect(g.wsUrl());
    c.send({ action: 'echo', n: 1 });
    expect(await c.nextJson()).toEqual({ action: 'echo', n: 1 });
    const ev = recorded().find((e) => e.requestContext.eventType === 'MESSAGE')!;
    expect(ev.requestContext.routeKey).toBe('echo');
    expect(ev.requestContext.messageId).toMatch(/^[A-Za-z0-9_-]{15}=$/);
    expect(ev.requestContext.messageDirection).toBe('IN');
    expect(ev.requestContext.requestId).toBe(ev.requestContext.extendedRequestId);
    expect(ev.requestContext.stage).toBe('test');
    expect(ev.requestContext.requestTime).toMatch(/^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/);
    expect(ev.requestContext.identity).toMatchObject({ sourceIp: '127.0.0.1' });
    expect(ev.body).toBe('{"action":"echo","n":1}');
    expect(ev.isBase64Encoded).toBe(false);
    expect(ev.stageVariables).toEqual({ color: 'blue', backend: 'http://127.0.0.1:1/x' });
    expect(ev).not.toHaveProperty('headers');
    // Key order as in captured AWS MESSAGE events (handlers that log or hash the event see the same text).
    expect(Object.keys(ev)).toEqual(['requestContext', 'body', 'isBase64Encoded', 'stageVariables']);
    expect(Object.keys(ev.requestContext)).toEqual([
      'routeKey',
      'eventType',
      'extendedRequestId',
      'requestTime',
      'messageDirection',
      'stage',
      'connectedAt',
      'requestTimeEpoch',
      'identity',
      'requestId',
      'domainName',
      'connectionId',
      'apiId',
      'messageId',
    ]);
    await c.close();
  });

  it('context.gatehouse.postToConnection: a string or UTF-8 bytes arrive as the same text frame, other bytes as binary', async () => {
    const c = await connect(g.wsUrl());
    const data = 'héllo ✓ 😀 "quoted" \\ end';
    c.send({ action: 'postBack', data });
    expect(await c.next()).toBe(data);
    expect(await c.next()).toBe(data);
    const raw = await c.nextRaw();
    expect(raw.binary).toBe(true);
    expect([...raw.data]).toEqual([0xff, 0x00, 0xfe]);
    await c.close();
  });

  it("posts to the caller arrive in order, before the route response", async () => {
    const c = await connect(g.wsUrl());
    c.send({ action: 'postOrder' });
    expect([await c.next(), await c.next(), await c.next(), await c.next()]).toEqual(['p1', 'p2', 'p3', 'reply']);
    await c.close();
  });

  it('a post followed by a delete of the same connection: the message arrives, then the close', async () => {
    const c = await connect(g.wsUrl());
    c.send({ action: 'postThenDelete' });
    expect(await c.next()).toBe('last words');
    expect((await c.closed).code).toBe(1000);
  });

  it('posts queued in one turn count against the send buffer: past 1 MiB they get LimitExceededException', async () => {
    const c = await connect(g.wsUrl());
    c.send({ action: 'postFlood' });
    const received: number[] = [];
    for (;;) {
      const m = await c.next();
      if (m.startsWith('[')) {
        const outcomes = JSON.parse(m) as string[];
        const ok = outcomes.filter((o) => o === 'ok').length;
        expect(ok).toBe(10); // 10 x 100 KB fit in the 1 MiB send buffer
        expect(outcomes.slice(ok).every((o) => o === 'LimitExceededException')).toBe(true);
        expect(received).toHaveLength(ok);
        break;
      }
      received.push(m.length);
    }
    expect(received.every((n) => n === 100 * 1024)).toBe(true);
    await c.close();
  });

  it('sends unknown actions, non-JSON text and $-prefixed keys to $default', async () => {
    const c = await connect(g.wsUrl());
    for (const m of ['{"action":"unknown"}', 'plain text', '{"action":"$connect"}', '{broken json', '[1,2]', '{"no":"action"}']) {
      c.send(m);
      expect(await c.next()).toBe('{"route":"default"}');
    }
    await c.close();
  });

  it('keeps connectedAt equal across every event of a connection', async () => {
    const c = await connect(g.wsUrl());
    c.send({ action: 'echo' });
    await c.next();
    c.send({ action: 'echo' });
    await c.next();
    await c.close();
    await waitFor(() => recorded().some((e) => e.requestContext.eventType === 'DISCONNECT'));
    const times = new Set(recorded().map((e) => e.requestContext.connectedAt));
    expect(times.size).toBe(1);
  });
});

describe('two-way and one-way routes', () => {
  it('returns the Lambda body on two-way routes, even for a 4xx statusCode', async () => {
    const c = await connect(g.wsUrl());
    c.send({ action: 'notfound' });
    expect(await c.next()).toBe('{"error":"nope"}');
    await c.close();
  });

  it('sends nothing on a one-way route, nor when a two-way Lambda returns nothing', async () => {
    const c = await connect(g.wsUrl());
    c.send({ action: 'oneway' });
    c.send({ action: 'nothing' });
    c.send({ action: 'echo', marker: 'after' });
    // Replies are in order per connection: the first frame must be the echo.
    expect(await c.nextJson()).toEqual({ action: 'echo', marker: 'after' });
    await c.expectSilence(200);
    await c.close();
  });

  it('supports sync and callback-style handlers', async () => {
    const c = await connect(g.wsUrl());
    c.send({ action: 'sync' });
    expect(await c.next()).toBe('sync:{"action":"sync"}');
    c.send({ action: 'callback' });
    expect(await c.next()).toBe('cb:{"action":"callback"}');
    await c.close();
  });
});

describe('integration failures', () => {
  it('answers a throwing handler with the Internal server error frame and keeps the socket open', async () => {
    const c = await connect(g.wsUrl());
    c.send({ action: 'throws' });
    const m = ERROR_FRAME.exec(await c.next());
    expect(m?.[1]).toBe('Internal server error');
    c.send({ action: 'throwsSync' });
    expect(ERROR_FRAME.exec(await c.next())?.[1]).toBe('Internal server error');
    c.send({ action: 'echo', still: 'open' });
    expect(await c.nextJson()).toEqual({ action: 'echo', still: 'open' });
    await c.close();
  });

  it('answers a handler past the integration timeout with Endpoint request timed out', async () => {
    const c = await connect(g.wsUrl());
    const other = await connect(g.wsUrl());
    c.send({ action: 'hangs' });
    // Another connection is not delayed while the first waits for its timeout.
    other.send({ action: 'echo', other: true });
    expect(await other.nextJson()).toEqual({ action: 'echo', other: true });
    const frame = await c.next(3000);
    expect(ERROR_FRAME.exec(frame)?.[1]).toBe('Endpoint request timed out');
    await Promise.all([c.close(), other.close()]);
  });

  it('treats a handler that returns garbage as an integration error', async () => {
    const c = await connect(g.wsUrl());
    c.send({ action: 'garbage' });
    expect(ERROR_FRAME.exec(await c.next())?.[1]).toBe('Internal server error');
    c.send({ action: 'badBody' });
    expect(ERROR_FRAME.exec(await c.next())?.[1]).toBe('Internal server error');
    await c.close();
  });
});

describe('binary msgpack frames', () => {
  it('decodes msgpack, routes it like JSON and replies in msgpack', async () => {
    const c = await connect(g.wsUrl());
    c.sendBinary({ action: 'echo', value: 42, list: [1, 2] });
    expect(await c.nextMsgpack()).toEqual({ action: 'echo', value: 42, list: [1, 2] });
    c.sendBinary({ action: 'whatever' });
    expect(await c.nextMsgpack()).toEqual({ route: 'default' });
    await c.close();
  });

  it('answers invalid msgpack with an error frame, not a crash', async () => {
    const c = await connect(g.wsUrl());
    c.ws.send(Buffer.from([0xc1, 0xff, 0x00]), { binary: true });
    const err = await c.nextMsgpack<{ message: string; connectionId: string }>();
    expect(err.message).toBe('Invalid msgpack payload');
    c.sendBinary({ action: 'echo', ok: true });
    expect(await c.nextMsgpack()).toEqual({ action: 'echo', ok: true });
    await c.close();
  });
});

describe('$connect', () => {
  it('gives the CONNECT event headers, multiValueHeaders and query maps', async () => {
    const c = await connect(g.wsUrl('test', '?a=1&a=2&b=x%20y'), { headers: { 'X-Custom-Header': 'v1', 'User-Agent': 'gatehouse-test' } });
    const ev = recorded().find((e) => e.requestContext.eventType === 'CONNECT')!;
    expect(ev.requestContext.routeKey).toBe('$connect');
    expect(ev.requestContext).not.toHaveProperty('messageId');
    expect(ev.headers).toMatchObject({ Host: `127.0.0.1:${g.port}`, 'Sec-WebSocket-Version': '13', 'X-Custom-Header': 'v1', 'X-Forwarded-For': '127.0.0.1' });
    expect((ev.headers as Record<string, string>)['Sec-WebSocket-Key']).toMatch(/==$/);
    expect(ev.multiValueHeaders).toMatchObject({ 'X-Custom-Header': ['v1'] });
    expect(ev.queryStringParameters).toEqual({ a: '2', b: 'x y' });
    expect(ev.multiValueQueryStringParameters).toEqual({ a: ['1', '2'], b: ['x y'] });
    expect(ev.isBase64Encoded).toBe(false);
    expect(ev).not.toHaveProperty('body');
    expect(ev.requestContext.identity).toMatchObject({ sourceIp: '127.0.0.1', userAgent: 'gatehouse-test' });
    await c.close();
  });

  it('handles query keys that are Object.prototype names', async () => {
    const c = await connect(g.wsUrl('test', '?constructor=1&__proto__=2&toString=3'));
    const ev = recorded().find((e) => e.requestContext.eventType === 'CONNECT')!;
    expect(ev.queryStringParameters).toEqual({ constructor: '1', ['__proto__']: '2', toString: '3' });
    await c.close();
  });

  it('omits the query maps when the URL has no query', async () => {
    const c = await connect(g.wsUrl());
    const ev = recorded().find((e) => e.requestContext.eventType === 'CONNECT')!;
    expect(ev).not.toHaveProperty('queryStringParameters');
    await c.close();
  });

  it.each([400, 401, 403, 429])('rejects the upgrade with the handler status %i', async (status) => {
    const r = await rejectedUpgrade(g.wsUrl('test', `?status=${status}`));
    expect(r.status).toBe(status);
    expect(JSON.parse(r.body)).toEqual({ message: `rejected with ${status}` });
  });

  it('rejects with 500 when $connect throws and 502 when it times out', async () => {
    expect((await rejectedUpgrade(g.wsUrl('test', '?throw=1'))).status).toBe(500);
    expect((await rejectedUpgrade(g.wsUrl('test', '?sleep=2000'))).status).toBe(502);
  });

  it('puts headers returned on 2xx into the 101 response (Sec-WebSocket-Protocol echo)', async () => {
    const c = await connect(g.wsUrl(), { protocols: ['chat.v1', 'chat.v2'] });
    expect(c.protocol).toBe('chat.v1');
    await c.close();
  });

  it('answers 410 to a post from inside $connect: the connection does not exist yet', async () => {
    const c = await connect(g.wsUrl('test', '?postself=1'));
    expect((globalThis as { __postSelf?: string }).__postSelf).toBe('GoneException:410');
    await c.close();
  });

  it('answers 404 on an unknown stage and on deeper paths', async () => {
    expect((await rejectedUpgrade(g.wsUrl('nope'))).status).toBe(404);
    expect((await rejectedUpgrade(g.wsUrl('test/extra'))).status).toBe(404);
  });

  it('answers 426 for a WebSocket version other than 13, 400 for a malformed key', async () => {
    const raw = (headers: string) =>
      new Promise<string>((resolve, reject) => {
        const s = net.connect(g.port, '127.0.0.1', () => {
          s.write(`GET /test HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${headers}\r\n`);
        });
        let buf = '';
        s.on('data', (d) => {
          buf += d.toString();
          if (buf.includes('\r\n\r\n')) {
            s.destroy();
            resolve(buf.split('\r\n')[0]!);
          }
        });
        s.on('error', reject);
      });
    expect(await raw('Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n')).toMatch(/^HTTP\/1.1 426/);
    expect(await raw('Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n')).toMatch(/^HTTP\/1.1 400/);
  });
});

describe('$disconnect', () => {
  it('fires after a client close with the close code and the odd fixed header set', async () => {
    const c = await connect(g.wsUrl());
    const id = (recorded().find((e) => e.requestContext.eventType === 'CONNECT')!.requestContext.connectionId);
    await c.close(4000, 'bye');
    const ev = await waitFor(() => recorded().find((e) => e.requestContext.eventType === 'DISCONNECT'));
    expect(ev.requestContext).toMatchObject({ routeKey: '$disconnect', connectionId: id, disconnectStatusCode: 4000, disconnectReason: 'bye' });
    expect(ev.headers).toEqual({ Host: `127.0.0.1:${g.port}`, 'x-api-key': '', 'X-Forwarded-For': '', 'x-restapi': '' });
    expect(ev).not.toHaveProperty('body');
  });

  it('reports 1005 with AWS reason when the client sends no status code', async () => {
    const c = await connect(g.wsUrl());
    c.ws.close();
    await c.closed;
    const ev = await waitFor(() => recorded().find((e) => e.requestContext.eventType === 'DISCONNECT'));
    expect(ev.requestContext).toMatchObject({ disconnectStatusCode: 1005, disconnectReason: 'Client-side close frame status not set' });
  });
});

describe('limits', () => {
  it('closes with 1009 on a frame over 32 KB and reports it in $disconnect', async () => {
    const c = await connect(g.wsUrl());
    c.send('x'.repeat(32 * 1024 + 1));
    expect((await c.closed).code).toBe(1009);
    const ev = await waitFor(() => recorded().find((e) => e.requestContext.eventType === 'DISCONNECT'));
    expect(ev.requestContext.disconnectStatusCode).toBe(1009);
  });

  it('accepts a message of exactly 32 KB', async () => {
    const c = await connect(g.wsUrl());
    const body = JSON.stringify({ action: 'echo', pad: '' });
    const padded = JSON.stringify({ action: 'echo', pad: 'p'.repeat(32 * 1024 - body.length) });
    expect(padded.length).toBe(32 * 1024);
    c.send(padded);
    expect((await c.next()).length).toBe(32 * 1024);
    await c.close();
  });

  it('ends a huge message without buffering it, and other connections carry on', async () => {
    const other = await connect(g.wsUrl());
    const c = await connect(g.wsUrl());
    c.send('y'.repeat(1024 * 1024));
    const closed = await c.closed;
    expect([1006, 1009]).toContain(closed.code);
    other.send({ action: 'echo', alive: true });
    expect(await other.nextJson()).toEqual({ action: 'echo', alive: true });
    await other.close();
  });
});

describe('stages', () => {
  it('serves several stages, each with its own stage variables', async () => {
    const a = await connect(g.wsUrl('test'));
    const b = await connect(g.wsUrl('other'));
    a.send({ action: 'vars' });
    b.send({ action: 'vars' });
    expect(await a.nextJson()).toEqual({ color: 'blue', backend: 'http://127.0.0.1:1/x' });
    expect(await b.next()).toBe('null');
    await Promise.all([a.close(), b.close()]);
  });
});

describe('many connections', () => {
  it('opens and closes 1000 connections at once and fires every $disconnect exactly once', async () => {
    const N = 1000;
    const clients = await Promise.all(Array.from({ length: N }, () => connect(g.wsUrl())));
    const connects = recorded().filter((e) => e.requestContext.eventType === 'CONNECT');
    expect(connects.length).toBe(N);
    await Promise.all(clients.map((c) => c.close(1000, '')));
    await waitFor(() => recorded().filter((e) => e.requestContext.eventType === 'DISCONNECT').length >= N, { timeoutMs: 20_000 });
    await g.gw.ws.settled();
    const ids = recorded()
      .filter((e) => e.requestContext.eventType === 'DISCONNECT')
      .map((e) => e.requestContext.connectionId);
    expect(ids.length).toBe(N);
    expect(new Set(ids).size).toBe(N);
    expect(new Set(ids)).toEqual(new Set(connects.map((e) => e.requestContext.connectionId)));
    expect(g.gw.ws.sessions.size).toBe(0);
  });
});

describe('metrics', () => {
  it('exposes ConnectCount, MessageCount, errors and IntegrationLatency by stage and route', async () => {
    const c = await connect(g.wsUrl());
    c.send({ action: 'echo' });
    await c.next();
    c.send({ action: 'throws' });
    await c.next();
    await c.close();
    const text = await (await fetch(g.httpUrl('/metrics'))).text();
    expect(text).toMatch(/ConnectCount\{apiId="[a-z0-9]{10}",stage="test",route="\$connect"\} \d+/);
    expect(text).toMatch(/MessageCount\{apiId="[a-z0-9]{10}",stage="test",route="echo"\} \d+/);
    expect(text).toMatch(/ExecutionError\{apiId="[a-z0-9]{10}",stage="test",route="throws"\} \d+/);
    expect(text).toMatch(/IntegrationError\{[^}]*route="throws"\} \d+/);
    expect(text).toMatch(/ClientError\{[^}]*\} \d+/);
    expect(text).toMatch(/IntegrationLatency_bucket\{[^}]*route="echo",le="1"\} \d+/);
  });

  it('serves the admin endpoints only on the admin port when one is given', async () => {
    const g2 = await startGateway(API, { adminPort: 0 });
    try {
      expect(g2.gw.adminPort).not.toBe(g2.port);
      const admin = (p: string) => fetch(`http://127.0.0.1:${g2.gw.adminPort}${p}`);
      expect((await admin('/metrics')).status).toBe(200);
      expect((await admin('/healthz')).status).toBe(200);
      expect((await admin('/readyz')).status).toBe(200);
      expect((await admin('/test/@connections/x')).status).toBe(404);
      expect((await fetch(g2.httpUrl('/metrics'))).status).toBe(404);
    } finally {
      await g2.stop();
    }
  });

  it('answers /healthz and /readyz', async () => {
    expect((await fetch(g.httpUrl('/healthz'))).status).toBe(200);
    const r = await fetch(g.httpUrl('/readyz'));
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ status: 'ready', cluster: 'memory' });
  });
});
