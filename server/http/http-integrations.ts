import type { IntegrationDef } from '../api/types.ts';
import { DeadlineEntry, type DeadlineList, deadlineList, IntegrationTimeoutError, trackIn, untrack } from '../integrations/deadlines.ts';
import { type FunctionInfo, functionInfo, type GatehouseOps, type LambdaHandler, LambdaContext, type LoadedHandler, invokeLambda } from '../integrations/lambda.ts';
import { buildEventV1, buildEventV2, type EventV1Options } from './proxy-events.ts';
import { mapLambdaResponseV1Text, mapLambdaResponseV2Text } from './proxy-response.ts';
import type { GatewayHttpRequest } from './request.ts';
import type { RouteMatch } from './route-table.ts';
import type { GatewayResponseType } from './gateway-responses.ts';

/** Everything an integration may need about one REST request. */
export interface HttpCall {
  req: GatewayHttpRequest;
  match: Pick<RouteMatch<unknown>, 'routeKey' | 'resource' | 'pathParameters'>;
  stageVariables: Readonly<Record<string, string>> | undefined;
  /** requestContext.authorizer, when an authorizer ran */
  authorizer: Record<string, unknown> | undefined;
  /** JSON body, when a validator already parsed it */
  parsedBody?: unknown;
}

/** `headers` may be shared between responses: never modify them. */
export type HttpOutcome =
  | { kind: 'response'; status: number; headers: ReadonlyArray<readonly [string, string]>; body: Buffer | string }
  | { kind: 'error'; type: GatewayResponseType; status?: number; message: string | null; body?: string };

/** Receives the outcome of an integration run with `start`. */
export interface OutcomeSink {
  complete(outcome: HttpOutcome): void;
}

export interface HttpIntegration {
  readonly type: string;
  invoke(call: HttpCall): Promise<HttpOutcome>;
  /**
   * The callback form of `invoke`, preferred when present: the outcome goes to `sink.complete`,
   * at once when the integration can answer synchronously, and no promise is made for it.
   */
  start?(call: HttpCall, sink: OutcomeSink): void;
  /** MOCK: the fixed answer, so the gateway can reply without building a request. */
  readonly fixed?: Extract<HttpOutcome, { kind: 'response' }>;
}

export interface HttpIntegrationDeps {
  handlers: ReadonlyMap<string, LoadedHandler>;
  ops: GatehouseOps;
  arnPrefix: string;
  accountId: string;
  apiId: string;
  defaultTimeoutMs: number;
  /** REST mode: payload 1.0 by default; HTTP mode: 2.0 */
  mode: 'REST' | 'HTTP';
  binaryMediaTypes: readonly string[] | undefined;
  /** Integration types registered by other modules (HTTP_PROXY, HTTP, REDIS_STREAM). */
  extra?: ReadonlyMap<string, (def: IntegrationDef, timeoutMs: number) => HttpIntegration>;
}

/** Shape the authorizer context the way each payload format carries it. */
function authorizerFor(version: '1.0' | '2.0', a: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!a) return undefined;
  if (version === '1.0') {
    const { lambda: _l, jwt, ...rest } = a;
    return jwt ? { ...rest, jwt, claims: (jwt as { claims?: unknown }).claims } : rest;
  }
  if (a.jwt) return { jwt: a.jwt };
  if (a.lambda) return { lambda: a.lambda };
  const { principalId: _p, integrationLatency: _i, ...ctx } = a;
  return { lambda: ctx };
}

export function compileHttpIntegration(def: IntegrationDef, deps: HttpIntegrationDeps): HttpIntegration {
  const timeoutMs = def.timeoutInMillis ?? deps.defaultTimeoutMs;
  switch (def.type) {
    case 'MOCK': {
      const status = def.response?.statusCode ?? 200;
      const headers: Array<[string, string]> = Object.entries(def.response?.headers ?? {});
      if (!headers.some(([k]) => k.toLowerCase() === 'content-type')) headers.push(['Content-Type', 'application/json']);
      const body = Buffer.from(def.response?.body ?? '');
      const outcome = { kind: 'response' as const, status, headers, body };
      return {
        type: 'MOCK',
        invoke: async () => outcome,
        start(_call, sink) {
          sink.complete(outcome);
        },
        fixed: outcome,
      };
    }
    case 'LAMBDA': {
      const loaded = deps.handlers.get(def.handler);
      if (!loaded) throw new Error(`handler ${def.handler} was not loaded`);
      const version = def.payloadFormatVersion ?? (deps.mode === 'REST' ? '1.0' : '2.0');
      return new LambdaHttpIntegration(loaded, version, deps, timeoutMs);
    }
    default: {
      const factory = deps.extra?.get((def as { type: string }).type);
      if (!factory) throw new Error(`integration type ${(def as { type: string }).type} is not available for REST routes`);
      return factory(def, timeoutMs);
    }
  }
}

const TIMED_OUT: HttpOutcome = Object.freeze({ kind: 'error', type: 'INTEGRATION_TIMEOUT', message: 'Endpoint request timed out' });
/** A throw, a rejection or a malformed response: REST and payload 1.0 answer 502 ... */
const FAILED_V1: HttpOutcome = Object.freeze({ kind: 'error', type: 'BAD_GATEWAY', message: 'Internal server error' });
/** ... payload 2.0 answers 500 (note the capitals). */
const FAILED_V2: HttpOutcome = Object.freeze({
  kind: 'error',
  type: 'DEFAULT_5XX',
  status: 500,
  message: 'Internal Server Error',
  body: '{"message":"Internal Server Error"}',
});

