/**
 * Gateway responses (reference 6.7): the answers the gateway itself produces (no route, denied,
 * throttled, invalid request, integration failed...), each of a response type with a default
 * status, message and `x-amzn-ErrorType`, customisable per API with a status code, headers and
 * a body template.
 *
 * Customisation layers, field by field (status, headers, body):
 *   1. the customisation of the type itself,
 *   2. the customisation of `DEFAULT_4XX` / `DEFAULT_5XX`, chosen by the status class of the
 *      type (its built-in status, or `ctx.status` when the caller renders it with another one),
 *   3. the built-in default.
 * As on API Gateway, a status code set on `DEFAULT_4XX`/`DEFAULT_5XX` changes the status of every
 * response of that class that does not set its own. Headers of layers 1 and 2 are merged (the
 * type's own win per name), so CORS headers put on `DEFAULT_4XX` also reach a customised
 * `UNAUTHORIZED`. `REQUEST_TOO_LARGE` is never customised, not even through `DEFAULT_4XX`.
 *
 * Templates are not VTL: only `$context.x.y`, `${context.x.y}`, `$stageVariables.x` (and the
 * quiet `$!` forms) are replaced, anything else is literal. `$context.error.messageString` is the
 * message as a JSON string (`"..."`, or `null`), `$context.error.message` the raw text,
 * `$context.error.responseType` the type, `$context.requestId` the request id; every other
 * `$context.*` is looked up in `ctx.context` (a nested object, or flat dotted keys). Missing
 * values render as ''. Values are inserted as they are (AWS does not escape them either).
 */

export type GatewayResponseType =
  | 'ACCESS_DENIED'
  | 'API_CONFIGURATION_ERROR'
  | 'AUTHORIZER_CONFIGURATION_ERROR'
  | 'AUTHORIZER_FAILURE'
  | 'BAD_REQUEST_PARAMETERS'
  | 'BAD_REQUEST_BODY'
  | 'DEFAULT_4XX'
  | 'DEFAULT_5XX'
  | 'EXPIRED_TOKEN'
  | 'INTEGRATION_FAILURE'
  | 'INTEGRATION_TIMEOUT'
  | 'INVALID_API_KEY'
  | 'INVALID_SIGNATURE'
  | 'MISSING_AUTHENTICATION_TOKEN'
  | 'QUOTA_EXCEEDED'
  | 'REQUEST_TOO_LARGE'
  | 'RESOURCE_NOT_FOUND'
  | 'THROTTLED'
  | 'UNAUTHORIZED'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'WAF_FILTERED'
  /**
   * Not an AWS type: the REST 502 for a Lambda error or a malformed Lambda proxy response
   * (`{"message": "Internal server error"}`). AWS reports it as `INTEGRATION_FAILURE` (that is
   * its `$context.error.responseType`), so it is customised through `INTEGRATION_FAILURE`, then
   * `DEFAULT_5XX`.
   */
  | 'BAD_GATEWAY';

export interface GatewayResponseDefault {
  status: number;
  /** default `$context.error.message`; null renders `{"message": null}` */
  message: string | null;
  /** `x-amzn-ErrorType` */
  errorType: string;
  /**
   * The built-in body is `{"message": ...}` with a space after the colon. AWS is not consistent
   * here; the spacing follows the observed bodies so they match byte for byte.
   */
  spaced: boolean;
}

const d = (status: number, message: string | null, errorType: string, spaced = false): GatewayResponseDefault =>
  Object.freeze({ status, message, errorType, spaced });

