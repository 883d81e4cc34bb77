/**
 * Mapping a Lambda proxy integration's return value to an HTTP response (reference 6.5).
 * `ok: false` means "malformed": the caller answers with `MALFORMED_RESPONSE_V1` (REST and HTTP
 * payload 1.0: 502) or `MALFORMED_RESPONSE_V2` (HTTP payload 2.0: 500, note the capitals).
 */

export type MappedResponse =
  | { ok: true; status: number; headers: Array<[string, string]>; body: Buffer }
  | { ok: false; reason: string };

/**
 * The same mapping without copies, for the gateway's own use: a text body stays the string the
 * function returned (a base64 body is decoded to a Buffer), and the headers may be a shared,
 * frozen list (`content-type: application/json` alone), so they must not be modified.
 */
export type MappedTextResponse =
  | { ok: true; status: number; headers: ReadonlyArray<readonly [string, string]>; body: Buffer | string }
  | { ok: false; reason: string };

export const MALFORMED_RESPONSE_V1 = Object.freeze({
  status: 502,
  body: '{"message": "Internal server error"}',
});

export const MALFORMED_RESPONSE_V2 = Object.freeze({
  status: 500,
  body: '{"message":"Internal Server Error"}',
});

const JSON_TYPE = 'application/json';
/** RFC 9110 token. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** CR, LF and NUL would let a function split or smuggle responses. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to find control characters
const BAD_HEADER_VALUE = /[\r\n\u0000]/;
const BASE64 = /^(?:[A-Za-z0-9+/]*={0,2}|[A-Za-z0-9_-]*={0,2})$/;

type Fail = { ok: false; reason: string };
const fail = (reason: string): Fail => ({ ok: false, reason });

/** The headers of a response that sets none. */
const JSON_ONLY: ReadonlyArray<readonly [string, string]> = Object.freeze([Object.freeze(['content-type', JSON_TYPE] as const)]);

/** The public form of a mapped response: a Buffer body and a headers array of its own. */
function withBuffer(r: MappedTextResponse): MappedResponse {
  if (!r.ok) return r;
  const headers = r.headers.map(([k, v]): [string, string] => [k, v]);
  return { ok: true, status: r.status, headers, body: typeof r.body === 'string' ? Buffer.from(r.body, 'utf8') : r.body };
}

/**
 * Payload format 1.0: `{statusCode, headers?, multiValueHeaders?, body?, isBase64Encoded?}`.
 * - `statusCode` must be an integer 100–599.
 * - `headers` values may be strings, numbers or booleans (null skips the header);
 *   `multiValueHeaders` values are arrays of those. A name in both (case-insensitive) takes the
 *   `multiValueHeaders` values only.
 * - `body` must be a string (or absent/null); with `isBase64Encoded: true` it is decoded.
 * - Without a Content-Type, `application/json` is added (every API Gateway response has one).
 * Unknown top-level fields are ignored.
 */
export function mapLambdaResponseV1(value: unknown): MappedResponse {
  return withBuffer(mapLambdaResponseV1Text(value));
}

/** `mapLambdaResponseV1` without copying the body (see `MappedTextResponse`). */
export function mapLambdaResponseV1Text(value: unknown): MappedTextResponse {
  if (!isPlainObject(value)) return fail('the response is not an object');
  const status = statusOf(value.statusCode);
  if (status === undefined) return fail('statusCode must be an integer between 100 and 599');
  const single = singleHeaders(value.headers);
  if (!Array.isArray(single)) return single;
  let headers = single;
  if (value.multiValueHeaders !== undefined && value.multiValueHeaders !== null) {
    const multi = multiHeaders(value.multiValueHeaders);
    if (!Array.isArray(multi)) return multi;
    const overridden = new Set(multi.map(([k]) => k.toLowerCase()));
    headers = single.filter(([k]) => !overridden.has(k.toLowerCase()));
    headers.push(...multi);
  }
  const body = bodyOf(value.body, value.isBase64Encoded);
  if (isFail(body)) return body;
  return { ok: true, status, headers: withContentType(headers), body };
}

/**
 * Payload format 2.0: `{statusCode, headers?, cookies?, body?, isBase64Encoded?}`, or inferred.
 * - A value that is not an object with a `statusCode` (a string, number, boolean, null, array
 *   or an object without `statusCode`) is inferred: 200, `content-type: application/json`, body
 *   the value as JSON text, except that a bare string is used as-is. `undefined` (a handler that
 *   returns nothing) infers like null: body `null`.
 * - With `statusCode`: as 1.0, except that `multiValueHeaders` is ignored and each `cookies`
 *   entry becomes its own `set-cookie` header.
 */
