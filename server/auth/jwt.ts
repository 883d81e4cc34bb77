import { createRemoteJWKSet, decodeProtectedHeader, errors, type JWTPayload, jwtVerify } from 'jose';

/**
 * JWT authorizer (HTTP API `JWT` type, reference/aws-apigw.md 4.6), verified with jose against the
 * issuer's JWKS. Steps and outcomes, in order:
 *  1. strip an optional `Bearer ` prefix (case-insensitive); decode the header   -> 401 if malformed
 *  2. `alg` must be an allowed asymmetric algorithm (never `none`, never HS*)   -> 401
 *  3. `kid` must be present and match a JWKS key; an unknown kid refetches the
 *     JWKS at most once per cooldown, so key rotation works without a restart   -> 401
 *  4. signature                                                                  -> 401
 *  5. `iss` must equal the configured issuer exactly                             -> 401
 *  6. `exp` required and in the future, `nbf` and `iat` not in the future
 *     (all within `clockToleranceSec`)                                           -> 401
 *  7. audience: when `aud` is present one of its values must be configured; only
 *     when `aud` is absent is `client_id` checked instead (AWS rule)             -> 401
 *  8. required scopes (per route): `scope` (space-separated) or, when there is no
 *     `scope` claim, `scp` (array or space-separated string) must contain at
 *     least one of them                                                          -> 403
 * The JWKS cannot be fetched (unreachable, timeout, not a JWKS)                  -> 500
 *
 * `verify` never throws. Failures carry an AWS-style `error` (the www-authenticate
 * error_description) and a ready `wwwAuthenticate` header value; AWS answers 401 with
 * `{"message":"Unauthorized"}` and 403 with `{"message":"Forbidden"}`.
 */

/** Asymmetric JWS algorithms accepted by default. AWS documents RSA only; PS and ES are a superset. */
export const DEFAULT_JWT_ALGORITHMS: readonly string[] = Object.freeze([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
]);

const SYMMETRIC_OR_NONE = /^(none|HS\d+)$/i;

export interface JwtVerifierOptions {
  issuer: string;
  /** Accepted `aud` (or, without `aud`, `client_id`) values; at least one. */
  audience: string[];
  jwksUri: string;
  /** Leeway for exp/nbf/iat, seconds. Default 0. */
  clockToleranceSec?: number;
  /** Minimum time between JWKS refetches triggered by an unknown kid (jose cooldownDuration). Default 30000. */
  cooldownMs?: number;
  /** JWKS fetch timeout (jose timeoutDuration). Default 1500. */
  timeoutMs?: number;
  /** JWKS is refetched when older than this even if every kid matches (jose cacheMaxAge). Default 600000. */
  cacheMaxAgeMs?: number;
  /** Allowed algorithms; `none` and HS* are refused even if listed. Default DEFAULT_JWT_ALGORITHMS. */
  algorithms?: readonly string[];
  /** Clock in epoch ms, for tests. */
  now?: () => number;
}

export type JwtVerifyResult =
  | { ok: true; claims: Record<string, unknown>; scopes: string[] | null }
  | {
      ok: false;
      /** 401 invalid token, 403 insufficient scope, 500 signing keys unavailable. */
      status: 401 | 403 | 500;
      /** AWS-style error_description, e.g. 'the token does not have a valid audience'. */
      error: string;
      /** Value for the `www-authenticate` header (absent on 500). */
      wwwAuthenticate?: string;
    };

export interface JwtVerifier {
  verify(token: string, requiredScopes?: string[]): Promise<JwtVerifyResult>;
}

export const JWT_ERRORS = Object.freeze({
  malformed: 'the token is malformed',
  missingKid: 'the token does not have a kid header',
  unknownKid: 'the token kid does not match any signing key of the issuer',
  signature: 'the token signature is invalid',
  issuer: 'the token does not have a valid issuer',
  audience: 'the token does not have a valid audience',
  expired: 'the token has expired',
  noExpiry: 'the token does not have an expiration time',
  notYetValid: 'the token is not valid yet',
  issuedInFuture: 'the token was issued in the future',
  unsupported: 'the token uses an unsupported feature',
  algorithm: 'the token signing method is invalid',
  scope: 'the token does not have any of the required scopes',
  keysUnavailable: 'the signing keys of the issuer could not be retrieved',
});