/** The built-in table. Statuses from the AWS documentation, bodies and error types as observed. */
export const DEFAULT_GATEWAY_RESPONSES: Readonly<Record<GatewayResponseType, GatewayResponseDefault>> = Object.freeze({
  ACCESS_DENIED: d(403, 'User is not authorized to access this resource', 'AccessDeniedException'),
  API_CONFIGURATION_ERROR: d(500, 'Internal server error', 'InternalServerErrorException', true),
  AUTHORIZER_CONFIGURATION_ERROR: d(500, null, 'AuthorizerConfigurationException', true),
  AUTHORIZER_FAILURE: d(500, null, 'AuthorizerFailureException', true),
  BAD_REQUEST_PARAMETERS: d(400, 'Missing required request parameters: []', 'BadRequestException', true),
  BAD_REQUEST_BODY: d(400, 'Invalid request body', 'BadRequestException', true),
  DEFAULT_4XX: d(400, null, 'BadRequestException'),
  DEFAULT_5XX: d(500, 'Internal server error', 'InternalServerErrorException', true),
  EXPIRED_TOKEN: d(403, 'The security token included in the request is expired', 'ExpiredTokenException'),
  INTEGRATION_FAILURE: d(504, 'Internal server error', 'InternalServerErrorException', true),
  INTEGRATION_TIMEOUT: d(504, 'Endpoint request timed out', 'InternalServerErrorException', true),
  INVALID_API_KEY: d(403, 'Forbidden', 'ForbiddenException'),
  INVALID_SIGNATURE: d(
    403,
    'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
    'InvalidSignatureException',
  ),
  MISSING_AUTHENTICATION_TOKEN: d(403, 'Missing Authentication Token', 'MissingAuthenticationTokenException'),
  QUOTA_EXCEEDED: d(429, 'Limit Exceeded', 'LimitExceededException'),
  REQUEST_TOO_LARGE: d(413, 'Request Too Long', 'BadRequestException', true),
  RESOURCE_NOT_FOUND: d(404, 'Not Found', 'NotFoundException'),
  THROTTLED: d(429, 'Too Many Requests', 'TooManyRequestsException'),
  UNAUTHORIZED: d(401, 'Unauthorized', 'UnauthorizedException'),
  UNSUPPORTED_MEDIA_TYPE: d(415, 'Unsupported Media Type', 'UnsupportedMediaTypeException'),
  WAF_FILTERED: d(403, 'Forbidden', 'ForbiddenException'),
  BAD_GATEWAY: d(502, 'Internal server error', 'InternalServerErrorException', true),
});

export const GATEWAY_RESPONSE_TYPES: readonly GatewayResponseType[] = Object.freeze(
  Object.keys(DEFAULT_GATEWAY_RESPONSES) as GatewayResponseType[],
);

/** The keys an API definition may customise: the AWS types, minus `REQUEST_TOO_LARGE` (AWS ignores it). */
export const CUSTOMISABLE_GATEWAY_RESPONSE_TYPES: readonly GatewayResponseType[] = Object.freeze(
  GATEWAY_RESPONSE_TYPES.filter((t) => t !== 'REQUEST_TOO_LARGE' && t !== 'BAD_GATEWAY'),
);

/** One entry of the API definition's `gatewayResponses` section. */
export interface GatewayResponseCustomisation {
  statusCode?: number | undefined;
  /** header name → value; values are templates like the body */
  headers?: Record<string, string> | undefined;
  /** body template ($context.* substitution, not VTL) */
  body?: string | undefined;
}

export interface GatewayResponseRenderContext {
  /**
   * `$context.error.message`. `undefined` or `null` means "the type's default message" (which is
   * itself null for some types, e.g. AUTHORIZER_CONFIGURATION_ERROR → `{"message": null}`).
   */
  message?: string | null | undefined;
  requestId: string;
  /**
   * The status of this particular error when it is not the type's default (e.g. 502 for
   * INTEGRATION_FAILURE from a Lambda error, 400 for DEFAULT_4XX). A customised status code
   * (of the type, or of DEFAULT_4XX/5XX) still wins, as on AWS.
   */
  status?: number | undefined;
  /** added after the built-in headers, replacing same-named ones; customised headers replace these in turn */
  extraHeaders?: ReadonlyArray<readonly [string, string]> | undefined;
  /** `$context.*` values for templates, e.g. `{ stage, identity: { sourceIp }, error: { validationErrorString } }` */
  context?: Readonly<Record<string, unknown>> | undefined;
  /** `$stageVariables.*` values for templates */
  stageVariables?: Readonly<Record<string, string>> | undefined;
}

export interface RenderedGatewayResponse {
  status: number;
  /**
   * `content-type: application/json` (unless customised), `x-amzn-ErrorType`, then the extra and
   * customised headers. `x-amzn-RequestId` is not added: the pipeline adds it to every response.
   */
  headers: Array<[string, string]>;
  body: string;
}

export interface GatewayResponses {
  render(type: GatewayResponseType, ctx: GatewayResponseRenderContext): RenderedGatewayResponse;
  /** True when the API customises this type (directly, not through DEFAULT_4XX/5XX). */
  isCustomised(type: GatewayResponseType): boolean;
}

export class GatewayResponseConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GatewayResponseConfigError';
  }
}

