import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export interface SignedRequest {
  method: string;
  rawPath: string /* raw path as received, percent-encoding kept, e.g. /prod/@connections/abc%3D */;
  rawQuery: string /* raw query string without '?' */;
  headers: Record<string, string> /* names lower-cased; repeated headers joined with ',' */;
  body: Uint8Array;
}

export interface SigV4Options {
  service?: string /* default 'execute-api' */;
  maxClockSkewMs?: number /* default 5 minutes */;
  now?: () => number;
}

/** `reason` is safe to show to clients: it never contains a secret or the expected signature. */
export type SigV4Result = { ok: true; accessKeyId: string; region: string } | { ok: false; reason: string };

const ALGORITHM = 'AWS4-HMAC-SHA256';
const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
const MAX_PRESIGN_EXPIRES_S = 7 * 24 * 3600;
const LONG_DATE_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const SIGNATURE_RE = /^[0-9a-f]{64}$/;
const HEADER_NAME_RE = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;

class Sigv4Error extends Error {}
const fail = (reason: string): never => {
  throw new Sigv4Error(reason);
};
const decode = (s: string): string => {
  try {
    return decodeURIComponent(s);
  } catch {
    return fail('malformed query string');
  }
};

const sha256Hex = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');
const hmac = (key: string | Buffer, data: string): Buffer => createHmac('sha256', key).update(data, 'utf8').digest();

/** RFC 3986 encoding as the AWS SDK does it (encodeURIComponent plus !'()*). */
const escapeUri = (s: string): string =>
  encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * Canonical URI for non-S3 services: normalise '.', '..' and empty segments, then URI-encode each segment of the
 * raw (already percent-encoded) path again, exactly like @smithy/signature-v4 with uriEscapePath=true.
 */
function canonicalUri(rawPath: string): string {
  const segments: string[] = [];
  for (const seg of rawPath.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') segments.pop();
    else segments.push(escapeUri(seg));
  }
  return `${rawPath.startsWith('/') ? '/' : ''}${segments.join('/')}${segments.length > 0 && rawPath.endsWith('/') ? '/' : ''}`;
}

/** Decoded (key, value) pairs; a bare `key` counts as `key=`. '+' is kept literally (the SDKs send spaces as %20). */
const parseQuery = (rawQuery: string): Array<[string, string]> =>
  rawQuery
    .split('&')
    .filter((part) => part !== '')
    .map((part) => {
      const eq = part.indexOf('=');
      return eq === -1 ? [decode(part), ''] : [decode(part.slice(0, eq)), decode(part.slice(eq + 1))];
    });

