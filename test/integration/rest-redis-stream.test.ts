import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type StartedGateway, startGateway } from '../helpers/gateway.ts';
import { type RedisServerHandle, startRedisServer } from '../helpers/redis-server.ts';
import { waitFor } from '../helpers/wait.ts';

/*
 * REDIS_STREAM on REST routes, end to end: a real gateway started with a throwaway redis-server,
 * requests over HTTP, entries read back with XRANGE and by a consumer group, and a Redis outage
 * that must fail requests quickly while the rest of the API keeps working.
 */

const API = `
name: streamapi
stages:
  prod: {}
limits:
  integrationTimeoutMillis: 3000
authorizers:
  tok: { type: TOKEN, handler: handlers/authorizer.token, identitySource: method.request.header.Authorization, resultTtlInSeconds: 0 }
http:
  mode: REST
  binaryMediaTypes: [application/octet-stream]
  routes:
    "POST /events": { integration: { type: REDIS_STREAM, stream: "gh:events" } }
    "POST /events/{kind}": { integration: { type: REDIS_STREAM, stream: "gh:kinds" } }
    "POST /secure-events": { integration: { type: REDIS_STREAM, stream: "gh:secure" }, authorizer: tok }
    "GET /health": { integration: { type: MOCK, response: { statusCode: 200, body: '{"ok":true}' } } }
    "GET /fn": { integration: { type: LAMBDA, handler: handlers/rest.echoEvent } }
`;

type StreamEntry = [id: string, fields: string[]];

interface Ack {
  SendMessageResponse: {
    ResponseMetadata: { RequestId: string };
    SendMessageResult: { MessageId: string; MD5OfMessageBody: string; MD5OfMessageAttributes: null; MD5OfMessageSystemAttributes: null; SequenceNumber: null };
  };
}

let redis: RedisServerHandle;
let g: StartedGateway;
let reader: Redis;

beforeAll(async () => {
  redis = await startRedisServer();
  g = await startGateway(API, { redisUrl: redis.url }, 'rest-api');
  reader = new Redis(redis.url, { maxRetriesPerRequest: null, retryStrategy: () => 50 });
  reader.on('error', (err: Error) => {
    // Expected while the server is restarted below; the client reconnects on its own.
    if (!/ECONNREFUSED|ECONNRESET|Connection is closed/.test(err.message)) throw err;
  });
});

afterAll(async () => {
  reader?.disconnect();
  await g?.stop();
  await redis?.stop();
});

const md5 = (b: string | Buffer) => createHash('md5').update(b).digest('hex');
const fieldsOf = (flat: string[]): Record<string, string> => {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!;
  return out;
};
const post = (p: string, body: string | Buffer, headers: Record<string, string> = { 'Content-Type': 'application/json' }) =>
  fetch(g.httpUrl(p), { method: 'POST', headers, body });

/** Posts until the gateway's stream client has reconnected (after an outage). */
async function postWhenReady(p: string, body: string): Promise<Response> {
  return waitFor(
    async () => {
      const r = await post(p, body);
      if (r.status === 200) return r;
      await r.arrayBuffer();
      return undefined;
    },
    { timeoutMs: 10_000, message: `POST ${p} answered 200` },
  );
}

