/**
 * The transport-neutral HTTP request. The transport (uWS today) copies everything it needs into
 * this shape synchronously, then the REST/HTTP pipeline works only with it: routing, proxy
 * events, mapping templates, CORS. Nothing here knows about sockets.
 */
export interface GatewayHttpRequest {
  /** upper-case, e.g. `GET` */
  method: string;
  /** stage name, `$default` for the default stage (no stage segment in the URL) */
  stage: string;
  /** path after the stage, decoded once, normalised, starting with '/' (see `normalisePath`) */
  path: string;
  /** path as received, still percent-encoded, including the stage segment; no query */
  rawPath: string;
  /** query string as received, without the leading '?'; '' when none */
  rawQueryString: string;
  /** raw order, original case; repeated headers appear repeatedly */
  headers: Array<[string, string]>;
  /**
   * The same headers with lower-case names, as the transport received them (uWS lower-cases
   * names), when the transport provides them: payload 2.0 events, which want lower-case names,
   * use these as they are instead of lower-casing `headers`.
   */
  readonly lowerHeaders?: ReadonlyArray<readonly [string, string]> | undefined;
  sourceIp: string;
  body: Buffer;
  requestId: string;
  /** epoch ms */
  requestTimeEpoch: number;
  /** host name the request was addressed to, without port */
  domainName: string;
}

export type NormalisedPath = { ok: true; path: string } | { ok: false };

const REJECTED: NormalisedPath = Object.freeze({ ok: false });

/** C0 controls, DEL and backslash are never valid in a decoded path. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to find control characters
const FORBIDDEN_DECODED = /[\u0000-\u001f\u007f\\]/;
/**
 * Fast path: already normal (no escapes, no empty segments, no segment starting with '.', nothing
 * forbidden), so the path is its own normal form.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the point is to exclude control characters
const ALREADY_NORMAL = /^(?:\/[^/%\\.\u0000-\u001f\u007f][^/%\\\u0000-\u001f\u007f]*)*\/?$/;
/** A segment that is still a dot segment after one more decode (`%2e%2e`, `.%2E`, ...). */
const ENCODED_DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

/**
 * Decodes a raw (percent-encoded) path once and checks it, for the caller to answer 400 when it
 * fails. `raw` is the part after the stage segment, without the query string.
 *
 * Rejected: invalid percent escapes, percent escapes that are not valid UTF-8, NUL and other
 * control characters, backslashes (raw or `%5C`), and `.`/`..` segments in any spelling
 * (`..`, `%2e%2e`, `.%2E`, and even double-encoded `%252e%252e`, which a backend that decodes
 * again would see as `..`).
 *
 * Normalised: a leading '/' is ensured and runs of '/' collapse to one; a trailing '/' is kept.
 * `%2F` decodes to '/' and so separates segments, as on API Gateway, which decodes before it
 * matches resources.
 */
export function normalisePath(raw: string): NormalisedPath {
  if (raw !== '' && ALREADY_NORMAL.test(raw)) return { ok: true, path: raw };
  let decoded = raw;
  if (raw.includes('%')) {
    try {
      decoded = decodeURIComponent(raw);
    } catch (err) {
      // URIError: a malformed escape or bytes that are not UTF-8; either way the caller answers 400.
      if (err instanceof URIError) return REJECTED;
      throw err;
    }
  }
  if (FORBIDDEN_DECODED.test(decoded)) return REJECTED;
  const parts = decoded.split('/');
  const kept: string[] = [];
  for (const seg of parts) {
    if (seg === '') continue;
    if (seg === '.' || seg === '..') return REJECTED;
    if (seg.includes('%') && isEncodedDotSegment(seg)) return REJECTED;
    kept.push(seg);
  }
  let path = `/${kept.join('/')}`;
  if (kept.length > 0 && decoded.endsWith('/')) path += '/';
  return { ok: true, path };
}

function isEncodedDotSegment(seg: string): boolean {
  if (ENCODED_DOT_SEGMENT.test(seg)) return true;
  // %25 is '%': a double-encoded dot ('%252e') becomes a dot after two decodes.
  return ENCODED_DOT_SEGMENT.test(seg.replace(/%25/gi, '%'));
}

