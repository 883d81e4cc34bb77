/**
 * Lambda-authorizer results: response validation and IAM-style policy evaluation, as API Gateway
 * does it for REST, WebSocket and HTTP payload 1.0 authorizers (reference/aws-apigw.md 4.3-4.4, 4.8).
 *
 * Decisions and how the transport maps them (4.4):
 * - `allow`          -> continue;
 * - `deny`           -> 403 "User is not authorized to access this resource with an explicit deny";
 * - `implicit-deny`  -> 403 "User is not authorized to access this resource" (no Allow matched,
 *                       typically a cached policy that names another method);
 * - a malformed response (`validate*` returns ok:false) -> 500 (AuthorizerConfigurationException).
 *
 * Matching rules (IAM policy grammar, the subset API Gateway honours):
 * - `Statement` is one statement object or an array of them.
 * - `Effect` is compared case-insensitively ("Allow"/"allow" both work, as they do on AWS).
 * - `Action`/`NotAction`, `Resource`/`NotResource` are a string or an array of strings.
 * - Actions are matched case-insensitively against `execute-api:Invoke` (IAM action names are
 *   case-insensitive), with `*`/`?` wildcards, so `execute-api:*` and `*` match.
 * - Resources are matched case-sensitively against the method ARN; `*` matches any run of
 *   characters (including `/` and `:`), `?` exactly one character.
 * - An explicit Deny wins over any Allow; no matching Allow is an implicit deny.
 * - `Condition` cannot be evaluated here (there is no request context for IAM condition keys), so
 *   it fails closed: a conditional Allow never grants, a conditional Deny always applies.
 */

/** Largest authorizer response accepted, measured as UTF-8 JSON (AWS: 8 KB). */
export const MAX_AUTHORIZER_RESPONSE_BYTES = 8 * 1024; // 8 KiB

const INVOKE_ACTION = 'execute-api:invoke';

export type PolicyDecision = 'allow' | 'deny' | 'implicit-deny';

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action?: string[];
  NotAction?: string[];
  Resource?: string[];
  NotResource?: string[];
  Condition?: Record<string, unknown>;
}

/** A validated policy: `Statement` normalised to an array, Action/Resource lists normalised to arrays. */
export interface PolicyDocument {
  Version?: string;
  Statement: PolicyStatement[];
}

export type AuthorizerContextValue = string | number | boolean;

export type AuthorizerResponseResult =
  | {
      ok: true;
      principalId: string;
      policyDocument: PolicyDocument;
      context: Record<string, AuthorizerContextValue>;
      usageIdentifierKey?: string;
    }
  | { ok: false; reason: string };

