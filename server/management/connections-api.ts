import { timingSafeEqual } from 'node:crypto';
import { uuid } from '../ids.ts';
import type { Logger } from '../log.ts';
import type { HttpResponder, RawRequest } from '../transport/uws.ts';
import type { ConnectionOperations, Outcome } from './operations.ts';
import { verifySigV4 } from './sigv4.ts';

export interface ManagementAuth {
  /** accessKeyId → secretAccessKey, for AWS Signature V4 (service execute-api). */
  keys: ReadonlyMap<string, string>;
  bearerToken: string | undefined;
  /** false only with `management.authentication: NONE` (development). */
  required: boolean;
}

const CONNECTIONS_RE = /^\/([^/]+)\/(?:@|%40)connections\/([^/]*)\/?$/i;

/** `/{stage}/@connections/{id}` (or `%40connections`) → stage and decoded id, else undefined. */
export function matchConnectionsPath(url: string): { stage: string; connectionId: string } | undefined {
  const m = CONNECTIONS_RE.exec(url);
  if (!m) return undefined;
  let connectionId: string;
  try {
    connectionId = decodeURIComponent(m[2]!);
  } catch {
    connectionId = m[2]!;
  }
  return { stage: m[1]!, connectionId };
}

/**
 * The AWS-compatible management API (reference section 2): status codes, error names in
 * `x-amzn-ErrorType`, JSON error bodies, `x-amzn-RequestId` on every answer, so that
 * `@aws-sdk/client-apigatewaymanagementapi` works unmodified.
 */
export class ConnectionsApi {
  constructor(
    private readonly ops: ConnectionOperations,
    private readonly auth: ManagementAuth,
    private readonly stages: ReadonlySet<string>,
    private readonly maxPostBytes: number,
    private readonly log: Logger,
  ) {}

  async handle(req: RawRequest, res: HttpResponder, stage: string, connectionId: string): Promise<void> {
    const requestId = uuid();
    const fail = (status: number, type: string, message: string) =>
      res.send(status, { 'Content-Type': 'application/json', 'x-amzn-RequestId': requestId, 'x-amzn-ErrorType': type }, JSON.stringify({ message }));
    // Read the body first (bounded): the signature covers it. Over the limit: 413 at once.
    let body: Buffer = Buffer.alloc(0);
    if (req.method === 'POST') {
      const b = await res.readBody(this.maxPostBytes);
      if (b === 'aborted') return;
      if (b === 'too_large') {
        res.closeAfterAnswer(); // the rest of the body is never read
        fail(413, 'PayloadTooLargeException', `Message too long: the maximum is ${this.maxPostBytes} bytes`);
        return;
      }
      body = b;
    }
    const denied = this.authenticate(req, body);
    if (denied) {
      this.log.info({ requestId, reason: denied, method: req.method }, 'management request denied');
      fail(403, 'ForbiddenException', 'Forbidden');
      return;
    }
    if (!this.stages.has(stage)) {
      fail(403, 'ForbiddenException', 'Forbidden');
      return;
    }
    if (!connectionId) {
      fail(400, 'BadRequestException', 'Invalid connectionId');
      return;
    }
    let outcome: Outcome;
    switch (req.method) {
      case 'POST':
        outcome = await this.ops.post(stage, connectionId, body);
        if (outcome.status === 'ok') {
          res.send(200, { 'Content-Type': 'application/json', 'x-amzn-RequestId': requestId });
          return;
        }
        break;
      case 'GET': {
        const r = await this.ops.describe(stage, connectionId);
        if ('connectionId' in r) {
          res.send(
            200,
            { 'Content-Type': 'application/json', 'x-amzn-RequestId': requestId },
            JSON.stringify({
              connectedAt: new Date(r.connectedAt).toISOString(),
              identity: { sourceIp: r.sourceIp, userAgent: r.userAgent },
              lastActiveAt: new Date(r.lastActiveAt).toISOString(),
            }),
          );
          return;
        }
        outcome = r;
        break;
      }
      case 'DELETE':
        outcome = await this.ops.delete(stage, connectionId);
        if (outcome.status === 'ok') {
          res.send(204, { 'x-amzn-RequestId': requestId });
          return;
        }
        break;
      default:
        res.send(405, { 'Content-Type': 'application/json', 'x-amzn-RequestId': requestId, Allow: 'GET, POST, DELETE' }, '{"message":"Method Not Allowed"}');
        return;
    }
    switch (outcome.status) {
      case 'gone':
        fail(410, 'GoneException', `Connection ${connectionId} is gone`);
        return;
      case 'throttled':
        fail(429, 'LimitExceededException', 'The connection send buffer is full');
        return;
      case 'too_large':
        fail(413, 'PayloadTooLargeException', 'Message too long');
        return;
      default:
        fail(503, 'ServiceUnavailableException', 'Cluster state unavailable: the message was not delivered');
    }
  }

  /** undefined when allowed, else a reason for the log (never shown in full to the client). */
  private authenticate(req: RawRequest, body: Buffer): string | undefined {
    if (!this.auth.required) return undefined;
    const headers: Record<string, string> = {};
    for (const [k, v] of req.headers) headers[k] = headers[k] === undefined ? v : `${headers[k]},${v}`;
    const authz = headers.authorization ?? '';
    if (this.auth.bearerToken && authz.startsWith('Bearer ')) {
      const given = Buffer.from(authz.slice(7));
      const want = Buffer.from(this.auth.bearerToken);
      return given.length === want.length && timingSafeEqual(given, want) ? undefined : 'bad bearer token';
    }
    if (this.auth.keys.size === 0) return 'no credentials configured';
    const r = verifySigV4({ method: req.method, rawPath: req.url, rawQuery: req.query, headers, body }, this.auth.keys);
    return r.ok ? undefined : r.reason;
  }
}