/** RFC 9110 token. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to find control characters
const UNSAFE_HEADER_CHARS = /[\r\n\u0000]/g;

const entrySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    statusCode: { type: 'integer', minimum: 100, maximum: 599 },
    headers: {
      type: 'object',
      propertyNames: { pattern: "^[!#$%&'*+\\-.^_`|~0-9A-Za-z]{1,256}$" },
      additionalProperties: { type: 'string', maxLength: 8192 },
    },
    body: { type: 'string', maxLength: 65536 },
  },
} as const;

/**
 * JSON-schema fragment for the API definition's `gatewayResponses` section: an object keyed by
 * the customisable types, each `{ statusCode?, headers?, body? }`, everything closed.
 */
export const gatewayResponsesSchema = {
  type: 'object',
  additionalProperties: false,
  properties: Object.fromEntries(CUSTOMISABLE_GATEWAY_RESPONSE_TYPES.map((t) => [t, entrySchema])) as Record<
    string,
    typeof entrySchema
  >,
} as const;

// ---- templates -----------------------------------------------------------------------------

type TemplatePart = string | { root: 'context' | 'stageVariables'; path: readonly string[] };
type CompiledTemplate = readonly TemplatePart[];

const VARIABLE =
  /\$!?\{(context|stageVariables)((?:\.[A-Za-z0-9_-]+)+)\}|\$!?(context|stageVariables)((?:\.[A-Za-z0-9_]+)+)/g;

function compileTemplate(src: string): CompiledTemplate {
  const parts: TemplatePart[] = [];
  let last = 0;
  for (const m of src.matchAll(VARIABLE)) {
    if (m.index > last) parts.push(src.slice(last, m.index));
    const root = (m[1] ?? m[3]) as 'context' | 'stageVariables';
    const path = (m[2] ?? m[4] ?? '').slice(1).split('.');
    parts.push({ root, path });
    last = m.index + m[0].length;
  }
  if (last < src.length) parts.push(src.slice(last));
  return parts;
}

interface Resolved {
  type: GatewayResponseType;
  message: string | null;
  ctx: GatewayResponseRenderContext;
}

function lookup(obj: unknown, path: readonly string[]): unknown {
  if (obj === null || typeof obj !== 'object') return undefined;
  const rec = obj as Record<string, unknown>;
  const flat = path.join('.');
  if (Object.hasOwn(rec, flat)) return rec[flat];
  let cur: unknown = obj;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, key)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

function contextValue(path: readonly string[], r: Resolved): unknown {
  if (path.length === 2 && path[0] === 'error') {
    switch (path[1]) {
      case 'message':
        return r.message ?? '';
      case 'messageString':
        return JSON.stringify(r.message);
      case 'responseType':
        return r.type === 'BAD_GATEWAY' ? 'INTEGRATION_FAILURE' : r.type;
    }
  }
  if (path.length === 1 && path[0] === 'requestId') return r.ctx.requestId;
  return lookup(r.ctx.context, path);
}

function stringify(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v) ?? '';
}

function renderTemplate(t: CompiledTemplate, r: Resolved): string {
  let out = '';
  for (const part of t) {
    if (typeof part === 'string') out += part;
    else if (part.root === 'context') out += stringify(contextValue(part.path, r));
    else out += stringify(lookup(r.ctx.stageVariables, part.path));
  }
  return out;
}

// ---- compilation ---------------------------------------------------------------------------

interface CompiledCustomisation {
  statusCode: number | undefined;
  headers: ReadonlyArray<readonly [string, CompiledTemplate]>;
  body: CompiledTemplate | undefined;
}

function compileEntry(type: string, raw: GatewayResponseCustomisation): CompiledCustomisation {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new GatewayResponseConfigError(`gatewayResponses.${type} must be an object`);
  }
  const { statusCode, headers, body } = raw;
  if (statusCode !== undefined && (!Number.isInteger(statusCode) || statusCode < 100 || statusCode > 599)) {
    throw new GatewayResponseConfigError(`gatewayResponses.${type}.statusCode must be an integer from 100 to 599`);
  }
  const compiledHeaders: Array<readonly [string, CompiledTemplate]> = [];
  if (headers !== undefined) {
    for (const [name, value] of Object.entries(headers)) {
      if (!HEADER_NAME.test(name)) {
        throw new GatewayResponseConfigError(`gatewayResponses.${type}.headers: invalid header name ${JSON.stringify(name)}`);
      }
      if (typeof value !== 'string') {
        throw new GatewayResponseConfigError(`gatewayResponses.${type}.headers.${name} must be a string`);
      }
      compiledHeaders.push([name, compileTemplate(value)]);
    }
  }
  if (body !== undefined && typeof body !== 'string') {
    throw new GatewayResponseConfigError(`gatewayResponses.${type}.body must be a string`);
  }
  return { statusCode, headers: compiledHeaders, body: body === undefined ? undefined : compileTemplate(body) };
}

