import { createHash } from 'node:crypto';

/**
 * API keys of usage plans.
 *
 * Format: API Gateway documents key values as alphanumeric, 20 to 128 characters. Gatehouse
 * keeps exactly that rule (no `-` or `_`), so that every key accepted here can be imported into
 * API Gateway and every API Gateway key works here; base64url keys must be re-encoded (hex or
 * base62). The check is applied to configured keys; a presented key of another shape simply
 * does not match (403).
 *
 * Config specs, one string each:
 *   "<literal key>"          the key itself
 *   "key-env:VARNAME"        comma-separated keys from environment variable VARNAME (blanks
 *                            around commas ignored); a missing or empty variable is an error
 *
 * Lookup is a Map keyed by the presented value (hash table, O(1)). Bucket and quota keys never
 * contain the key value: they use `id`, a SHA-256 prefix computed once at load time, so neither
 * Redis nor logs ever hold a usable key. Logs use `redactKey`.
 */
export const API_KEY_ENV_PREFIX = 'key-env:';

const API_KEY_RE = /^[A-Za-z0-9]{20,128}$/;
const ENV_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function isValidApiKey(value: string): boolean {
  return API_KEY_RE.test(value);
}

/** `****` followed by the last 4 characters; values too short to be keys are fully hidden. */
export function redactKey(value: string): string {
  return value.length >= 12 ? `****${value.slice(-4)}` : '****';
}

/** Stable, non-reversible id of a key for bucket names and metrics (16 hex chars). */
export function apiKeyId(value: string): string {
  return createHash('sha256').update(value).digest('hex').slice(0, 16);
}

export class ApiKeyConfigError extends Error {
  constructor(
    message: string,
    /** Where in the config, e.g. `usagePlans.free.apiKeys[1]`. */
    readonly path: string,
  ) {
    super(`${path}: ${message}`);
    this.name = 'ApiKeyConfigError';
  }
}

/**
 * Expand key specs into key values. Throws `ApiKeyConfigError` (with the spec's path, never the
 * key value in clear) for a malformed key, a missing variable or a duplicate.
 */
export function parseApiKeySpecs(
  specs: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
  path = 'apiKeys',
): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  specs.forEach((spec, i) => {
    const at = `${path}[${i}]`;
    const values = spec.startsWith(API_KEY_ENV_PREFIX) ? fromEnv(spec.slice(API_KEY_ENV_PREFIX.length), env, at) : [spec];
    for (const v of values) {
      if (!isValidApiKey(v)) {
        throw new ApiKeyConfigError(`invalid API key ${redactKey(v)} (need 20-128 alphanumeric characters)`, at);
      }
      if (seen.has(v)) throw new ApiKeyConfigError(`duplicate API key ${redactKey(v)}`, at);
      seen.add(v);
      out.push(v);
    }
  });
  return out;
}

function fromEnv(name: string, env: Readonly<Record<string, string | undefined>>, at: string): string[] {
  if (!ENV_NAME_RE.test(name)) throw new ApiKeyConfigError(`invalid environment variable name "${name}"`, at);
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') {
    throw new ApiKeyConfigError(`environment variable ${name} is not set or empty`, at);
  }
  const keys = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (keys.length === 0) throw new ApiKeyConfigError(`environment variable ${name} holds no keys`, at);
  return keys;
}

/** A key's record: what it belongs to, and names derived from it once. */
export interface ApiKeyRecord<P> {
  readonly id: string;
  readonly redacted: string;
  readonly owner: P;
}

/** O(1) lookup of presented key values. */
export class ApiKeyIndex<P> {
  private readonly byValue = new Map<string, ApiKeyRecord<P>>();

  /** Throws `ApiKeyConfigError` when the value already belongs to another owner. */
  add(value: string, owner: P, path: string): ApiKeyRecord<P> {
    if (this.byValue.has(value)) {
      throw new ApiKeyConfigError(`API key ${redactKey(value)} is already in another usage plan`, path);
    }
    const rec: ApiKeyRecord<P> = { id: apiKeyId(value), redacted: redactKey(value), owner };
    this.byValue.set(value, rec);
    return rec;
  }

  lookup(value: string): ApiKeyRecord<P> | undefined {
    return this.byValue.get(value);
  }

  get size(): number {
    return this.byValue.size;
  }
}
