import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  ForbiddenException,
  GetConnectionCommand,
  GoneException,
  PayloadTooLargeException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { clearRecorded, recorded, type StartedGateway, startGateway, TEST_KEYS, TEST_TOKEN } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/wait.ts';
import { connect, type TestClient } from '../helpers/ws-client.ts';

const API = `
name: mgmt
stages:
  test: {}
  other: {}
limits:
  maxSendBufferBytes: 65536
websocket:
  routeSelectionExpression: $request.body.action
  routes:
    $connect: { integration: { type: LAMBDA, handler: handlers/connect.handler } }
    $disconnect: { integration: { type: LAMBDA, handler: handlers/disconnect.handler } }
    $default: { integration: { type: MOCK, response: { statusCode: 200, body: 'ok' } }, routeResponse: true }
`;

let g: StartedGateway;
let sdk: ApiGatewayManagementApiClient;
beforeAll(async () => {
  g = await startGateway(API);
  sdk = new ApiGatewayManagementApiClient({
    endpoint: g.httpUrl('/test'),
    region: 'eu-west-1',
    credentials: TEST_KEYS,
    maxAttempts: 1,
  });
});
afterAll(async () => {
  sdk?.destroy();
  await g?.stop();
});
beforeEach(() => clearRecorded());

async function connected(stage = 'test'): Promise<{ c: TestClient; id: string }> {
  clearRecorded();
  const c = await connect(g.wsUrl(stage), { headers: { 'User-Agent': 'mgmt-test/1.0' } });
  const id = recorded().find((e) => e.requestContext.eventType === 'CONNECT')!.requestContext.connectionId;
  return { c, id };
}

describe('@connections with the AWS SDK v3 client, unmodified', () => {
  it('PostToConnection delivers the data and answers 200', async () => {
    const { c, id } = await connected();
    const out = await sdk.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from('{"hello":"world"}') }));
    expect(out.$metadata.httpStatusCode).toBe(200);
    expect(await c.next()).toBe('{"hello":"world"}');
    await c.close();
  });

  it('GetConnection describes the connection with RFC 3339 times', async () => {
    const { c, id } = await connected();
    const before = Date.now();
    c.send('touch');
    await c.next();
    const out = await sdk.send(new GetConnectionCommand({ ConnectionId: id }));
    expect(out.Identity).toEqual({ SourceIp: '127.0.0.1', UserAgent: 'mgmt-test/1.0' });
    expect(out.ConnectedAt).toBeInstanceOf(Date);
    expect(out.LastActiveAt!.getTime()).toBeGreaterThanOrEqual(before - 5);
    expect(out.LastActiveAt!.getTime()).toBeGreaterThanOrEqual(out.ConnectedAt!.getTime());
    await c.close();
  });

  it('DeleteConnection closes the client with 1000 and fires $disconnect', async () => {
    const { c, id } = await connected();
    const out = await sdk.send(new DeleteConnectionCommand({ ConnectionId: id }));
    expect(out.$metadata.httpStatusCode).toBe(204);
    expect((await c.closed).code).toBe(1000);
    const ev = await waitFor(() => recorded().find((e) => e.requestContext.eventType === 'DISCONNECT'));
    expect(ev.requestContext).toMatchObject({ connectionId: id, disconnectStatusCode: 1000, disconnectReason: 'Connection Closed Normally' });
  });

  it('throws GoneException (410) for a closed or unknown connection, for all three calls', async () => {
    const { c, id } = await connected();
    await c.close();
    await waitFor(() => !g.gw.ws.sessions.has(id));
    for (const cmd of [
      new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from('x') }),
      new GetConnectionCommand({ ConnectionId: id }),
      new DeleteConnectionCommand({ ConnectionId: id }),
      new PostToConnectionCommand({ ConnectionId: 'AAAAAAAAAAAAAAA=', Data: Buffer.from('x') }),
    ]) {
      const err = await sdk.send(cmd as PostToConnectionCommand).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GoneException);
      expect((err as GoneException).$metadata.httpStatusCode).toBe(410);
      expect((err as GoneException).$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
    }
  });

  it('throws ForbiddenException (403) for a bad signature or unknown key', async () => {
    const { c, id } = await connected();
    for (const credentials of [
      { accessKeyId: TEST_KEYS.accessKeyId, secretAccessKey: 'wrong-secret-000000' },
      { accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: TEST_KEYS.secretAccessKey },
    ]) {
      const bad = new ApiGatewayManagementApiClient({ endpoint: g.httpUrl('/test'), region: 'eu-west-1', credentials, maxAttempts: 1 });
      const err = await bad.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from('x') })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ForbiddenException);
      expect((err as ForbiddenException).$metadata.httpStatusCode).toBe(403);
      bad.destroy();
    }
    await c.expectSilence(100);
    await c.close();
  });

  it('throws PayloadTooLargeException (413) for data over 128 KB', async () => {
    const { c, id } = await connected();
    const err = await sdk.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.alloc(131073, 97) })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadTooLargeException);
    // Exactly 128 KB is accepted.
    await sdk.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.alloc(131072, 97) }));
    expect((await c.next()).length).toBe(131072);
    await c.close();
  });

  it('does not reach a connection of another stage through this stage', async () => {
    const { c, id } = await connected('other');
    const err = await sdk.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from('x') })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GoneException);
    await c.close();
  });
});

