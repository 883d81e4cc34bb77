import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type StartedGateway, startGateway } from '../helpers/gateway.ts';
import { connect, rejectedUpgrade } from '../helpers/ws-client.ts';

const GOLD = 'goldKey0123456789abcdef';
const FREE = 'freeKey0123456789abcdef';

const API = `
name: throttled
stages:
  test:
    throttling:
      routes:
        limited: { rateLimit: 1, burstLimit: 3 }
        "GET /limited": { rateLimit: 1, burstLimit: 2 }
usagePlans:
  gold: { throttle: { rateLimit: 1000, burstLimit: 1000 }, apiKeys: [${GOLD}] }
  free: { throttle: { rateLimit: 1000, burstLimit: 1000 }, quota: { limit: 3, period: DAY }, apiKeys: ["key-env:GH_TEST_FREE_KEYS"] }
clientLimits:
  perConnection: { rateLimit: 1, burstLimit: 20 }
websocket:
  routeSelectionExpression: $request.body.action
  routes:
    $default: { integration: { type: MOCK, response: { statusCode: 200, body: 'ok' } }, routeResponse: true }
    limited: { integration: { type: MOCK, response: { statusCode: 200, body: 'limited-ok' } }, routeResponse: true }
http:
  mode: REST
  routes:
    "GET /limited": { integration: { type: MOCK, response: { statusCode: 200, body: '{"ok":true}' } } }
    "GET /keyed": { integration: { type: MOCK, response: { statusCode: 200, body: '{"ok":true}' } }, apiKeyRequired: true }
    "GET /open": { integration: { type: MOCK, response: { statusCode: 200, body: '{"ok":true}' } } }
`;

let g: StartedGateway;
beforeAll(async () => {
  process.env.GH_TEST_FREE_KEYS = FREE;
  g = await startGateway(API);
});
afterAll(() => g?.stop());

describe('WebSocket message throttling', () => {
  it('admits the burst, then answers Too Many Requests frames and keeps the connection open', async () => {
    const c = await connect(g.wsUrl());
    const replies: string[] = [];
    for (let i = 0; i < 6; i++) {
      c.send({ action: 'limited' });
      replies.push(await c.next());
    }
    expect(replies.slice(0, 3)).toEqual(['limited-ok', 'limited-ok', 'limited-ok']);
    for (const r of replies.slice(3)) expect(JSON.parse(r)).toMatchObject({ message: 'Too Many Requests' });
    // Other routes of the same connection are not affected by the route's bucket.
    c.send({ action: 'other' });
    expect(await c.next()).toBe('ok');
    await c.close();
  });

  it('limits one noisy connection without touching another (per-connection limit)', async () => {
    const noisy = await connect(g.wsUrl());
    const quiet = await connect(g.wsUrl());
    let throttled = 0;
    for (let i = 0; i < 30; i++) {
      noisy.send('x');
      if ((await noisy.next()).includes('Too Many Requests')) throttled++;
    }
    expect(throttled).toBeGreaterThanOrEqual(9);
    quiet.send('y');
    expect(await quiet.next()).toBe('ok');
    await Promise.all([noisy.close(), quiet.close()]);
  });
});

describe('REST throttling and API keys', () => {
  it('answers 429 Too Many Requests with Retry-After past the burst', async () => {
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 4; i++) {
      last = await fetch(g.httpUrl('/test/limited'));
      statuses.push(last.status);
    }
    expect(statuses).toEqual([200, 200, 429, 429]);
    expect(last!.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(last!.headers.get('x-amzn-errortype')).toBe('TooManyRequestsException');
    expect(await last!.json()).toEqual({ message: 'Too Many Requests' });
  });

  it('answers 403 Forbidden for a missing or unknown API key where one is required', async () => {
    for (const headers of [{}, { 'x-api-key': 'unknownKey0123456789xx' }, { 'x-api-key': '' }]) {
      const r = await fetch(g.httpUrl('/test/keyed'), { headers });
      expect(r.status).toBe(403);
      expect(await r.json()).toEqual({ message: 'Forbidden' });
    }
    expect((await fetch(g.httpUrl('/test/keyed'), { headers: { 'x-api-key': GOLD } })).status).toBe(200);
    // Routes without apiKeyRequired ignore keys.
    expect((await fetch(g.httpUrl('/test/open'))).status).toBe(200);
  });

  it('enforces a usage-plan quota with 429 Limit Exceeded (key from key-env:)', async () => {
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 5; i++) {
      last = await fetch(g.httpUrl('/test/keyed'), { headers: { 'x-api-key': FREE } });
      statuses.push(last.status);
    }
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
    expect(await last!.json()).toEqual({ message: 'Limit Exceeded' });
    expect(last!.headers.get('x-amzn-errortype')).toBe('LimitExceededException');
  });

  it('counts throttled requests by level in /metrics', async () => {
    const text = await (await fetch(g.httpUrl('/metrics'))).text();
    expect(text).toMatch(/ThrottledRequests\{apiId="[a-z0-9]{10}",stage="test",level="route"\} \d+/);
    expect(text).toMatch(/ThrottledRequests\{[^}]*level="quota"\} \d+/);
    expect(text).toMatch(/ThrottledRequests\{[^}]*level="apikey"\} \d+/);
  });
});

describe('upgrade limits', () => {
  it('answers 429 on upgrades over the per-client-IP limit, 403 for a required key', async () => {
    const g2 = await startGateway(`
name: iplimit
stages: { test: {} }
clientLimits: { perClientIp: { rateLimit: 0.5, burstLimit: 2 } }
usagePlans: { p: { apiKeys: [${GOLD}] } }
websocket:
  routeSelectionExpression: $request.body.action
  routes:
    $connect: { apiKeyRequired: true }
    $default: { integration: { type: MOCK, response: { body: 'ok' } }, routeResponse: true }
`);
    try {
      expect((await rejectedUpgrade(g2.wsUrl())).status).toBe(403);
      const headers = { 'x-api-key': GOLD };
      const a = await connect(g2.wsUrl(), { headers });
      const b = await connect(g2.wsUrl(), { headers });
      await b.close();
      // The burst of 2 attempts from this IP is spent: the third is refused.
      const r = await rejectedUpgrade(g2.wsUrl(), { headers });
      expect(r.status).toBe(429);
      expect(JSON.parse(r.body)).toEqual({ message: 'Too Many Requests' });
      expect(r.headers['retry-after']).toBeDefined();
      a.send('hi');
      expect(await a.next()).toBe('ok');
      await a.close();
    } finally {
      await g2.stop();
    }
  });
});