/** Splits a normalised path into its non-empty segments. */
export function pathSegments(path: string): string[] {
  const out: string[] = [];
  for (const seg of path.split('/')) if (seg !== '') out.push(seg);
  return out;
}

export interface QueryParseOptions {
  /**
   * Treat `;` as a separator as well as `&`. REST APIs do this ("`;` in the query string splits
   * the data", reference 6.1); HTTP APIs and WHATWG URLs do not. Default false.
   */
  semicolonSeparator?: boolean;
}

/**
 * Parses a raw query string (no leading '?') into decoded `[name, value]` pairs in order.
 * Decoding is form-style: `+` is a space, then percent-decoding; a part whose escapes are
 * malformed is kept as sent (API Gateway is lenient here). `a` alone yields `['a', '']`;
 * empty parts (`a=1&&b=2`) are skipped.
 */
export function parseQueryString(raw: string, options?: QueryParseOptions): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (raw === '') return out;
  const parts = options?.semicolonSeparator === true ? raw.split(/[&;]/) : raw.split('&');
  for (const part of parts) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? '' : part.slice(eq + 1);
    out.push([decodeQueryComponent(name), decodeQueryComponent(value)]);
  }
  return out;
}

/** `+` → space, then percent-decoding; the input unchanged (with `+` → space) when malformed. */
export function decodeQueryComponent(s: string): string {
  const spaced = s.includes('+') ? s.replaceAll('+', ' ') : s;
  if (!spaced.includes('%')) return spaced;
  try {
    return decodeURIComponent(spaced);
  } catch (err) {
    if (err instanceof URIError) return spaced;
    throw err;
  }
}

/**
 * Sets an own enumerable property even for `__proto__`, so names taken from a request can never
 * reach an object's prototype.
 */
export function setOwn<V>(target: Record<string, V>, key: string, value: V): void {
  if (key === '__proto__') {
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    target[key] = value;
  }
}

/** Groups pairs by exact name, preserving first-seen name order and value order. */
export function groupPairs(pairs: ReadonlyArray<readonly [string, string]>): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const [k, v] of pairs) {
    const list = groups.get(k);
    if (list) list.push(v);
    else groups.set(k, [v]);
  }
  return groups;
}

/** `{name: lastValue}` (REST 1.0 `queryStringParameters`); null when there are no pairs. */
export function singleValueMap(pairs: ReadonlyArray<readonly [string, string]>): Record<string, string> | null {
  if (pairs.length === 0) return null;
  const out: Record<string, string> = {};
  for (const [k, v] of pairs) setOwn(out, k, v);
  return out;
}

/** `{name: [values...]}` (REST 1.0 `multiValueQueryStringParameters`); null when there are no pairs. */
export function multiValueMap(pairs: ReadonlyArray<readonly [string, string]>): Record<string, string[]> | null {
  if (pairs.length === 0) return null;
  const out: Record<string, string[]> = {};
  for (const [k, list] of groupPairs(pairs)) setOwn(out, k, list);
  return out;
}

/** `{name: 'v1,v2'}` (HTTP 2.0 `queryStringParameters`); null when there are no pairs. */
export function commaJoinedMap(pairs: ReadonlyArray<readonly [string, string]>): Record<string, string> | null {
  if (pairs.length === 0) return null;
  const out: Record<string, string> = {};
  for (const [k, list] of groupPairs(pairs)) setOwn(out, k, list.join(','));
  return out;
}

/** Last value of a header in a list whose names are all lower-case (`name` must be too); undefined when absent. */
export function lowerHeaderValue(headers: ReadonlyArray<readonly [string, string]>, name: string): string | undefined {
  let found: string | undefined;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i]!;
    if (h[0] === name) found = h[1];
  }
  return found;
}

/** Last value of a header, by case-insensitive name; undefined when absent. */
export function headerValue(headers: ReadonlyArray<readonly [string, string]>, name: string): string | undefined {
  const lower = name.toLowerCase();
  let found: string | undefined;
  for (const [k, v] of headers) if (k.length === lower.length && k.toLowerCase() === lower) found = v;
  return found;
}
