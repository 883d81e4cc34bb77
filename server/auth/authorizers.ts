import type { ClusterState } from '../cluster/cluster-state.ts';
import { type GatehouseOps, LambdaContext, type LoadedHandler, invokeLambda } from '../integrations/lambda.ts';
import type { Logger } from '../log.ts';
import { AuthorizerCache } from './authorizer-cache.ts';
import { type IdentityInput, type IdentitySource, identityValue, parseIdentitySource } from './identity-source.ts';
import { claimsForEvent, createJwtVerifier, type JwtVerifier } from './jwt.ts';
import { evaluatePolicy, validateAuthorizerResponse, validateSimpleResponse } from './policy.ts';

export interface AuthorizerDef {
  type: 'REQUEST' | 'TOKEN' | 'JWT';
  handler?: string;
  identitySource?: string | string[];
  identityValidationExpression?: string;
  resultTtlInSeconds?: number;
  enableSimpleResponses?: boolean;
  issuer?: string;
  audience?: string[];
  jwksUri?: string;
}

/** What the transport needs to authorize one request. */
export interface AuthRequest extends IdentityInput {
  methodArn: string;
  /** The Lambda authorizer event without `type`, `methodArn` and `identitySource` (transport-specific). */
  eventBase(): Record<string, unknown>;
}

export type AuthDecision =
  | {
      ok: true;
      /** `requestContext.authorizer` for the integration event */
      authorizer: Record<string, unknown>;
      usageIdentifierKey?: string | undefined;
      /** Subprotocol to echo in the 101 when the token came in Sec-WebSocket-Protocol */
      protocol?: string | undefined;
    }
  | { ok: false; status: number; body: string; headers: Record<string, string> };

const json = { 'Content-Type': 'application/json' };
export const DENY = Object.freeze({
  unauthorized: (extra: Record<string, string> = {}): AuthDecision => ({
    ok: false,
    status: 401,
    body: '{"message":"Unauthorized"}',
    headers: { ...json, 'x-amzn-ErrorType': 'UnauthorizedException', ...extra },
  }),
  explicit: (): AuthDecision => ({
    ok: false,
    status: 403,
    body: '{"message":"User is not authorized to access this resource with an explicit deny"}',
    headers: { ...json, 'x-amzn-ErrorType': 'AccessDeniedException' },
  }),
  implicit: (): AuthDecision => ({
    ok: false,
    status: 403,
    body: '{"message":"User is not authorized to access this resource"}',
    headers: { ...json, 'x-amzn-ErrorType': 'AccessDeniedException' },
  }),
  forbidden: (extra: Record<string, string> = {}): AuthDecision => ({
    ok: false,
    status: 403,
    body: '{"message":"Forbidden"}',
    headers: { ...json, 'x-amzn-ErrorType': 'ForbiddenException', ...extra },
  }),
  configuration: (): AuthDecision => ({
    ok: false,
    status: 500,
    body: '{"message": null}',
    headers: { ...json, 'x-amzn-ErrorType': 'AuthorizerConfigurationException' },
  }),
});

/** A Lambda authorizer that threw (or called back with) exactly "Unauthorized". */
class UnauthorizedSignal extends Error {}

/** A failed JWT check: thrown inside the cached computation so that failures are never cached. */
class JwtRejection extends Error {
  constructor(readonly result: { status: number; wwwAuthenticate?: string | undefined }) {
    super('jwt rejected');
  }
}

type LambdaResult =
  | { kind: 'policy'; principalId: string; policyDocument: unknown; context: Record<string, unknown>; usageIdentifierKey?: string | undefined }
  | { kind: 'simple'; isAuthorized: boolean; context: Record<string, unknown> };

export interface CompiledAuthorizer {
  readonly name: string;
  readonly type: AuthorizerDef['type'];
  authorize(req: AuthRequest, requiredScopes?: string[]): Promise<AuthDecision>;
}