function quote(s: string): string {
  return s.replace(/["\\]/g, '\\$&');
}

function fail(status: 401 | 403 | 500, error: string, requiredScopes: readonly string[]): JwtVerifyResult {
  if (status === 500) return { ok: false, status, error };
  const code = status === 403 ? 'insufficient_scope' : 'invalid_token';
  const wwwAuthenticate = `Bearer scope="${quote(requiredScopes.join(' '))}" error="${code}" error_description="${quote(error)}"`;
  return { ok: false, status, error, wwwAuthenticate };
}

function splitScopes(s: string): string[] {
  return s.split(' ').filter((x) => x.length > 0);
}

/** Scopes of a token: `scope` when present, else `scp`; null when the token has neither. */
export function tokenScopes(claims: Record<string, unknown>): string[] | null {
  if (typeof claims.scope === 'string') return splitScopes(claims.scope);
  const scp = claims.scp;
  if (typeof scp === 'string') return splitScopes(scp);
  if (Array.isArray(scp)) return scp.filter((x): x is string => typeof x === 'string');
  return null;
}

function audienceMatches(claims: JWTPayload, accepted: ReadonlySet<string>): boolean {
  const aud = claims.aud;
  if (aud !== undefined) {
    const list: unknown[] = Array.isArray(aud) ? aud : [aud];
    return list.some((a) => typeof a === 'string' && accepted.has(a));
  }
  const clientId = claims.client_id;
  return typeof clientId === 'string' && accepted.has(clientId);
}

/** Maps a jose (or fetch) failure to the outcome; see the module comment. */
function classify(err: unknown): { status: 401 | 500; error: string } {
  if (err instanceof errors.JWTExpired) return { status: 401, error: JWT_ERRORS.expired };
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === 'iss') return { status: 401, error: JWT_ERRORS.issuer };
    if (err.claim === 'nbf') return { status: 401, error: JWT_ERRORS.notYetValid };
    if (err.claim === 'exp') return { status: 401, error: err.reason === 'missing' ? JWT_ERRORS.noExpiry : JWT_ERRORS.expired };
    return { status: 401, error: JWT_ERRORS.malformed };
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) return { status: 401, error: JWT_ERRORS.signature };
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) {
    return { status: 401, error: JWT_ERRORS.unknownKid };
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return { status: 401, error: JWT_ERRORS.algorithm };
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return { status: 401, error: JWT_ERRORS.malformed };
  if (err instanceof errors.JOSENotSupported) return { status: 401, error: JWT_ERRORS.unsupported };
  // JWKSTimeout, JWKSInvalid, "Expected 200 OK" (generic JOSEError), network errors from fetch:
  // the gateway cannot judge the token, which is a server-side failure, not the client's.
  return { status: 500, error: JWT_ERRORS.keysUnavailable };
}

export function createJwtVerifier(opts: JwtVerifierOptions): JwtVerifier {
  if (opts.audience.length === 0) throw new TypeError('JWT authorizer needs at least one audience');
  const algorithms = (opts.algorithms ?? DEFAULT_JWT_ALGORITHMS).filter((a) => !SYMMETRIC_OR_NONE.test(a));
  if (algorithms.length === 0) throw new TypeError('JWT authorizer needs at least one asymmetric algorithm');
  const allowedAlgs = new Set(algorithms);
  const accepted: ReadonlySet<string> = new Set(opts.audience);
  const tolerance = opts.clockToleranceSec ?? 0;
  const now = opts.now;
  const jwks = createRemoteJWKSet(new URL(opts.jwksUri), {
    cooldownDuration: opts.cooldownMs ?? 30_000,
    timeoutDuration: opts.timeoutMs ?? 1500,
    cacheMaxAge: opts.cacheMaxAgeMs ?? 600_000,
  });

  async function verify(rawToken: string, requiredScopes: string[] = []): Promise<JwtVerifyResult> {
    if (typeof rawToken !== 'string') return fail(401, JWT_ERRORS.malformed, requiredScopes);
    const token = rawToken.trim().replace(/^bearer\s+/i, '');
    let alg: string | undefined;
    let kid: string | undefined;
    try {
      const header = decodeProtectedHeader(token);
      alg = header.alg;
      kid = header.kid;
    } catch {
      // Not a decodable JWS header (jose raises JWSInvalid or TypeError): a client error.
      return fail(401, JWT_ERRORS.malformed, requiredScopes);
    }
    if (typeof alg !== 'string' || token.split('.').length !== 3) return fail(401, JWT_ERRORS.malformed, requiredScopes);
    if (!allowedAlgs.has(alg)) return fail(401, `signing method ${alg} is invalid`, requiredScopes);
    if (typeof kid !== 'string' || kid.length === 0) return fail(401, JWT_ERRORS.missingKid, requiredScopes);

    let claims: JWTPayload;
    try {
      const res = await jwtVerify(token, jwks, {
        issuer: opts.issuer,
        algorithms,
        requiredClaims: ['exp'],
        clockTolerance: tolerance,
        ...(now ? { currentDate: new Date(now()) } : {}),
      });
      claims = res.payload;
    } catch (err) {
      const { status, error } = classify(err);
      return fail(status, error, requiredScopes);
    }

    const nowSec = Math.floor((now ? now() : Date.now()) / 1000);
    if (typeof claims.iat === 'number' && claims.iat > nowSec + tolerance) {
      return fail(401, JWT_ERRORS.issuedInFuture, requiredScopes);
    }
    if (!audienceMatches(claims, accepted)) return fail(401, JWT_ERRORS.audience, requiredScopes);

    const record: Record<string, unknown> = { ...claims };
    const scopes = tokenScopes(record);
    if (requiredScopes.length > 0 && !requiredScopes.some((s) => scopes?.includes(s))) {
      return fail(403, JWT_ERRORS.scope, requiredScopes);
    }
    return { ok: true, claims: record, scopes };
  }

  return { verify };
}

function claimString(value: unknown, nested: boolean): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value === null || value === undefined) return nested ? 'null' : '';
  if (Array.isArray(value)) return `[${value.map((v) => claimString(v, true)).join(' ')}]`;
  return JSON.stringify(value);
}

/**
 * Claims as API Gateway hands them to the backend in `requestContext.authorizer.jwt.claims`:
 * every value a string. Strings unchanged; numbers and booleans via String() (`1700000000`,
 * `true`); arrays bracketed and space-separated as AWS renders them (`["a","b"]` -> `[a b]`, observed
 * for `cognito:groups`); objects as JSON (AWS's own rendering of nested objects is not documented);
 * null as the empty string.
 */
export function claimsForEvent(claims: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(claims)) out[key] = claimString(value, false);
  return out;
}