/** Replaces every header of `into` named like one in `from` (case-insensitive), then appends `from`. */
function overlay(into: Array<[string, string]>, from: ReadonlyArray<readonly [string, string]>): Array<[string, string]> {
  if (from.length === 0) return into;
  const names = new Set(from.map(([k]) => k.toLowerCase()));
  const out = into.filter(([k]) => !names.has(k.toLowerCase()));
  for (const [k, v] of from) out.push([k, v]);
  return out;
}

/**
 * Compiles the API's customisations once; throws `GatewayResponseConfigError` for an unknown
 * type, `REQUEST_TOO_LARGE`, or an invalid entry (normally already caught by
 * `gatewayResponsesSchema`).
 */
export function compileGatewayResponses(
  custom: Readonly<Record<string, GatewayResponseCustomisation>> | undefined,
): GatewayResponses {
  const table = new Map<GatewayResponseType, CompiledCustomisation>();
  const customisable = new Set<string>(CUSTOMISABLE_GATEWAY_RESPONSE_TYPES);
  for (const [type, entry] of Object.entries(custom ?? {})) {
    if (type === 'REQUEST_TOO_LARGE') {
      throw new GatewayResponseConfigError('gatewayResponses.REQUEST_TOO_LARGE cannot be customised (as on API Gateway)');
    }
    if (!customisable.has(type)) {
      throw new GatewayResponseConfigError(
        `gatewayResponses: unknown response type ${JSON.stringify(type)}; use one of ${CUSTOMISABLE_GATEWAY_RESPONSE_TYPES.join(', ')}`,
      );
    }
    table.set(type as GatewayResponseType, compileEntry(type, entry));
  }

  const ownCustomisation = (type: GatewayResponseType): CompiledCustomisation | undefined => {
    if (type === 'REQUEST_TOO_LARGE') return undefined;
    return table.get(type === 'BAD_GATEWAY' ? 'INTEGRATION_FAILURE' : type);
  };

  return {
    isCustomised: (type) => ownCustomisation(type) !== undefined,
    render(type, ctx) {
      const def = DEFAULT_GATEWAY_RESPONSES[type];
      const message = ctx.message ?? def.message;
      const builtinStatus = ctx.status ?? def.status;
      const own = ownCustomisation(type);
      let fallback: CompiledCustomisation | undefined;
      if (type !== 'REQUEST_TOO_LARGE' && type !== 'DEFAULT_4XX' && type !== 'DEFAULT_5XX') {
        fallback = table.get(builtinStatus >= 500 ? 'DEFAULT_5XX' : 'DEFAULT_4XX');
      }
      const resolved: Resolved = { type, message, ctx };
      const status = own?.statusCode ?? fallback?.statusCode ?? builtinStatus;

      let headers: Array<[string, string]> = [
        ['content-type', 'application/json'],
        ['x-amzn-ErrorType', def.errorType],
      ];
      if (ctx.extraHeaders) headers = overlay(headers, ctx.extraHeaders);
      const customHeaders: Array<[string, string]> = [];
      const ownNames = new Set(own?.headers.map(([k]) => k.toLowerCase()));
      for (const [k, t] of fallback?.headers ?? []) {
        if (!ownNames.has(k.toLowerCase())) customHeaders.push([k, renderHeader(t, resolved)]);
      }
      for (const [k, t] of own?.headers ?? []) customHeaders.push([k, renderHeader(t, resolved)]);
      headers = overlay(headers, customHeaders);

      const template = own?.body ?? fallback?.body;
      const body =
        template !== undefined
          ? renderTemplate(template, resolved)
          : `{"message":${def.spaced ? ' ' : ''}${JSON.stringify(message)}}`;
      return { status, headers, body };
    },
  };
}

function renderHeader(t: CompiledTemplate, r: Resolved): string {
  return renderTemplate(t, r).replace(UNSAFE_HEADER_CHARS, '');
}
