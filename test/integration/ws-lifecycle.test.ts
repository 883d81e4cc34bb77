import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clearRecorded, recorded, type StartedGateway, startGateway } from '../helpers/gateway.ts';
import { waitFor } from '../helpers/wait.ts';
import { connect } from '../helpers/ws-client.ts';

const API = `
name: lifecycle
stages:
  test: {}
limits:
  idleTimeoutSeconds: 1
  maxConnectionDurationSeconds: 3
  maxSendBufferBytes: 65536
websocket:
  routeSelectionExpression: $request.body.action
  routes:
    $connect: { integration: { type: LAMBDA, handler: handlers/connect.handler } }
    $disconnect: { integration: { type: LAMBDA, handler: handlers/disconnect.handler } }
    $default: { integration: { type: LAMBDA, handler: handlers/echo.handler }, routeResponse: true }
`;

let g: StartedGateway;
beforeAll(async () => {
  g = await startGateway(API);
});
afterAll(async () => {
  await g?.stop();
});

describe('connection limits', () => {
  it('closes an idle connection with 1001 and fires $disconnect', async () => {
    clearRecorded();
    const c = await connect(g.wsUrl());
    const started = Date.now();
    const closed = await c.closed;
    expect(closed.code).toBe(1001);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    const ev = await waitFor(() => recorded().find((e) => e.requestContext.eventType === 'DISCONNECT'));
    expect(ev.requestContext).toMatchObject({ disconnectStatusCode: 1001, disconnectReason: 'Going away: idle timeout' });
  });

  it('does not count protocol pings as activity, but counts data messages', async () => {
    const c = await connect(g.wsUrl());
    // Data every 300 ms keeps it alive past the 1 s idle timeout.
    for (let i = 0; i < 5; i++) {
      c.send(`keepalive ${i}`);
      await c.next();
      c.ws.ping();
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(c.ws.readyState).toBe(c.ws.OPEN);
    // Pings alone do not.
    const pinger = setInterval(() => c.ws.ping(), 200);
    const closed = await c.closed;
    clearInterval(pinger);
    expect(closed.code).toBe(1001);
  });

  it('closes a connection at its maximum duration even while active', async () => {
    clearRecorded();
    const c = await connect(g.wsUrl());
    const started = Date.now();
    const timer = setInterval(() => c.ws.readyState === c.ws.OPEN && c.send('busy'), 200);
    const closed = await c.closed;
    clearInterval(timer);
    expect(closed.code).toBe(1001);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2900);
    const ev = await waitFor(() => recorded().find((e) => e.requestContext.eventType === 'DISCONNECT'));
    expect(ev.requestContext.disconnectReason).toBe('Going away: maximum connection duration reached');
  });

  it('disconnects a slow consumer with 1013 instead of growing memory', async () => {
    clearRecorded();
    const c = await connect(g.wsUrl());
    const fast = await connect(g.wsUrl());
    (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const big = 'z'.repeat(30_000);
    const pump = setInterval(() => {
      if (c.ws.readyState === c.ws.OPEN) for (let i = 0; i < 20; i++) c.send(big);
    }, 20);
    const closing = waitFor(() => recorded().find((e) => e.requestContext.eventType === 'DISCONNECT' && e.requestContext.disconnectStatusCode === 1013), {
      timeoutMs: 15_000,
    });
    const ev = await closing;
    clearInterval(pump);
    expect(ev.requestContext.disconnectReason).toMatch(/Slow consumer/);
    // The other connection was not disturbed.
    fast.send('still here');
    expect(await fast.next()).toBe('still here');
    (c.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await fast.close();
  });
});
