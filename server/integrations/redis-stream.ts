import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';

/**
 * REDIS_STREAM integration: the analogue of API Gateway's SQS `SendMessage` integration. Each
 * request becomes one stream entry (`XADD`); workers consume it with consumer groups
 * (`XREADGROUP` / `XACK`). The client gets an SQS-shaped acknowledgement (`streamAck`).
 *
 * Failing fast while Redis is unreachable: `append` refuses at once (RedisStreamUnavailableError)
 * unless the client's status is `ready`, so nothing waits in ioredis' offline queue whatever the
 * client options (the one exception: the client's first connection, see `connectWaitMs`). The
 * caller must still create the client so that a command that was sent can not hang or be
 * replayed:
 *   - `commandTimeout` (e.g. 1000 ms): bounds a command on a connection that is up but stalled;
 *   - `maxRetriesPerRequest: 0`: a command in flight when the connection drops fails instead of
 *     being re-sent after reconnecting (which could also append it twice);
 *   - standalone: `enableOfflineQueue: false` as well (commands issued between a drop and the
 *     status change fail instead of queueing). For a Cluster leave it on (see RedisClusterState).
 */

export interface RedisStreamSinkOptions {
  redis: Redis | Cluster;
  /** the stream key */
  stream: string;
  /** approximate cap on the stream length (`XADD key MAXLEN ~ n`); unbounded when absent */
  maxLen?: number | undefined;
  /**
   * While the client's first connection attempt is under way (the gateway starts listening
   * while it still connects), `append` waits up to this long for that attempt to end instead of
   * refusing at once. After it, an outage always fails fast. Default 0: never wait.
   */
  connectWaitMs?: number | undefined;
}

/** Client states while its first connection attempt is still under way. */
const FIRST_CONNECT_STATES: ReadonlySet<string> = new Set(['connecting', 'connect']);

/**
 * Per client (shared by all its sinks, so one set of listeners per client): settles when the
 * client's first connection attempt ends, whether it became `ready` or failed (`close`/`end`).
 */
const firstAttempts = new WeakMap<Redis | Cluster, Promise<void>>();

function firstAttempt(redis: Redis | Cluster): Promise<void> {
  let p = firstAttempts.get(redis);
  if (!p) {
    p =
      redis.status === 'ready'
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            const done = () => {
              redis.off('ready', done);
              redis.off('close', done);
              redis.off('end', done);
              resolve();
            };
            redis.once('ready', done);
            redis.once('close', done);
            redis.once('end', done);
          });
    firstAttempts.set(redis, p);
  }
  return p;
}

/** Redis is not connected (or the command failed on the way): the caller answers 500/502. */
export class RedisStreamUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RedisStreamUnavailableError';
  }
}

export class RedisStreamSink {
  readonly stream: string;
  readonly #redis: Redis | Cluster;
  readonly #trim: readonly string[];
  readonly #connectWaitMs: number;
  readonly #firstAttempt: Promise<void>;

  constructor(opts: RedisStreamSinkOptions) {
    if (opts.stream === '') throw new TypeError('RedisStreamSink: stream must not be empty');
    if (opts.maxLen !== undefined && (!Number.isInteger(opts.maxLen) || opts.maxLen < 1)) {
      throw new TypeError('RedisStreamSink: maxLen must be a positive integer');
    }
    this.stream = opts.stream;
    this.#redis = opts.redis;
    this.#trim = opts.maxLen === undefined ? [] : ['MAXLEN', '~', String(opts.maxLen)];
    this.#connectWaitMs = opts.connectWaitMs ?? 0;
    this.#firstAttempt = firstAttempt(opts.redis);
  }

  /** Resolves when the client's first connection attempt has ended, or after `connectWaitMs`. */
  #awaitFirstAttempt(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, this.#connectWaitMs);
      void this.#firstAttempt.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * Appends one entry (`fields` in their insertion order) and resolves with its id
   * (`1700000000000-0`). A Buffer value is stored byte for byte (a binary body must not go
   * through a UTF-8 string). Rejects with RedisStreamUnavailableError when Redis is not ready
   * or the command fails (timeout, connection lost, server error).
   */
  async append(fields: Readonly<Record<string, string | Buffer>>): Promise<string> {
    const flat: Array<string | Buffer> = [];
    for (const [k, v] of Object.entries(fields)) flat.push(k, v);
    if (flat.length === 0) throw new TypeError('RedisStreamSink.append: at least one field is required');
    let status = this.#redis.status;
    // Only while the very first attempt is under way: afterwards #firstAttempt is settled and an
    // outage (even during a reconnect attempt) fails at once.
    if (status !== 'ready' && this.#connectWaitMs > 0 && FIRST_CONNECT_STATES.has(status)) {
      await this.#awaitFirstAttempt();
      status = this.#redis.status;
    }
    if (status !== 'ready') {
      throw new RedisStreamUnavailableError(`redis is not connected (status ${status}); stream ${this.stream} not written`);
    }
    let id: string | null;
    try {
      id = await this.#redis.xadd(this.stream, ...this.#trim, '*', ...flat);
    } catch (err) {
      throw new RedisStreamUnavailableError(
        `XADD to stream ${this.stream} failed: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
    if (typeof id !== 'string') throw new RedisStreamUnavailableError(`XADD to stream ${this.stream} returned no id`);
    return id;
  }
}

/**
 * The acknowledgement the client gets, shaped like SQS `SendMessage`'s JSON answer (what an
 * API Gateway → SQS integration returns when its response is passed through):
 *
 *   {"SendMessageResponse":{"ResponseMetadata":{"RequestId":"<requestId>"},
 *    "SendMessageResult":{"MD5OfMessageAttributes":null,"MD5OfMessageBody":"<md5 hex>",
 *    "MD5OfMessageSystemAttributes":null,"MessageId":"<stream entry id>","SequenceNumber":null}}}
 *
 * `messageBody` is the message as appended (the request body, or the mapped template output);
 * its MD5 (hex) lets a client check what was stored, as with SQS. Without it the MD5 is that of
 * an empty body. Status 200, `content-type: application/json`.
 */
export function streamAck(
  entryId: string,
  requestId: string,
  messageBody?: string | Buffer,
): { statusCode: number; body: string; contentType: string } {
  const md5 = createHash('md5')
    .update(messageBody ?? '')
    .digest('hex');
  const body = JSON.stringify({
    SendMessageResponse: {
      ResponseMetadata: { RequestId: requestId },
      SendMessageResult: {
        MD5OfMessageAttributes: null,
        MD5OfMessageBody: md5,
        MD5OfMessageSystemAttributes: null,
        MessageId: entryId,
        SequenceNumber: null,
      },
    },
  });
  return { statusCode: 200, body, contentType: 'application/json' };
}
