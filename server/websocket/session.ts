import type { Socket } from '../transport/uws.ts';
import type { StageRuntime } from './stage-runtime.ts';

/**
 * Per-connection state, kept deliberately small (idle memory per connection is a target).
 * The same object is the uWS user data, so there is no second lookup per message.
 */
export class Session {
  ws: Socket<Session> | undefined = undefined;
  lastActiveAt: number;
  /** Set when the gateway closes the connection, so $disconnect reports our code and reason. */
  closeCode = 0;
  closeReason = '';
  closed = false;
  /** The client has sent binary (msgpack) frames. */
  binary = false;
  /** Per-connection token bucket (clientLimits.perConnection), kept here: no map lookup per message. */
  bucketTokens = Number.NaN;
  bucketLast = 0;
  /**
   * Posts (@connections, context.gatehouse) accepted in this event-loop turn and not yet written,
   * as (data, binary) pairs, and their size: they leave together in one write (WsGateway.postLocal).
   */
  out: Array<string | Uint8Array | boolean> | undefined = undefined;
  outBytes = 0;
  constructor(
    readonly connectionId: string,
    readonly stage: StageRuntime,
    readonly connectedAt: number,
    readonly sourceIp: string,
    readonly userAgent: string,
    readonly domainName: string,
    /** `requestContext.authorizer` for every event of this connection, when an authorizer ran. */
    readonly authorizer: Record<string, unknown> | undefined,
    /** The API key accepted at $connect (usage-plan metering of every message), if required. */
    readonly apiKey: string | undefined = undefined,
  ) {
    this.lastActiveAt = connectedAt;
  }
}
