/**
 * Every numeric limit, timeout and size default in one place, with AWS's values where AWS has one
 * (reference/aws-apigw.md section 3). All of them can be overridden in the API definition's
 * `limits` section.
 */
export interface Limits {
  /** Largest WebSocket frame accepted (AWS: 32 KB, larger closes with 1009). */
  maxFrameBytes: number;
  /** Largest WebSocket message (AWS: 128 KB, larger closes with 1009). */
  maxMessageBytes: number;
  /** Close a connection with no data message in either direction for this long (AWS: 10 min). */
  idleTimeoutSeconds: number;
  /** Close every connection after this long (AWS: 2 h). */
  maxConnectionDurationSeconds: number;
  /** Default integration timeout (AWS: 29 s, range 50 ms - 29 s; we allow up to 300 s). */
  integrationTimeoutMillis: number;
  /** Lambda authorizer timeout (AWS: 10 s). */
  authorizerTimeoutMillis: number;
  /** Bytes a connection may have queued for sending before it counts as a slow consumer. */
  maxSendBufferBytes: number;
  /** Largest @connections POST body (AWS: 128 KB). */
  maxPostBytes: number;
  /** Largest REST request body (AWS: 10 MB). */
  maxHttpBodyBytes: number;
  /** Seconds a draining node waits for $disconnect handlers before exiting. */
  drainTimeoutSeconds: number;
}

export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxFrameBytes: 32 * 1024, // 32 KiB
  maxMessageBytes: 128 * 1024, // 128 KiB
  idleTimeoutSeconds: 600, // 10 min
  maxConnectionDurationSeconds: 7200, // 2 h
  integrationTimeoutMillis: 29_000,
  authorizerTimeoutMillis: 10_000,
  maxSendBufferBytes: 1024 * 1024, // 1 MiB
  maxPostBytes: 128 * 1024, // 128 KiB
  maxHttpBodyBytes: 10 * 1024 * 1024, // 10 MiB
  drainTimeoutSeconds: 10,
});

/**
 * WebSocket close codes the gateway uses (RFC 6455 section 7.4.1) and what a client should do.
 * 1000 normal: server-side DELETE @connections; do not reconnect automatically.
 * 1001 going away: idle timeout, maximum lifetime, or node draining; reconnect.
 * 1003 unsupported data: not used (binary frames are msgpack here, beyond AWS).
 * 1008 policy violation: throttled beyond tolerance.
 * 1009 message too big: frame or message over the limit.
 * 1011 internal error: unexpected gateway failure.
 * 1013 try again later: slow consumer (send buffer full); reconnect with backoff.
 */
export const CLOSE = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  TRY_AGAIN_LATER: 1013,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
});