export function mapLambdaResponseV2(value: unknown): MappedResponse {
  return withBuffer(mapLambdaResponseV2Text(value));
}

/** `mapLambdaResponseV2` without copying the body (see `MappedTextResponse`). */
export function mapLambdaResponseV2Text(value: unknown): MappedTextResponse {
  if (!isPlainObject(value) || value.statusCode === undefined) return inferV2(value);
  const status = statusOf(value.statusCode);
  if (status === undefined) return fail('statusCode must be an integer between 100 and 599');
  const headers = singleHeaders(value.headers);
  if (!Array.isArray(headers)) return headers;
  if (value.cookies !== undefined && value.cookies !== null) {
    if (!Array.isArray(value.cookies)) return fail('cookies must be an array of strings');
    for (const c of value.cookies as unknown[]) {
      if (typeof c !== 'string' || BAD_HEADER_VALUE.test(c)) return fail('cookies must be an array of strings');
      headers.push(['set-cookie', c]);
    }
  }
  const body = bodyOf(value.body, value.isBase64Encoded);
  if (isFail(body)) return body;
  return { ok: true, status, headers: withContentType(headers), body };
}

function inferV2(value: unknown): MappedTextResponse {
  let text: string | undefined;
  if (typeof value === 'string') {
    text = value;
  } else if (value === undefined) {
    text = 'null';
  } else {
    try {
      text = JSON.stringify(value);
    } catch (err) {
      // BigInt or a cycle: the runtime could not have serialised it either.
      return fail(`the response is not JSON-serialisable: ${err instanceof Error ? err.message : String(err)}`);
    }
    if (text === undefined) return fail('the response is not JSON-serialisable');
  }
  return { ok: true, status: 200, headers: JSON_ONLY, body: text };
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !Buffer.isBuffer(v);
}

function statusOf(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= 100 && v <= 599 ? v : undefined;
}

function scalar(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  if (typeof v === 'boolean') return String(v);
  return undefined;
}

function headerPair(name: string, raw: unknown): [string, string] | Fail {
  if (!HEADER_NAME.test(name)) return fail(`invalid header name ${JSON.stringify(name)}`);
  const v = scalar(raw);
  if (v === undefined) return fail(`header ${name} must be a string, number or boolean`);
  if (BAD_HEADER_VALUE.test(v)) return fail(`header ${name} contains CR, LF or NUL`);
  return [name, v];
}

function singleHeaders(raw: unknown): Array<[string, string]> | Fail {
  const out: Array<[string, string]> = [];
  if (raw === undefined || raw === null) return out;
  if (!isPlainObject(raw)) return fail('headers must be an object');
  for (const [name, v] of Object.entries(raw)) {
    if (v === null || v === undefined) continue;
    const pair = headerPair(name, v);
    if (!Array.isArray(pair)) return pair;
    out.push(pair);
  }
  return out;
}

function multiHeaders(raw: unknown): Array<[string, string]> | Fail {
  const out: Array<[string, string]> = [];
  if (raw === undefined || raw === null) return out;
  if (!isPlainObject(raw)) return fail('multiValueHeaders must be an object');
  for (const [name, list] of Object.entries(raw)) {
    if (list === null || list === undefined) continue;
    if (!Array.isArray(list)) return fail(`multiValueHeaders.${name} must be an array`);
    for (const v of list as unknown[]) {
      const pair = headerPair(name, v);
      if (!Array.isArray(pair)) return pair;
      out.push(pair);
    }
  }
  return out;
}

function isFail(v: string | Buffer | Fail): v is Fail {
  return typeof v === 'object' && !Buffer.isBuffer(v);
}

/** The body as text (base64 bodies decoded to a Buffer), or why it is malformed. */
function bodyOf(raw: unknown, isBase64Encoded: unknown): string | Buffer | Fail {
  if (isBase64Encoded !== undefined && isBase64Encoded !== null && typeof isBase64Encoded !== 'boolean') {
    return fail('isBase64Encoded must be a boolean');
  }
  if (raw === undefined || raw === null) return '';
  if (typeof raw !== 'string') return fail('body must be a string');
  if (isBase64Encoded !== true) return raw;
  if (raw.length % 4 === 1 || !BASE64.test(raw)) return fail('body is not valid base64');
  return Buffer.from(raw, raw.includes('-') || raw.includes('_') ? 'base64url' : 'base64');
}

/** Every API Gateway response has a Content-Type: `application/json` unless the function set one. */
function withContentType(headers: Array<[string, string]>): ReadonlyArray<readonly [string, string]> {
  if (headers.length === 0) return JSON_ONLY;
  for (const [k] of headers) if (k.length === 12 && k.toLowerCase() === 'content-type') return headers;
  headers.push(['content-type', JSON_TYPE]);
  return headers;
}