export interface AuthorizerDeps {
  handlers: ReadonlyMap<string, LoadedHandler>;
  cluster: ClusterState;
  timeoutMs: number;
  ops: GatehouseOps;
  arnPrefix: string;
  log: Logger;
  /** Namespaces cache keys, so that several APIs can share one Redis. */
  apiId: string;
}

const SUBPROTOCOL = 'sec-websocket-protocol';

function isUnauthorized(err: unknown): boolean {
  return err === 'Unauthorized' || (err instanceof Error && err.message === 'Unauthorized');
}

/** First offered subprotocol; with `[marker, token]` the marker is echoed and the token stays private. */
function firstSubprotocol(headers: ReadonlyArray<[string, string]>): string | undefined {
  for (const [k, v] of headers) if (k === SUBPROTOCOL) return v.split(',')[0]?.trim() || undefined;
  return undefined;
}

/** The bearer token out of an identity value: strips `Bearer `, and picks the JWT out of a subprotocol list. */
export function extractToken(value: string): string {
  let v = value.trim();
  if (/^bearer\s+/i.test(v)) v = v.replace(/^bearer\s+/i, '');
  if (v.includes(',')) {
    const parts = v.split(',').map((p) => p.trim());
    v = parts.find((p) => p.split('.').length === 3) ?? parts[parts.length - 1] ?? v;
  }
  return v;
}

