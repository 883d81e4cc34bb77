import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort, rawHeader, type SeenRequest, startBackend, type TestBackend } from '../fixtures/rest-api/backend.ts';
import { type StartedGateway, startGateway, TEST_TOKEN } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/wait.ts';
import { connect, rejectedUpgrade, type TestClient } from '../helpers/ws-client.ts';

/*
 * WebSocket routes with HTTP_PROXY integrations against a real node:http backend: the backend
 * gets each message as a POST with the connection id, route key and request id in headers, its
 * reply is the route response, and it pushes later through @connections. `$connect` with
 * HTTP_PROXY accepts or rejects the upgrade by the backend's status.
 */

const HANG_TIMEOUT_MS = 300;
const ERROR_FRAME = /^\{"message": "([^"]+)", "connectionId":"([A-Za-z0-9_-]{15}=)", "requestId":"([A-Za-z0-9_-]{15}=)"\}$/;
const ID = /^[A-Za-z0-9_-]{15}=$/;

function api(b: TestBackend, refused: number): string {
  return `
name: wsbackends
stages:
  test: { variables: { connectUrl: "${b.origin}/connect/ok", backend: "${b.origin}" } }
  deny: { variables: { connectUrl: "${b.origin}/connect/deny", backend: "${b.origin}" } }
  broken: { variables: { connectUrl: "http://127.0.0.1:${refused}/connect", backend: "${b.origin}" } }
limits:
  integrationTimeoutMillis: 3000
websocket:
  routeSelectionExpression: $request.body.action
  routes:
    $connect: { integration: { type: HTTP_PROXY, uri: "\${stageVariables.connectUrl}" } }
    $disconnect: { integration: { type: HTTP_PROXY, uri: "${b.origin}/ws/disconnect" } }
    $default: { integration: { type: MOCK, response: { statusCode: 200, body: "default" } }, routeResponse: true }
    ask: { integration: { type: HTTP_PROXY, uri: "\${stageVariables.backend}/ws/ask" }, routeResponse: true }
    push: { integration: { type: HTTP_PROXY, uri: "${b.origin}/ws/push" }, routeResponse: true }
    oneway: { integration: { type: HTTP_PROXY, uri: "${b.origin}/ws/oneway" } }
    down: { integration: { type: HTTP_PROXY, uri: "http://127.0.0.1:${refused}/ws" }, routeResponse: true }
    slow: { integration: { type: HTTP_PROXY, uri: "${b.origin}/ws/hang", timeoutInMillis: ${HANG_TIMEOUT_MS} }, routeResponse: true }
`;
}

let b: TestBackend;
let g: StartedGateway;
/** Results of the backend's own @connections calls. */
const pushes: Array<{ status: number; body: string }> = [];

beforeAll(async () => {
  b = await startBackend();
  const refused = await closedPort();
  b.route('/connect/ok', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
  b.route('/connect/deny', (_req, res) => {
    res.writeHead(403, { 'content-type': 'application/json', 'x-deny-reason': 'banned' });
    res.end('{"message":"Forbidden"}');
  });
  b.route('/ws/ask', (req, res, seen) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ answer: JSON.parse(seen.body.toString()) as unknown, connectionId: req.headers['x-gatehouse-connection-id'] }));
  });
  b.route('/ws/push', (req, res, seen) => {
    const id = String(req.headers['x-gatehouse-connection-id']);
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('queued', () => {
      // Later, the backend pushes to the connection through the management API.
      fetch(g.httpUrl(`/test/@connections/${encodeURIComponent(id)}`), {
        method: 'POST',
        headers: { Authorization: `Bearer ${TEST_TOKEN}` },
        body: `pushed:${seen.body.toString()}`,
      }).then(
        async (r) => pushes.push({ status: r.status, body: await r.text() }),
        (err: unknown) => pushes.push({ status: 0, body: String(err) }),
      );
    });
  });
  b.route('/ws/oneway', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('not sent to the client');
  });
  b.route('/ws/hang', () => {
    // never answers
  });
  g = await startGateway(api(b, refused));
});