describe('REDIS_STREAM on a REST route', () => {
  it('appends the body and the request context, and answers the SQS-like acknowledgement', async () => {
    const body = JSON.stringify({ order: 42, note: 'ünïcode' });
    // The very first request, sent as soon as the gateway listens (its stream client may still
    // be connecting): it waits for that first connection rather than failing.
    const r = await post('/prod/events?src=test', body);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    const requestId = r.headers.get('x-amzn-requestid')!;
    const ack = (await r.json()) as Ack;
    const result = ack.SendMessageResponse.SendMessageResult;
    expect(ack.SendMessageResponse.ResponseMetadata.RequestId).toBe(requestId);
    expect(result.MessageId).toMatch(/^\d+-\d+$/);
    expect(result.MD5OfMessageBody).toBe(md5(body));
    expect(result).toMatchObject({ MD5OfMessageAttributes: null, MD5OfMessageSystemAttributes: null, SequenceNumber: null });

    const entries = (await reader.xrange('gh:events', result.MessageId, result.MessageId)) as StreamEntry[];
    expect(entries).toHaveLength(1);
    const f = fieldsOf(entries[0]![1]);
    expect(f).toMatchObject({ body, requestId, method: 'POST', path: '/events', stage: 'prod', sourceIp: '127.0.0.1', contentType: 'application/json' });
    expect(Math.abs(Number(f.receivedAt) - Date.now())).toBeLessThan(60_000);
    expect(f).not.toHaveProperty('authorizer');
  });

  it('delivers entries to a consumer group in order, once', async () => {
    await reader.xgroup('CREATE', 'gh:kinds', 'workers', '$', 'MKSTREAM');
    const ids: string[] = [];
    for (const kind of ['created', 'paid', 'shipped']) {
      const r = await post(`/prod/events/${kind}`, `{"kind":"${kind}"}`);
      expect(r.status).toBe(200);
      ids.push(((await r.json()) as Ack).SendMessageResponse.SendMessageResult.MessageId);
    }
    const read = (await reader.xreadgroup('GROUP', 'workers', 'w1', 'COUNT', '10', 'STREAMS', 'gh:kinds', '>')) as Array<[string, StreamEntry[]]> | null;
    const entries = read?.[0]?.[1] ?? [];
    expect(entries.map(([id]) => id)).toEqual(ids);
    expect(entries.map(([, flat]) => fieldsOf(flat).path)).toEqual(['/events/created', '/events/paid', '/events/shipped']);
    expect(fieldsOf(entries[1]![1]).body).toBe('{"kind":"paid"}');
    expect(await reader.xack('gh:kinds', 'workers', ...ids)).toBe(3);
    expect(await reader.xreadgroup('GROUP', 'workers', 'w2', 'COUNT', '10', 'STREAMS', 'gh:kinds', '>')).toBeNull();
  });

  it('stores the authorizer context when the route has an authorizer', async () => {
    expect((await post('/prod/secure-events', '{}')).status).toBe(401);
    const r = await post('/prod/secure-events', '{"secure":true}', { 'Content-Type': 'application/json', Authorization: 'Bearer good' });
    expect(r.status).toBe(200);
    const id = ((await r.json()) as Ack).SendMessageResponse.SendMessageResult.MessageId;
    const [entry] = (await reader.xrange('gh:secure', id, id)) as StreamEntry[];
    const f = fieldsOf(entry![1]);
    expect(f.body).toBe('{"secure":true}');
    expect(JSON.parse(f.authorizer!)).toMatchObject({ principalId: 'rest-user', tier: 'gold' });
  });

  it('stores a binary body byte for byte, matching the acknowledged MD5', async () => {
    const body = Buffer.from([0xff, 0xfe, 0x00, 0x41, 0x80, 0xc3]);
    const r = await post('/prod/events', body, { 'Content-Type': 'application/octet-stream' });
    expect(r.status).toBe(200);
    const result = ((await r.json()) as Ack).SendMessageResponse.SendMessageResult;
    expect(result.MD5OfMessageBody).toBe(md5(body));
    const [entry] = (await reader.xrangeBuffer('gh:events', result.MessageId, result.MessageId)) as Array<[Buffer, Buffer[]]>;
    const flat = entry![1];
    const at = flat.findIndex((k) => k.toString() === 'body');
    expect(flat[at + 1]).toEqual(body);
  });

  it('answers 5xx quickly while Redis is down, keeps serving other routes, and recovers', async () => {
    await redis.restart(async () => {
      const started = performance.now();
      const r = await post('/prod/events', '{"during":"outage"}');
      const elapsed = performance.now() - started;
      expect(r.status).toBeGreaterThanOrEqual(500);
      expect(r.status).toBeLessThan(600);
      expect(await r.json()).toEqual({ message: 'Internal server error' });
      expect(elapsed).toBeLessThan(2000);
      // Several more at once: none hangs.
      const burst = await Promise.all(Array.from({ length: 10 }, () => post('/prod/events', '{}').then((x) => x.status)));
      expect(burst.every((s) => s >= 500 && s < 600)).toBe(true);
      expect(performance.now() - started).toBeLessThan(4000);
      // Other routes are unaffected.
      expect((await fetch(g.httpUrl('/prod/health'))).status).toBe(200);
      expect((await fetch(g.httpUrl('/prod/fn'))).status).toBe(200);
    });
    const r = await postWhenReady('/prod/events', '{"after":"outage"}');
    const id = ((await r.json()) as Ack).SendMessageResponse.SendMessageResult.MessageId;
    await waitFor(() => reader.status === 'ready', { message: 'reader reconnects' });
    const [entry] = (await reader.xrange('gh:events', id, id)) as StreamEntry[];
    expect(fieldsOf(entry![1]).body).toBe('{"after":"outage"}');
  });
});