describe('@connections over raw HTTP', () => {
  const auth = { Authorization: `Bearer ${TEST_TOKEN}` };

  it('accepts %40connections and a percent-encoded id', async () => {
    const { c, id } = await connected();
    const r = await fetch(g.httpUrl(`/test/%40connections/${encodeURIComponent(id)}`), { method: 'POST', headers: auth, body: 'via %40' });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-amzn-requestid')).toMatch(/^[0-9a-f-]{36}$/);
    expect(await c.next()).toBe('via %40');
    await c.close();
  });

  it('sends invalid UTF-8 as a binary frame', async () => {
    const { c, id } = await connected();
    const r = await fetch(g.httpUrl(`/test/@connections/${encodeURIComponent(id)}`), { method: 'POST', headers: auth, body: new Uint8Array([0xff, 0xfe, 0x00]) });
    expect(r.status).toBe(200);
    const m = await c.nextRaw();
    expect(m.binary).toBe(true);
    expect([...m.data]).toEqual([0xff, 0xfe, 0x00]);
    await c.close();
  });

  it('answers 403 ForbiddenException without credentials and with a wrong token', async () => {
    const { c, id } = await connected();
    for (const headers of [{}, { Authorization: 'Bearer nope' }, { Authorization: 'AWS4-HMAC-SHA256 garbage' }]) {
      const r = await fetch(g.httpUrl(`/test/@connections/${encodeURIComponent(id)}`), { method: 'POST', headers, body: 'x' });
      expect(r.status).toBe(403);
      expect(r.headers.get('x-amzn-errortype')).toBe('ForbiddenException');
      expect(await r.json()).toEqual({ message: 'Forbidden' });
    }
    await c.close();
  });

  it('answers 410 GoneException with a JSON body for an unknown id and 403 for an unknown stage', async () => {
    const r = await fetch(g.httpUrl('/test/@connections/doesnotexist'), { headers: auth });
    expect(r.status).toBe(410);
    expect(r.headers.get('x-amzn-errortype')).toBe('GoneException');
    expect(await r.json()).toHaveProperty('message');
    const s = await fetch(g.httpUrl('/nostage/@connections/doesnotexist'), { headers: auth });
    expect(s.status).toBe(403);
  });

  it('answers 413 while reading an oversized body, without buffering it', async () => {
    const r = await fetch(g.httpUrl('/test/@connections/AAAAAAAAAAAAAAA='), { method: 'POST', headers: auth, body: Buffer.alloc(4 * 1024 * 1024) }).catch(
      (e: unknown) => e,
    );
    // The gateway answers 413 and closes; depending on timing fetch sees the 413 or a reset.
    if (r instanceof Response) {
      expect(r.status).toBe(413);
      expect(r.headers.get('x-amzn-errortype')).toBe('PayloadTooLargeException');
    }
    expect((await fetch(g.httpUrl('/healthz'))).status).toBe(200);
  });

  it('answers 429 LimitExceededException when the client send buffer is full (slow consumer)', async () => {
    const { c, id } = await connected();
    // Stop reading on the client: the server's send buffer fills up.
    (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const chunk = Buffer.alloc(60_000, 98);
    let status = 200;
    for (let i = 0; i < 200 && status === 200; i++) {
      const r = await fetch(g.httpUrl(`/test/@connections/${encodeURIComponent(id)}`), { method: 'POST', headers: auth, body: chunk });
      status = r.status;
      if (status === 429) expect(r.headers.get('x-amzn-errortype')).toBe('LimitExceededException');
    }
    expect(status).toBe(429);
    (c.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await c.close();
  });
});

describe('in-process operations', () => {
  it('lets a handler reach the same operations without signing', async () => {
    const { c, id } = await connected();
    const ops = g.gw.ops.opsForStage('test');
    await ops.postToConnection({ ConnectionId: id, Data: 'in-process' });
    expect(await c.next()).toBe('in-process');
    const d = await ops.getConnection({ ConnectionId: id });
    expect(d.Identity.SourceIp).toBe('127.0.0.1');
    expect(await ops.listConnections()).toContain(id);
    await ops.deleteConnection({ ConnectionId: id });
    expect((await c.closed).code).toBe(1000);
    await expect(ops.postToConnection({ ConnectionId: id, Data: 'x' })).rejects.toMatchObject({ name: 'GoneException' });
  });
});