export type SimpleResponseResult =
  | { ok: true; isAuthorized: boolean; context: Record<string, unknown> }
  | { ok: false; reason: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Wildcard match without regular expressions (no backtracking blow-up on long ARNs):
 * `*` any run of characters, `?` exactly one. Greedy with a single back-off point, O(n*m) worst case.
 */
export function wildcardMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    const pc = pattern[p];
    if (pc !== undefined && pc !== '*' && (pc === '?' || pc === text[t])) {
      p++;
      t++;
    } else if (pc === '*') {
      starP = p++;
      starT = t;
    } else if (starP !== -1) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

/** A string or array of strings, as IAM allows; anything else is undefined. */
function stringList(value: unknown): string[] | undefined {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string')) return value as string[];
  return undefined;
}

function statementList(value: unknown): unknown[] | undefined {
  if (Array.isArray(value)) return value;
  if (isRecord(value)) return [value];
  return undefined;
}

function listMatches(
  include: unknown,
  exclude: unknown,
  match: (pattern: string) => boolean,
): boolean {
  const inc = stringList(include);
  if (inc) return inc.some(match);
  const exc = stringList(exclude);
  if (exc) return !exc.some(match);
  return false;
}

/**
 * Evaluates an authorizer policy document for one method ARN. Never throws: input that is not a
 * policy document evaluates to `implicit-deny` (validate with `validateAuthorizerResponse` first to
 * tell a malformed response, which is a 500, from a deny, which is a 403).
 */
export function evaluatePolicy(policyDocument: unknown, methodArn: string): PolicyDecision {
  if (!isRecord(policyDocument)) return 'implicit-deny';
  const statements = statementList(policyDocument.Statement);
  if (!statements) return 'implicit-deny';
  let allowed = false;
  for (const st of statements) {
    if (!isRecord(st) || typeof st.Effect !== 'string') continue;
    const effect = st.Effect.toLowerCase();
    if (effect !== 'allow' && effect !== 'deny') continue;
    const actionOk = listMatches(st.Action, st.NotAction, (a) => wildcardMatch(a.toLowerCase(), INVOKE_ACTION));
    if (!actionOk) continue;
    const resourceOk = listMatches(st.Resource, st.NotResource, (r) => wildcardMatch(r, methodArn));
    if (!resourceOk) continue;
    const conditional = isRecord(st.Condition) && Object.keys(st.Condition).length > 0;
    if (effect === 'deny') return 'deny';
    if (!conditional) allowed = true;
  }
  return allowed ? 'allow' : 'implicit-deny';
}

/**
 * Normalised policies, shared by content. Authorizers tend to return the same policy for every
 * caller (allow the stage, say), and the result cache keeps one per token: sharing one frozen
 * copy saves ~400 bytes per cached caller (measured with 19,000 idle connections, each with its
 * own token). Bounded: emptied when full.
 */
const SHARED_POLICIES_MAX = 10_000;
const sharedPolicies = new Map<string, PolicyDocument>();

function sharedPolicy(doc: PolicyDocument): PolicyDocument {
  const key = JSON.stringify(doc);
  const known = sharedPolicies.get(key);
  if (known) return known;
  if (sharedPolicies.size >= SHARED_POLICIES_MAX) sharedPolicies.clear();
  for (const st of doc.Statement) {
    for (const list of [st.Action, st.NotAction, st.Resource, st.NotResource]) if (list) Object.freeze(list);
    Object.freeze(st);
  }
  Object.freeze(doc.Statement);
  Object.freeze(doc);
  sharedPolicies.set(key, doc);
  return doc;
}

function jsonSize(value: unknown): number | string {
  try {
    const json = JSON.stringify(value);
    return json === undefined ? 'response is not JSON-serialisable' : Buffer.byteLength(json, 'utf8');
  } catch (err) {
    return `response is not JSON-serialisable: ${err instanceof Error ? err.message : String(err)}`;
  }
}

function checkSize(value: unknown): string | undefined {
  const size = jsonSize(value);
  if (typeof size === 'string') return size;
  if (size > MAX_AUTHORIZER_RESPONSE_BYTES) {
    return `response is ${size} bytes, over the ${MAX_AUTHORIZER_RESPONSE_BYTES}-byte limit`;
  }
  return undefined;
}

function normaliseStatement(raw: unknown, index: number): PolicyStatement | string {
  const where = `policyDocument.Statement[${index}]`;
  if (!isRecord(raw)) return `${where} is not an object`;
  const effect = typeof raw.Effect === 'string' ? raw.Effect.toLowerCase() : undefined;
  if (effect !== 'allow' && effect !== 'deny') return `${where}.Effect must be "Allow" or "Deny"`;
  const st: PolicyStatement = { Effect: effect === 'allow' ? 'Allow' : 'Deny' };
  if (typeof raw.Sid === 'string') st.Sid = raw.Sid;
  for (const [key, notKey] of [
    ['Action', 'NotAction'],
    ['Resource', 'NotResource'],
  ] as const) {
    const hasKey = raw[key] !== undefined;
    const hasNot = raw[notKey] !== undefined;
    if (hasKey === hasNot) return `${where} needs exactly one of ${key} and ${notKey}`;
    const list = stringList(hasKey ? raw[key] : raw[notKey]);
    if (!list) return `${where}.${hasKey ? key : notKey} must be a string or a non-empty array of strings`;
    st[hasKey ? key : notKey] = list;
  }
  if (raw.Condition !== undefined) {
    if (!isRecord(raw.Condition)) return `${where}.Condition must be an object`;
    st.Condition = raw.Condition;
  }
  return st;
}

/**
 * Validates a Lambda authorizer's IAM-policy response (REST, WebSocket, HTTP payload 1.0).
 * Malformed (-> 500 at the caller): not an object, over 8 KB as JSON, `principalId` not a string,
 * missing `policyDocument` or `Statement`, a statement without a valid Effect/Action/Resource,
 * `context` not an object or holding anything but strings, finite numbers and booleans,
 * `usageIdentifierKey` present but not a string. `context: null` is treated as no context.
 */
export function validateAuthorizerResponse(value: unknown): AuthorizerResponseResult {
  if (!isRecord(value)) return { ok: false, reason: 'response is not an object' };
  const sizeError = checkSize(value);
  if (sizeError) return { ok: false, reason: sizeError };
  if (typeof value.principalId !== 'string') return { ok: false, reason: 'principalId must be a string' };
  const doc = value.policyDocument;
  if (!isRecord(doc)) return { ok: false, reason: 'policyDocument is missing or not an object' };
  const rawStatements = statementList(doc.Statement);
  if (!rawStatements) return { ok: false, reason: 'policyDocument.Statement is missing or not an object/array' };
  const statements: PolicyStatement[] = [];
  for (const [i, raw] of rawStatements.entries()) {
    const st = normaliseStatement(raw, i);
    if (typeof st === 'string') return { ok: false, reason: st };
    statements.push(st);
  }
  const policyDocument = sharedPolicy(typeof doc.Version === 'string' ? { Version: doc.Version, Statement: statements } : { Statement: statements });

  const context: Record<string, AuthorizerContextValue> = {};
  if (value.context !== undefined && value.context !== null) {
    if (!isRecord(value.context)) return { ok: false, reason: 'context must be an object' };
    for (const [key, v] of Object.entries(value.context)) {
      if (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) {
        context[key] = v;
      } else {
        return { ok: false, reason: `context.${key} must be a string, number or boolean` };
      }
    }
  }
  const result: AuthorizerResponseResult = { ok: true, principalId: value.principalId, policyDocument, context };
  if (value.usageIdentifierKey !== undefined && value.usageIdentifierKey !== null) {
    if (typeof value.usageIdentifierKey !== 'string') return { ok: false, reason: 'usageIdentifierKey must be a string' };
    result.usageIdentifierKey = value.usageIdentifierKey;
  }
  return result;
}

/**
 * Validates an HTTP API payload 2.0 "simple response": `{ isAuthorized: boolean, context?: object }`.
 * Context values may be any JSON (arrays and maps included). Same 8 KB limit.
 */
export function validateSimpleResponse(value: unknown): SimpleResponseResult {
  if (!isRecord(value)) return { ok: false, reason: 'response is not an object' };
  const sizeError = checkSize(value);
  if (sizeError) return { ok: false, reason: sizeError };
  if (typeof value.isAuthorized !== 'boolean') return { ok: false, reason: 'isAuthorized must be a boolean' };
  if (value.context === undefined || value.context === null) {
    return { ok: true, isAuthorized: value.isAuthorized, context: {} };
  }
  if (!isRecord(value.context)) return { ok: false, reason: 'context must be an object' };
  return { ok: true, isAuthorized: value.isAuthorized, context: { ...value.context } };
}

export interface MethodArnParts {
  region: string;
  accountId: string;
  apiId: string;
  stage: string;
  /** REST/HTTP: HTTP verb (upper-cased in the ARN). */
  method?: string;
  /** REST/HTTP: resource path, e.g. `/pets/42`; the leading slash is dropped, `/` gives `.../GET/`. */
  resourcePath?: string;
  /** WebSocket: route key, e.g. `$connect`. Takes precedence over method/resourcePath. */
  routeKey?: string;
  /** Default `aws`. */
  partition?: string;
}

/**
 * Method ARN as API Gateway puts it in `methodArn` (4.8):
 * REST/HTTP `arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{VERB}/{path}`,
 * WebSocket `arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{routeKey}`.
 * Throws a TypeError when neither a routeKey nor a method and resourcePath are given.
 */
export function buildMethodArn(parts: MethodArnParts): string {
  const base = `arn:${parts.partition ?? 'aws'}:execute-api:${parts.region}:${parts.accountId}:${parts.apiId}/${parts.stage}`;
  if (parts.routeKey !== undefined) return `${base}/${parts.routeKey}`;
  if (parts.method === undefined || parts.resourcePath === undefined) {
    throw new TypeError('buildMethodArn needs either routeKey or both method and resourcePath');
  }
  const path = parts.resourcePath.startsWith('/') ? parts.resourcePath.slice(1) : parts.resourcePath;
  return `${base}/${parts.method.toUpperCase()}/${path}`;
}