/**
 * A LAMBDA proxy integration. `start` calls the handler directly: a plain return value is mapped
 * and handed back at once; a promise gets one `then` and a place in the shared deadline list
 * (no timer, no promise of our own). Callback-style handlers (three parameters) go through
 * `invokeLambda`.
 */
class LambdaHttpIntegration implements HttpIntegration {
  readonly type = 'LAMBDA';
  private readonly fn: LambdaHandler;
  private readonly info: FunctionInfo;
  private readonly v1: boolean;
  private readonly failed: HttpOutcome;
  private readonly deadlines: DeadlineList;
  private readonly baseOptions: EventV1Options;
  /** Event options for calls without an authorizer, by stage variables (the same object for every call of a stage). */
  private plainOptions: EventV1Options | undefined = undefined;
  private plainFor: Readonly<Record<string, string>> | undefined = undefined;

  constructor(
    loaded: LoadedHandler,
    private readonly version: '1.0' | '2.0',
    private readonly deps: HttpIntegrationDeps,
    private readonly timeoutMs: number,
  ) {
    this.fn = loaded.fn;
    this.info = functionInfo(loaded.name, deps.arnPrefix);
    this.v1 = version === '1.0';
    this.failed = this.v1 ? FAILED_V1 : FAILED_V2;
    this.deadlines = deadlineList(timeoutMs);
    this.baseOptions = { accountId: deps.accountId, apiId: deps.apiId, binaryMediaTypes: deps.binaryMediaTypes };
  }

  invoke(call: HttpCall): Promise<HttpOutcome> {
    return new Promise<HttpOutcome>((resolve) => this.start(call, { complete: resolve }));
  }

  start(call: HttpCall, sink: OutcomeSink): void {
    const event = this.event(call);
    const deadline = Date.now() + this.timeoutMs;
    const ctx = new LambdaContext(this.info, call.req.requestId, deadline, this.deps.ops);
    if (this.fn.length >= 3) {
      const pending = new PendingHttpLambda(this, sink);
      trackIn(this.deadlines, pending, deadline);
      invokeLambda(this.fn, event, ctx, this.timeoutMs).then(
        (v) => pending.ok(v),
        (e: unknown) => pending.fail(e),
      );
      return;
    }
    let result: unknown;
    try {
      result = this.fn(event, ctx);
    } catch (err) {
      sink.complete(this.failure(err));
      return;
    }
    if (result && typeof (result as Promise<unknown>).then === 'function') {
      const pending = new PendingHttpLambda(this, sink);
      trackIn(this.deadlines, pending, deadline);
      (result as Promise<unknown>).then(
        (v) => pending.ok(v),
        (e: unknown) => pending.fail(e),
      );
      return;
    }
    sink.complete(this.outcome(result));
  }

  /** The function's return value as an outcome (malformed: `failed`). */
  outcome(value: unknown): HttpOutcome {
    const mapped = this.v1 ? mapLambdaResponseV1Text(value) : mapLambdaResponseV2Text(value);
    if (!mapped.ok) return this.failed;
    return { kind: 'response', status: mapped.status, headers: mapped.headers, body: mapped.body };
  }

  /** A rejection as an outcome: 504 for a timeout, `failed` for anything else. */
  failure(err: unknown): HttpOutcome {
    return err instanceof IntegrationTimeoutError ? TIMED_OUT : this.failed;
  }

  private event(call: HttpCall): unknown {
    const options = call.authorizer === undefined ? this.optionsWithout(call.stageVariables) : this.optionsWith(call);
    return this.v1 ? buildEventV1(call.req, call.match, options) : buildEventV2(call.req, call.match, options);
  }

  private optionsWithout(stageVariables: Readonly<Record<string, string>> | undefined): EventV1Options {
    if (this.plainOptions === undefined || this.plainFor !== stageVariables) {
      this.plainOptions = this.withFlavour({ ...this.baseOptions, stageVariables, authorizer: undefined });
      this.plainFor = stageVariables;
    }
    return this.plainOptions;
  }

  private optionsWith(call: HttpCall): EventV1Options {
    return this.withFlavour({ ...this.baseOptions, stageVariables: call.stageVariables, authorizer: authorizerFor(this.version, call.authorizer) });
  }

  private withFlavour(options: EventV1Options): EventV1Options {
    return this.v1 ? { ...options, flavour: this.deps.mode === 'REST' ? 'REST' : 'HTTP' } : options;
  }
}

/** One invocation waiting for its handler's promise, in the deadline list until it settles. */
class PendingHttpLambda extends DeadlineEntry {
  constructor(
    private readonly integration: LambdaHttpIntegration,
    private readonly sink: OutcomeSink,
  ) {
    super();
  }
  ok(value: unknown): void {
    if (untrack(this)) this.sink.complete(this.integration.outcome(value));
  }
  fail(err: unknown): void {
    if (untrack(this)) this.sink.complete(this.integration.failure(err));
  }
  expire(): void {
    this.sink.complete(TIMED_OUT);
  }
}