export function compileAuthorizer(name: string, def: AuthorizerDef, deps: AuthorizerDeps, cache: AuthorizerCache): CompiledAuthorizer {
  const rawSources = def.identitySource === undefined ? [] : Array.isArray(def.identitySource) ? def.identitySource : [def.identitySource];
  const defaultSource = def.type === 'JWT' || def.type === 'TOKEN' ? ['$request.header.Authorization'] : [];
  const sources: IdentitySource[] = (rawSources.length ? rawSources : defaultSource).map(parseIdentitySource);
  const viaSubprotocol = sources.some((s) => s.kind === 'header' && s.name === SUBPROTOCOL);
  const ttl = def.resultTtlInSeconds ?? (def.type === 'JWT' ? 300 : 300);
  const cacheName = `${deps.apiId}:${name}`;
  const validation = def.identityValidationExpression ? new RegExp(`^(?:${def.identityValidationExpression})$`) : undefined;

  const collect = (req: AuthRequest): string[] | undefined => {
    const values: string[] = [];
    for (const s of sources) {
      const v = identityValue(s, req);
      if (v === undefined) return undefined;
      values.push(v);
    }
    return values;
  };

  if (def.type === 'JWT') {
    const verifier: JwtVerifier = createJwtVerifier({ issuer: def.issuer!, audience: def.audience ?? [], jwksUri: def.jwksUri! });
    return {
      name,
      type: 'JWT',
      async authorize(req, requiredScopes) {
        const values = collect(req);
        if (!values) return DENY.unauthorized();
        const token = extractToken(values[0]!);
        const scopes = requiredScopes && requiredScopes.length > 0 ? requiredScopes : undefined;
        const key = scopes ? [token, scopes.join(' ')] : [token];
        let r: { claims: Record<string, unknown>; scopes: string[] | null };
        try {
          r = await cache.getOrCompute(cacheName, key, ttl, async () => {
            const v = await verifier.verify(token, scopes);
            if (!v.ok) throw new JwtRejection(v);
            return { claims: v.claims, scopes: v.scopes };
          });
        } catch (err) {
          if (!(err instanceof JwtRejection)) throw err;
          const extra: Record<string, string> = err.result.wwwAuthenticate ? { 'WWW-Authenticate': err.result.wwwAuthenticate } : {};
          if (err.result.status === 403) return DENY.forbidden(extra);
          if (err.result.status === 500) return DENY.configuration();
          return DENY.unauthorized(extra);
        }
        // A cached success must not outlive the token.
        const exp = typeof r.claims.exp === 'number' ? r.claims.exp * 1000 : Number.POSITIVE_INFINITY;
        if (exp <= Date.now()) return DENY.unauthorized();
        const authorizer: Record<string, unknown> = { jwt: { claims: claimsForEvent(r.claims), scopes: r.scopes } };
        if (typeof r.claims.sub === 'string') authorizer.principalId = r.claims.sub;
        return { ok: true, authorizer, protocol: viaSubprotocol ? firstSubprotocol(req.headers) : undefined };
      },
    };
  }

  const loaded = deps.handlers.get(def.handler!);
  if (!loaded) throw new Error(`authorizer ${name}: handler ${def.handler} was not loaded`);
  const invoke = async (req: AuthRequest, values: string[]): Promise<LambdaResult> => {
    const base = req.eventBase();
    const event: Record<string, unknown> =
      def.type === 'TOKEN'
        ? { type: 'TOKEN', authorizationToken: values[0], methodArn: req.methodArn }
        : { type: 'REQUEST', methodArn: req.methodArn, ...base, identitySource: values };
    const requestId = String((req.context as { requestId?: unknown }).requestId ?? '');
    const ctx = new LambdaContext(loaded.name, requestId, Date.now() + deps.timeoutMs, deps.ops, deps.arnPrefix);
    let value: unknown;
    try {
      value = await invokeLambda(loaded.fn, event, ctx, deps.timeoutMs);
    } catch (err) {
      if (isUnauthorized(err)) throw new UnauthorizedSignal();
      throw err;
    }
    if (def.enableSimpleResponses) {
      const s = validateSimpleResponse(value);
      if (!s.ok) throw new Error(`authorizer ${name}: ${s.reason}`);
      return { kind: 'simple', isAuthorized: s.isAuthorized, context: s.context };
    }
    const r = validateAuthorizerResponse(value);
    if (!r.ok) throw new Error(`authorizer ${name}: malformed response: ${r.reason}`);
    return { kind: 'policy', principalId: r.principalId, policyDocument: r.policyDocument, context: r.context, usageIdentifierKey: r.usageIdentifierKey };
  };

  return {
    name,
    type: def.type,
    async authorize(req) {
      const values = collect(req);
      if (!values) return DENY.unauthorized();
      if (validation && !validation.test(values[0]!)) return DENY.unauthorized();
      const started = Date.now();
      let result: LambdaResult;
      try {
        result = await cache.getOrCompute(cacheName, values, ttl, () => invoke(req, values));
      } catch (err) {
        if (err instanceof UnauthorizedSignal) return DENY.unauthorized();
        deps.log.warn({ err, authorizer: name }, 'authorizer failed');
        return DENY.configuration();
      }
      const integrationLatency = Date.now() - started;
      const protocol = viaSubprotocol ? firstSubprotocol(req.headers) : undefined;
      if (result.kind === 'simple') {
        if (!result.isAuthorized) return DENY.forbidden();
        return { ok: true, authorizer: { ...result.context, lambda: result.context, integrationLatency }, protocol };
      }
      // A cached policy is evaluated again for this request's ARN, as on AWS.
      const decision = evaluatePolicy(result.policyDocument, req.methodArn);
      if (decision === 'deny') return DENY.explicit();
      if (decision === 'implicit-deny') return DENY.implicit();
      return {
        ok: true,
        authorizer: { principalId: result.principalId, integrationLatency, ...result.context },
        usageIdentifierKey: result.usageIdentifierKey,
        protocol,
      };
    },
  };
}

export function compileAuthorizers(defs: Record<string, AuthorizerDef> | undefined, deps: AuthorizerDeps): Map<string, CompiledAuthorizer> {
  const cache = new AuthorizerCache({ state: deps.cluster, log: deps.log });
  const out = new Map<string, CompiledAuthorizer>();
  for (const [name, def] of Object.entries(defs ?? {})) out.set(name, compileAuthorizer(name, def, deps, cache));
  return out;
}
