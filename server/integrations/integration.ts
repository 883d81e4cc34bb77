import type { IntegrationDef } from '../api/types.ts';
import type { GatehouseOps, LoadedHandler } from './lambda.ts';
import { DeadlineEntry, deadlineList, IntegrationTimeoutError, trackIn, untrack } from './deadlines.ts';
import { functionInfo, LambdaContext, invokeLambda } from './lambda.ts';

/** What an integration answers, in the AWS proxy response shape. */
export interface IntegrationResponse {
  statusCode?: number | undefined;
  headers?: Record<string, string> | undefined;
  body?: string | undefined;
  isBase64Encoded?: boolean | undefined;
}

/** One call of an integration. `buildEvent` is only called by integrations that need an event. */
export interface Invocation {
  readonly requestId: string;
  buildEvent(): object;
  /** epoch ms when the request arrived, when the caller already has it */
  readonly now?: number;
}

export class MalformedResponseError extends Error {
  constructor(reason: string) {
    super(`malformed integration response: ${reason}`);
    this.name = 'MalformedResponseError';
  }
}

/** An invocation that receives its own outcome (the message hot path: no promise per call). */
export interface Continuation extends Invocation {
  complete(err: unknown, res: IntegrationResponse | undefined): void;
}

export interface CompiledIntegration {
  readonly type: string;
  readonly timeoutMs: number;
  /** MOCK answers synchronously; everything else returns a promise. */
  invoke(inv: Invocation): IntegrationResponse | undefined | Promise<IntegrationResponse | undefined>;
  /** Optional callback form of `invoke`; calls `inv.complete` exactly once. */
  start?: ((inv: Continuation) => void) | undefined;
  /** MOCK: the fixed response, so the gateway can pre-encode it. */
  readonly fixed?: IntegrationResponse;
}

/**
 * One pending handler call on the hot path: settles the continuation once, or times it out.
 * Methods live on the prototype (no per-call closures: under tsx every named closure also costs
 * a defineProperty for its name).
 */
class PendingLambda extends DeadlineEntry {
  private finished = false;
  constructor(
    private readonly inv: Continuation,
    readonly timeoutMs: number,
  ) {
    super();
  }
  ok(value: unknown): void {
    if (this.finished) return;
    this.finished = true;
    untrack(this);
    let res: IntegrationResponse | undefined;
    try {
      res = toIntegrationResponse(value);
    } catch (err) {
      this.inv.complete(err, undefined);
      return;
    }
    this.inv.complete(undefined, res);
  }
  fail(err: unknown): void {
    if (this.finished) return;
    this.finished = true;
    untrack(this);
    this.inv.complete(err, undefined);
  }
  expire(): void {
    if (this.finished) return;
    this.finished = true;
    this.inv.complete(new IntegrationTimeoutError(this.timeoutMs), undefined);
  }
}

export interface IntegrationDeps {
  handlers: ReadonlyMap<string, LoadedHandler>;
  ops: GatehouseOps;
  arnPrefix: string;
  defaultTimeoutMs: number;
  /** Integration types provided by other modules (HTTP_PROXY, HTTP, REDIS_STREAM). */
  extra?: ReadonlyMap<string, (def: IntegrationDef, timeoutMs: number) => CompiledIntegration> | undefined;
}

/** Validate a Lambda proxy result (AWS: statusCode number, headers map of strings, body string). */
export function toIntegrationResponse(value: unknown): IntegrationResponse | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw new MalformedResponseError(`expected an object, got ${Array.isArray(value) ? 'array' : typeof value}`);
  const v = value as Record<string, unknown>;
  if (v.statusCode !== undefined && (typeof v.statusCode !== 'number' || !Number.isInteger(v.statusCode) || v.statusCode < 100 || v.statusCode > 599)) {
    throw new MalformedResponseError('statusCode must be an integer from 100 to 599');
  }
  if (v.body !== undefined && v.body !== null && typeof v.body !== 'string') throw new MalformedResponseError('body must be a string');
  let headers: Record<string, string> | undefined;
  if (v.headers !== undefined && v.headers !== null) {
    if (typeof v.headers !== 'object' || Array.isArray(v.headers)) throw new MalformedResponseError('headers must be an object');
    let allStrings = true;
    for (const h of Object.values(v.headers as Record<string, unknown>)) {
      if (typeof h !== 'string' && typeof h !== 'number' && typeof h !== 'boolean') throw new MalformedResponseError('header values must be strings');
      if (typeof h !== 'string') allStrings = false;
    }
    if (allStrings) headers = v.headers as Record<string, string>;
    else {
      headers = {};
      for (const [k, h] of Object.entries(v.headers as Record<string, unknown>)) headers[k] = String(h);
    }
  }
  // The common shape ({statusCode, body} with string headers) is used as it is: no copy per message.
  if (v.isBase64Encoded !== true && v.body !== null && (v.headers === undefined || headers === v.headers)) return v as IntegrationResponse;
  let body = (v.body ?? undefined) as string | undefined;
  if (body !== undefined && v.isBase64Encoded === true) body = Buffer.from(body, 'base64').toString('utf8');
  return { statusCode: v.statusCode as number | undefined, headers, body };
}

export function compileIntegration(def: IntegrationDef, deps: IntegrationDeps): CompiledIntegration {
  const timeoutMs = def.timeoutInMillis ?? deps.defaultTimeoutMs;
  switch (def.type) {
    case 'MOCK': {
      const response: IntegrationResponse = Object.freeze({
        statusCode: def.response?.statusCode ?? 200,
        headers: def.response?.headers,
        body: def.response?.body,
      });
      return { type: 'MOCK', timeoutMs, invoke: () => response, fixed: response };
    }
    case 'LAMBDA': {
      const loaded = deps.handlers.get(def.handler);
      if (!loaded) throw new Error(`handler ${def.handler} was not loaded`);
      const { fn, name } = loaded;
      const info = functionInfo(name, deps.arnPrefix);
      const deadlines = deadlineList(timeoutMs);
      return {
        type: 'LAMBDA',
        timeoutMs,
        invoke: (inv) => {
          const ctx = new LambdaContext(info, inv.requestId, Date.now() + timeoutMs, deps.ops);
          return invokeLambda(fn, inv.buildEvent(), ctx, timeoutMs).then(toIntegrationResponse);
        },
        start:
          fn.length >= 3
            ? undefined
            : (inv) => {
                const deadline = (inv.now ?? Date.now()) + timeoutMs;
                const ctx = new LambdaContext(info, inv.requestId, deadline, deps.ops);
                let r: unknown;
                try {
                  r = fn(inv.buildEvent(), ctx);
                } catch (err) {
                  inv.complete(err, undefined);
                  return;
                }
                if (r && typeof (r as Promise<unknown>).then === 'function') {
                  const p = new PendingLambda(inv, timeoutMs);
                  trackIn(deadlines, p, deadline);
                  (r as Promise<unknown>).then(
                    (v) => p.ok(v),
                    (e) => p.fail(e),
                  );
                  return;
                }
                let res: IntegrationResponse | undefined;
                try {
                  res = toIntegrationResponse(r);
                } catch (err) {
                  inv.complete(err, undefined);
                  return;
                }
                inv.complete(undefined, res);
              },
      };
    }
    default: {
      const type = (def as { type: string }).type;
      const factory = deps.extra?.get(type);
      if (!factory) throw new Error(`integration type ${type} is not available`);
      return factory(def, timeoutMs);
    }
  }
}
