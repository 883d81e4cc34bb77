import type { IntegrationDef } from '../api/types.ts';
import { withDeadline, IntegrationTimeoutError } from '../integrations/deadlines.ts';
import { type GatehouseOps, LambdaContext, type LoadedHandler, invokeLambda } from '../integrations/lambda.ts';
import { buildEventV1, buildEventV2 } from './proxy-events.ts';
import { mapLambdaResponseV1, mapLambdaResponseV2 } from './proxy-response.ts';
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

export type HttpOutcome =
  | { kind: 'response'; status: number; headers: Array<[string, string]>; body: Buffer }
  | { kind: 'error'; type: GatewayResponseType; status?: number; message: string | null; body?: string };

export interface HttpIntegration {
  readonly type: string;
  invoke(call: HttpCall): Promise<HttpOutcome>;
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
      return { type: 'MOCK', invoke: async () => outcome, fixed: outcome };
    }
    case 'LAMBDA': {
      const loaded = deps.handlers.get(def.handler);
      if (!loaded) throw new Error(`handler ${def.handler} was not loaded`);
      const version = def.payloadFormatVersion ?? (deps.mode === 'REST' ? '1.0' : '2.0');
      const opts = { accountId: deps.accountId, apiId: deps.apiId, binaryMediaTypes: deps.binaryMediaTypes };
      return {
        type: 'LAMBDA',
        async invoke(call) {
          const common = { ...opts, stageVariables: call.stageVariables, authorizer: authorizerFor(version, call.authorizer) };
          const event =
            version === '1.0'
              ? buildEventV1(call.req, call.match, { ...common, flavour: deps.mode === 'REST' ? 'REST' : 'HTTP' })
              : buildEventV2(call.req, call.match, common);
          const ctx = new LambdaContext(loaded.name, call.req.requestId, Date.now() + timeoutMs, deps.ops, deps.arnPrefix);
          let value: unknown;
          try {
            value = await withDeadline(invokeLambda(loaded.fn, event, ctx, timeoutMs), timeoutMs);
          } catch (err) {
            if (err instanceof IntegrationTimeoutError) return { kind: 'error', type: 'INTEGRATION_TIMEOUT', message: 'Endpoint request timed out' };
            return version === '1.0'
              ? { kind: 'error', type: 'BAD_GATEWAY', message: 'Internal server error' }
              : { kind: 'error', type: 'DEFAULT_5XX', status: 500, message: 'Internal Server Error', body: '{"message":"Internal Server Error"}' };
          }
          const mapped = version === '1.0' ? mapLambdaResponseV1(value) : mapLambdaResponseV2(value);
          if (!mapped.ok) {
            return version === '1.0'
              ? { kind: 'error', type: 'BAD_GATEWAY', message: 'Internal server error' }
              : { kind: 'error', type: 'DEFAULT_5XX', status: 500, message: 'Internal Server Error', body: '{"message":"Internal Server Error"}' };
          }
          return { kind: 'response', status: mapped.status, headers: mapped.headers, body: mapped.body };
        },
      };
    }
    default: {
      const factory = deps.extra?.get((def as { type: string }).type);
      if (!factory) throw new Error(`integration type ${(def as { type: string }).type} is not available for REST routes`);
      return factory(def, timeoutMs);
    }
  }
}