function canonicalQuery(pairs: Array<[string, string]>): string {
  return pairs
    .filter(([k]) => k.toLowerCase() !== 'x-amz-signature')
    .map(([k, v]): [string, string] => [escapeUri(k), escapeUri(v)])
    .sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

const canonicalHeaderValue = (v: string): string => v.replace(/[\r\n]/g, ' ').replace(/[ \t]+/g, ' ').replace(/^ | $/g, '');

/** Parses a basic-ISO-8601 amz date (20240120T115457Z) or an HTTP Date header into epoch ms + amz long date. */
function parseRequestDate(amzDate: string | undefined, httpDate: string | undefined): { ms: number; long: string } {
  if (amzDate !== undefined) {
    const m = LONG_DATE_RE.exec(amzDate);
    const ms = m ? Date.parse(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`) : Number.NaN;
    return Number.isFinite(ms) ? { ms, long: amzDate } : fail('malformed X-Amz-Date');
  }
  if (httpDate === undefined) return fail('missing X-Amz-Date or Date header');
  const ms = Date.parse(httpDate);
  if (!Number.isFinite(ms)) return fail('malformed Date header');
  return { ms, long: new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '') };
}

const SIGNING_KEY_CACHE_MAX = 64;
const signingKeyCache = new Map<string, Buffer>(); // (date, region, service, secret) -> derived key, LRU-bounded
function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  const cacheKey = `${date}\0${region}\0${service}\0${secret}`;
  const key = signingKeyCache.get(cacheKey) ?? hmac(hmac(hmac(hmac(`AWS4${secret}`, date), region), service), 'aws4_request');
  signingKeyCache.delete(cacheKey); // re-insert to keep the Map in LRU order
  signingKeyCache.set(cacheKey, key);
  for (const old of signingKeyCache.keys()) {
    if (signingKeyCache.size <= SIGNING_KEY_CACHE_MAX) break;
    signingKeyCache.delete(old);
  }
  return key;
}

type AuthParts = { credential: string; signedHeaders: string; signature: string };

function parseAuthorizationHeader(value: string): AuthParts {
  const space = value.indexOf(' ');
  const algorithm = space === -1 ? value : value.slice(0, space);
  if (algorithm !== ALGORITHM) return fail(`unsupported authorization algorithm (expected ${ALGORITHM})`);
  const fields = new Map<string, string>();
  for (const part of value.slice(space + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq === -1) return fail('malformed Authorization header');
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const [credential, signedHeaders, signature] = ['Credential', 'SignedHeaders', 'Signature'].map((f) => fields.get(f));
  if (!credential || !signedHeaders || !signature) return fail('malformed Authorization header');
  return { credential, signedHeaders, signature };
}

function verifyOrThrow(req: SignedRequest, keys: ReadonlyMap<string, string>, opts: SigV4Options): SigV4Result {
  const { service = 'execute-api', maxClockSkewMs: skew = 5 * 60_000, now: clock = Date.now } = opts;
  const now = clock();
  const query = parseQuery(req.rawQuery);
  const q = (name: string): string | undefined => query.find(([k]) => k === name)?.[1];
  const authHeader = req.headers.authorization;
  const presigned = q('X-Amz-Algorithm') !== undefined;
  if (authHeader !== undefined && presigned) return fail('request has both an Authorization header and X-Amz-Algorithm');

  let auth: AuthParts;
  let date: { ms: number; long: string };
  if (authHeader !== undefined) {
    auth = parseAuthorizationHeader(authHeader);
    date = parseRequestDate(req.headers['x-amz-date'], req.headers.date);
  } else if (presigned) {
    if (q('X-Amz-Algorithm') !== ALGORITHM) return fail(`unsupported X-Amz-Algorithm (expected ${ALGORITHM})`);
    const [credential, signedHeaders, signature, amzDate] = ['Credential', 'SignedHeaders', 'Signature', 'Date'].map((f) => q(`X-Amz-${f}`));
    if (!credential || !signedHeaders || !signature || !amzDate) return fail('incomplete presigned query parameters');
    auth = { credential, signedHeaders, signature };
    date = parseRequestDate(amzDate, undefined);
    const expiresRaw = q('X-Amz-Expires') ?? '';
    const expires = /^\d{1,7}$/.test(expiresRaw) ? Number(expiresRaw) : Number.NaN;
    if (!(expires >= 1 && expires <= MAX_PRESIGN_EXPIRES_S)) return fail('malformed X-Amz-Expires');
    if (now > date.ms + expires * 1000) return fail('presigned request has expired');
  } else {
    return fail('missing authentication token');
  }

  const scope = auth.credential.split('/');
  const [accessKeyId, scopeDate, region, scopeService, terminator] = scope;
  if (scope.length !== 5 || !accessKeyId || !scopeDate || !region || !scopeService || terminator !== 'aws4_request') {
    return fail('malformed credential scope');
  }
  if (scopeService !== service) return fail(`credential scope service must be '${service}'`);
  if (!SIGNATURE_RE.test(auth.signature)) return fail('malformed signature');
  if (now < date.ms - skew || (!presigned && now > date.ms + skew)) return fail('request time is outside the allowed clock skew');
  if (scopeDate !== date.long.slice(0, 8)) return fail('credential scope date does not match the request date');

  const signedHeaders = auth.signedHeaders.split(';');
  if (!signedHeaders.every((h) => HEADER_NAME_RE.test(h))) return fail('malformed SignedHeaders');
  if (!signedHeaders.includes('host')) return fail("'host' must be a signed header");
  const dateHeader = req.headers['x-amz-date'] !== undefined ? 'x-amz-date' : 'date';
  if (!presigned && !signedHeaders.includes(dateHeader)) return fail(`'${dateHeader}' must be a signed header`);
  const canonicalHeaders: string[] = [];
  for (const name of signedHeaders) {
    const value = req.headers[name];
    if (value === undefined) return fail(`signed header '${name}' is missing from the request`);
    canonicalHeaders.push(`${name}:${canonicalHeaderValue(value)}\n`);
  }

  const bodyHash = sha256Hex(req.body);
  const declaredHash = req.headers['x-amz-content-sha256'] ?? (presigned ? q('X-Amz-Content-Sha256') : undefined);
  if (declaredHash !== undefined && declaredHash !== UNSIGNED_PAYLOAD && declaredHash.toLowerCase() !== bodyHash) {
    return fail('x-amz-content-sha256 does not match the request body');
  }
  const canonicalRequest = [req.method.toUpperCase(), canonicalUri(req.rawPath), canonicalQuery(query)]
    .concat(canonicalHeaders.join(''), auth.signedHeaders, declaredHash ?? bodyHash)
    .join('\n');

  const secret = keys.get(accessKeyId);
  if (secret === undefined) return fail('unknown access key');
  const stringToSign = `${ALGORITHM}\n${date.long}\n${auth.credential.slice(accessKeyId.length + 1)}\n${sha256Hex(canonicalRequest)}`;
  const expected = createHmac('sha256', signingKey(secret, scopeDate, region, scopeService)).update(stringToSign).digest();
  if (!timingSafeEqual(expected, Buffer.from(auth.signature, 'hex'))) return fail('signature does not match');
  return { ok: true, accessKeyId, region };
}

/** Verifies an AWS Signature Version 4 signed request (Authorization header or presigned query string). */
export function verifySigV4(req: SignedRequest, keys: ReadonlyMap<string, string>, opts: SigV4Options = {}): SigV4Result {
  try {
    return verifyOrThrow(req, keys, opts);
  } catch (err) {
    if (err instanceof Sigv4Error) return { ok: false, reason: err.message };
    if (err instanceof URIError) return { ok: false, reason: 'malformed request path' };
    throw err;
  }
}

/** Parses GATEHOUSE_MANAGEMENT_KEYS ("AKID1:secret1,AKID2:secret2"). Error messages never echo secrets. */
export function parseManagementKeys(spec: string): Map<string, string> {
  const keys = new Map<string, string>();
  if (spec.trim() === '') return keys;
  spec.split(',').forEach((raw, i) => {
    const entry = raw.trim();
    const colon = entry.indexOf(':');
    const id = colon === -1 ? '' : entry.slice(0, colon).trim();
    const secret = colon === -1 ? '' : entry.slice(colon + 1).trim();
    const where = `GATEHOUSE_MANAGEMENT_KEYS entry #${i + 1}`;
    if (!id || !secret) throw new Error(`${where} is malformed: expected ACCESS_KEY_ID:SECRET_ACCESS_KEY`);
    if (!/^[A-Za-z0-9_-]+$/.test(id)) throw new Error(`${where}: access key id may only contain letters, digits, '_' and '-'`);
    if (keys.has(id)) throw new Error(`GATEHOUSE_MANAGEMENT_KEYS: duplicate access key id '${id}'`);
    keys.set(id, secret);
  });
  return keys;
}