afterAll(async () => {
  await g?.stop();
  await b?.stop();
});

/** Connects and returns the client with its connection id (learnt from the $connect request). */
async function open(): Promise<{ c: TestClient; id: string; connectRequest: SeenRequest }> {
  const mark = b.requests.length;
  const c = await connect(g.wsUrl('test'));
  const connectRequest = b.requests.slice(mark).find((r) => r.url === '/connect/ok');
  expect(connectRequest).toBeDefined();
  const id = rawHeader(connectRequest!.rawHeaders, 'x-gatehouse-connection-id')!;
  return { c, id, connectRequest: connectRequest! };
}

describe('$connect with HTTP_PROXY', () => {
  it('accepts the upgrade when the backend answers 200, telling it the connection', async () => {
    const { c, id, connectRequest } = await open();
    expect(id).toMatch(ID);
    expect(connectRequest.method).toBe('POST');
    expect(rawHeader(connectRequest.rawHeaders, 'x-gatehouse-route-key')).toBe('$connect');
    expect(rawHeader(connectRequest.rawHeaders, 'x-gatehouse-event-type')).toBe('CONNECT');
    expect(rawHeader(connectRequest.rawHeaders, 'x-gatehouse-stage')).toBe('test');
    expect(rawHeader(connectRequest.rawHeaders, 'x-gatehouse-request-id')).toMatch(ID);
    c.send('hello');
    expect(await c.next()).toBe('default');
    await c.close();
  });

  it('rejects the upgrade with 403 when the backend answers 403', async () => {
    const mark = b.requests.length;
    const r = await rejectedUpgrade(g.wsUrl('deny'));
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toEqual({ message: 'Forbidden' });
    expect(r.headers['x-deny-reason']).toBe('banned');
    // One Date header (the gateway's), not the backend's as well.
    expect(r.headers.date).toMatch(/^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
    expect(b.requests.slice(mark).some((s) => s.url === '/connect/deny')).toBe(true);
  });

  it('rejects the upgrade with 500 when the $connect backend is down', async () => {
    const r = await rejectedUpgrade(g.wsUrl('broken'));
    expect(r.status).toBe(500);
    expect(JSON.parse(r.body)).toEqual({ message: 'Internal server error' });
  });
});

describe('message routes with HTTP_PROXY', () => {
  it('POSTs the message with the connection id, route key and request id; the reply is the route response', async () => {
    const { c, id } = await open();
    const mark = b.requests.length;
    c.send({ action: 'ask', q: 'why?' });
    expect(await c.nextJson()).toEqual({ answer: { action: 'ask', q: 'why?' }, connectionId: id });
    const seen = b.requests.slice(mark).find((r) => r.url === '/ws/ask')!;
    expect(seen.method).toBe('POST');
    expect(seen.body.toString()).toBe('{"action":"ask","q":"why?"}');
    expect(rawHeader(seen.rawHeaders, 'content-type')).toBe('application/json');
    expect(rawHeader(seen.rawHeaders, 'x-gatehouse-connection-id')).toBe(id);
    expect(rawHeader(seen.rawHeaders, 'x-gatehouse-route-key')).toBe('ask');
    expect(rawHeader(seen.rawHeaders, 'x-gatehouse-event-type')).toBe('MESSAGE');
    expect(rawHeader(seen.rawHeaders, 'x-gatehouse-request-id')).toMatch(ID);
    expect(rawHeader(seen.rawHeaders, 'x-gatehouse-stage')).toBe('test');
    expect(rawHeader(seen.rawHeaders, 'x-forwarded-for')).toBe('127.0.0.1');

    // Every message gets its own request id.
    c.send({ action: 'ask', q: 'again' });
    await c.nextJson();
    const ids = b.requests
      .slice(mark)
      .filter((r) => r.url === '/ws/ask')
      .map((r) => rawHeader(r.rawHeaders, 'x-gatehouse-request-id'));
    expect(new Set(ids).size).toBe(2);
    await c.close();
  });

  it('sends nothing back on a one-way route, though the backend got the message', async () => {
    const { c } = await open();
    const mark = b.requests.length;
    c.send({ action: 'oneway', n: 1 });
    // Once the backend has answered the one-way message, a two-way marker: its reply must be
    // the next frame (a reply to the one-way route would have come first).
    await waitFor(() => b.requests.slice(mark).some((r) => r.url === '/ws/oneway'), { message: 'backend got the one-way message' });
    expect(b.requests.slice(mark).find((r) => r.url === '/ws/oneway')?.body.toString()).toBe('{"action":"oneway","n":1}');
    c.send({ action: 'ask', marker: true });
    expect(await c.nextJson()).toMatchObject({ answer: { marker: true } });
    await c.close();
  });

  it('speaks msgpack to a binary client: the backend gets JSON, the client gets msgpack back', async () => {
    const { c, id } = await open();
    const mark = b.requests.length;
    c.sendBinary({ action: 'ask', n: [1, 2] });
    expect(await c.nextMsgpack()).toEqual({ answer: { action: 'ask', n: [1, 2] }, connectionId: id });
    expect(b.requests.slice(mark).find((r) => r.url === '/ws/ask')?.body.toString()).toBe('{"action":"ask","n":[1,2]}');
    await c.close();
  });

  it('answers an Internal server error frame when the backend is down', async () => {
    const { c, id } = await open();
    c.send({ action: 'down' });
    const m = ERROR_FRAME.exec(await c.next());
    expect(m?.[1]).toBe('Internal server error');
    expect(m?.[2]).toBe(id);
    // The connection stays open and usable.
    c.send({ action: 'ask', still: true });
    expect(await c.nextJson()).toMatchObject({ answer: { still: true } });
    await c.close();
  });

  it('answers an Endpoint request timed out frame when the backend hangs, within the timeout', async () => {
    const { c, id } = await open();
    const started = Date.now();
    c.send({ action: 'slow' });
    // Meanwhile, other messages of the same connection are answered.
    c.send({ action: 'ask', meanwhile: true });
    expect(await c.nextJson()).toMatchObject({ answer: { meanwhile: true } });
    const m = ERROR_FRAME.exec(await c.next(HANG_TIMEOUT_MS + 3000));
    const elapsed = Date.now() - started;
    expect(m?.[1]).toBe('Endpoint request timed out');
    expect(m?.[2]).toBe(id);
    expect(elapsed).toBeGreaterThanOrEqual(HANG_TIMEOUT_MS - 25);
    expect(elapsed).toBeLessThan(HANG_TIMEOUT_MS + 1500);
    await c.close();
  });

  it('lets the backend push to the connection afterwards through @connections', async () => {
    const { c } = await open();
    const before = pushes.length;
    c.send({ action: 'push', n: 7 });
    // The route response and the push travel on different connections: either may come first.
    const frames = [await c.next(), await c.next()];
    expect(frames.sort()).toEqual(['pushed:{"action":"push","n":7}', 'queued']);
    await waitFor(() => pushes.length > before, { message: 'the backend push completed' });
    expect(pushes[before]?.status).toBe(200);
    await c.close();
  });

  it('tells the $disconnect backend when the client leaves', async () => {
    const { c, id } = await open();
    await c.close();
    const seen = await waitFor(
      () => b.requests.find((r) => r.url === '/ws/disconnect' && rawHeader(r.rawHeaders, 'x-gatehouse-connection-id') === id),
      { message: '$disconnect reached the backend' },
    );
    expect(rawHeader(seen.rawHeaders, 'x-gatehouse-event-type')).toBe('DISCONNECT');
    expect(rawHeader(seen.rawHeaders, 'x-gatehouse-route-key')).toBe('$disconnect');
  });
});
