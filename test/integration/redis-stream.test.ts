import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisStreamSink, RedisStreamUnavailableError, streamAck } from '../../server/integrations/redis-stream.ts';
import { type RedisServerHandle, startRedisServer } from '../helpers/redis-server.ts';
import { waitFor } from '../helpers/wait.ts';

/*
 * REDIS_STREAM against a throwaway redis-server: entries appended by the sink are consumed by a
 * worker through a consumer group, the stream is trimmed, and an unreachable or stalled Redis
 * fails the call quickly instead of queueing it.
 */

const clientErrors: unknown[] = [];

/** A client with what the sink is documented to need: no offline queue, no retries, a command timeout. */
function sinkRedis(url: string): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: 300,
    connectTimeout: 1000,
    retryStrategy: () => 50,
  });
}

async function ready(c: Redis): Promise<Redis> {
  c.on('error', (err: unknown) => clientErrors.push(err));
  await waitFor(() => c.status === 'ready', { message: 'redis client ready' });
  return c;
}

type StreamEntry = [id: string, fields: string[]];

describe('RedisStreamSink', () => {
  let server: RedisServerHandle;
  let sinkClient: Redis;
  let worker: Redis;

  beforeAll(async () => {
    server = await startRedisServer();
    sinkClient = await ready(sinkRedis(server.url));
    worker = await ready(new Redis(server.url, { maxRetriesPerRequest: null, retryStrategy: () => 50 }));
  });

  afterAll(async () => {
    sinkClient?.disconnect();
    worker?.disconnect();
    await server?.stop();
  });

  it('should append entries that a consumer group reads and acknowledges', async () => {
    const stream = 'gh:orders';
    await worker.xgroup('CREATE', stream, 'workers', '$', 'MKSTREAM');
    const sink = new RedisStreamSink({ redis: sinkClient, stream });

    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(await sink.append({ body: `{"order":${i}}`, requestId: `req-${i}`, contentType: 'application/json' }));
    }
    for (const id of ids) expect(id).toMatch(/^\d+-\d+$/);

    const read = (await worker.xreadgroup('GROUP', 'workers', 'w1', 'COUNT', '10', 'STREAMS', stream, '>')) as
      | Array<[string, StreamEntry[]]>
      | null;
    const entries = read?.[0]?.[1] ?? [];
    expect(entries.map(([id]) => id)).toEqual(ids);
    expect(entries[1]?.[1]).toEqual(['body', '{"order":1}', 'requestId', 'req-1', 'contentType', 'application/json']);

    expect(await worker.xack(stream, 'workers', ...ids)).toBe(3);
    const pending = (await worker.xpending(stream, 'workers')) as [number, ...unknown[]];
    expect(pending[0]).toBe(0);
    // a second worker of the group gets nothing already delivered
    const again = await worker.xreadgroup('GROUP', 'workers', 'w2', 'COUNT', '10', 'STREAMS', stream, '>');
    expect(again).toBeNull();
  });

  it('should trim the stream approximately to maxLen', async () => {
    const stream = 'gh:trimmed';
    const sink = new RedisStreamSink({ redis: sinkClient, stream, maxLen: 50 });
    for (let i = 0; i < 500; i++) await sink.append({ n: String(i) });
    const len = await worker.xlen(stream);
    expect(len).toBeGreaterThanOrEqual(50);
    // MAXLEN ~ trims whole radix-tree nodes (100 entries by default)
    expect(len).toBeLessThanOrEqual(150);
  });

  it('should refuse an empty entry and bad options', async () => {
    const sink = new RedisStreamSink({ redis: sinkClient, stream: 'gh:x' });
    await expect(sink.append({})).rejects.toThrow(TypeError);
    expect(() => new RedisStreamSink({ redis: sinkClient, stream: '' })).toThrow(TypeError);
    expect(() => new RedisStreamSink({ redis: sinkClient, stream: 'gh:x', maxLen: 0 })).toThrow(TypeError);
  });

  it('should fail fast while Redis is down, and work again once it is back', async () => {
    const sink = new RedisStreamSink({ redis: sinkClient, stream: 'gh:outage' });
    // a client with ioredis defaults (offline queue on) must fail fast too: the sink checks status
    const defaults = await ready(new Redis(server.url, { retryStrategy: () => 50 }));
    const lenient = new RedisStreamSink({ redis: defaults, stream: 'gh:outage' });
    try {
      await server.restart(async () => {
        await waitFor(() => sinkClient.status !== 'ready' && defaults.status !== 'ready', { message: 'clients notice the outage' });
        for (const s of [sink, lenient]) {
          const started = performance.now();
          await expect(s.append({ body: 'x' })).rejects.toThrow(RedisStreamUnavailableError);
          expect(performance.now() - started).toBeLessThan(100);
        }
      });
      await waitFor(() => sinkClient.status === 'ready', { message: 'sink client reconnects' });
      expect(await sink.append({ body: 'after' })).toMatch(/^\d+-\d+$/);
    } finally {
      defaults.disconnect();
    }
  });

  it('should fail within commandTimeout when Redis accepts but does not answer', async () => {
    await waitFor(() => sinkClient.status === 'ready' && worker.status === 'ready', { message: 'clients ready' });
    const sink = new RedisStreamSink({ redis: sinkClient, stream: 'gh:stalled' });
    // WRITE pause: XADD blocks server-side for 2 s, reads (CLIENT UNPAUSE from the worker) still work
    await worker.call('CLIENT', 'PAUSE', '2000', 'WRITE');
    try {
      const started = performance.now();
      const err = await sink.append({ body: 'x' }).catch((e: unknown) => e);
      const elapsed = performance.now() - started;
      expect(err).toBeInstanceOf(RedisStreamUnavailableError);
      expect(String((err as Error).message)).toMatch(/timed out|timeout/i);
      expect(elapsed).toBeGreaterThanOrEqual(250);
      expect(elapsed).toBeLessThan(1500);
    } finally {
      await worker.call('CLIENT', 'UNPAUSE');
    }
  });
});

describe('streamAck', () => {
  it('should mirror SQS SendMessage with the entry id and the MD5 of the body', () => {
    const ack = streamAck('1700000000000-0', 'req-1', 'hello');
    expect(ack.statusCode).toBe(200);
    expect(ack.contentType).toBe('application/json');
    expect(JSON.parse(ack.body)).toEqual({
      SendMessageResponse: {
        ResponseMetadata: { RequestId: 'req-1' },
        SendMessageResult: {
          MD5OfMessageAttributes: null,
          MD5OfMessageBody: '5d41402abc4b2a76b9719d911017c592',
          MD5OfMessageSystemAttributes: null,
          MessageId: '1700000000000-0',
          SequenceNumber: null,
        },
      },
    });
  });

  it('should hash binary bodies as bytes, and an absent body as empty', () => {
    const bytes = Buffer.from([0, 255, 1, 254]);
    const md5 = createHash('md5').update(bytes).digest('hex');
    expect(JSON.parse(streamAck('1-0', 'r', bytes).body).SendMessageResponse.SendMessageResult.MD5OfMessageBody).toBe(md5);
    expect(JSON.parse(streamAck('1-0', 'r').body).SendMessageResponse.SendMessageResult.MD5OfMessageBody).toBe(
      'd41d8cd98f00b204e9800998ecf8427e',
    );
  });
});
