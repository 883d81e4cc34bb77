/**
 * CORS with HTTP-API semantics (reference 6.8): the gateway answers preflight `OPTIONS` itself
 * (even without an OPTIONS route), adds the headers to integration responses and ignores CORS
 * headers a backend returns (see `stripCorsHeaders`). Compiled once from the API definition.
 *
 * `preflight()` returns null when the preflight must fail (origin, method or a requested header
 * not allowed); the caller still answers the OPTIONS itself (204, no CORS headers), so the
 * browser blocks the actual request. A disallowed origin never gets CORS headers.
 */

export interface CorsConfig {
  allowOrigins?: readonly string[] | undefined;
  allowMethods?: readonly string[] | undefined;
  allowHeaders?: readonly string[] | undefined;
  exposeHeaders?: readonly string[] | undefined;
  /** seconds */
  maxAge?: number | undefined;
  allowCredentials?: boolean | undefined;
}

export type HeaderList = Array<[string, string]>;

export interface CorsPolicy {
  /** Headers for a preflight response, or null when the preflight is refused. */
  preflight(origin: string | undefined, requestMethod: string | undefined, requestHeaders: string | undefined): HeaderList | null;
  /** Headers to add to an actual (non-preflight) response; empty for no or a disallowed origin. */
  responseHeaders(origin: string | undefined): HeaderList;
}

export class CorsConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CorsConfigError';
  }
}

/** Methods a browser never needs listed in `Access-Control-Allow-Methods`. */
const SAFELISTED_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST']);

/** Compiles a CORS policy; throws `CorsConfigError` for a combination browsers reject. */
export function compileCors(config: CorsConfig): CorsPolicy {
  const origins = (config.allowOrigins ?? []).map((o) => o.trim());
  const anyOrigin = origins.includes('*');
  const credentials = config.allowCredentials === true;
  if (anyOrigin && credentials) {
    throw new CorsConfigError('cors: allowCredentials cannot be combined with allowOrigins "*"');
  }
  if (config.maxAge !== undefined && (!Number.isInteger(config.maxAge) || config.maxAge < -1 || config.maxAge > 86400)) {
    throw new CorsConfigError('cors: maxAge must be an integer number of seconds between -1 and 86400');
  }
  const originSet = new Set(origins.map((o) => o.toLowerCase()));
  const methods = (config.allowMethods ?? []).map((m) => m.trim().toUpperCase());
  const anyMethod = methods.includes('*');
  const methodSet = new Set(methods);
  const allowHeaders = (config.allowHeaders ?? []).map((h) => h.trim().toLowerCase());
  const anyHeader = allowHeaders.includes('*');
  const headerSet = new Set(allowHeaders);
  const expose = (config.exposeHeaders ?? []).map((h) => h.trim()).filter((h) => h !== '');
  const exposeValue = expose.length > 0 ? expose.join(',') : undefined;
  const methodsValue = methods.length > 0 ? methods.join(',') : undefined;
  const headersValue = allowHeaders.length > 0 ? allowHeaders.join(',') : undefined;
  const maxAgeValue = config.maxAge === undefined ? undefined : String(config.maxAge);

  const allowedOrigin = (origin: string | undefined): string | undefined => {
    if (origin === undefined || origin === '') return undefined;
    if (anyOrigin) return '*';
    return originSet.has(origin.toLowerCase()) ? origin : undefined;
  };

  const common = (allowOrigin: string): HeaderList => {
    const out: HeaderList = [['access-control-allow-origin', allowOrigin]];
    if (credentials) out.push(['access-control-allow-credentials', 'true']);
    // The answer depends on Origin unless it is '*', so caches must key on it.
    if (allowOrigin !== '*') out.push(['vary', 'Origin']);
    return out;
  };

  return {
    preflight(origin, requestMethod, requestHeaders) {
      const allowOrigin = allowedOrigin(origin);
      if (allowOrigin === undefined) return null;
      const method = (requestMethod ?? '').trim().toUpperCase();
      if (method === '') return null;
      if (!anyMethod && !methodSet.has(method) && !SAFELISTED_METHODS.has(method)) return null;
      const requested = splitList(requestHeaders);
      if (!anyHeader) for (const h of requested) if (!headerSet.has(h)) return null;
      const out = common(allowOrigin);
      // With credentials a literal '*' is not a wildcard for browsers: echo what was asked for.
      if (anyMethod && credentials) out.push(['access-control-allow-methods', method]);
      else if (methodsValue !== undefined) out.push(['access-control-allow-methods', methodsValue]);
      if (anyHeader && credentials) {
        if (requested.length > 0) out.push(['access-control-allow-headers', requested.join(',')]);
      } else if (headersValue !== undefined) {
        out.push(['access-control-allow-headers', headersValue]);
      }
      if (maxAgeValue !== undefined) out.push(['access-control-max-age', maxAgeValue]);
      return out;
    },
    responseHeaders(origin) {
      const allowOrigin = allowedOrigin(origin);
      if (allowOrigin === undefined) return [];
      const out = common(allowOrigin);
      if (exposeValue !== undefined) out.push(['access-control-expose-headers', exposeValue]);
      return out;
    },
  };
}

/** A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`. */
export function isPreflight(method: string, headers: ReadonlyArray<readonly [string, string]>): boolean {
  if (method !== 'OPTIONS') return false;
  let origin = false;
  let requestMethod = false;
  for (const [k] of headers) {
    const lower = k.toLowerCase();
    if (lower === 'origin') origin = true;
    else if (lower === 'access-control-request-method') requestMethod = true;
  }
  return origin && requestMethod;
}

/** Drops `access-control-*` headers from a backend response (HTTP APIs ignore them when CORS is configured). */
export function stripCorsHeaders(headers: ReadonlyArray<readonly [string, string]>): HeaderList {
  const out: HeaderList = [];
  for (const [k, v] of headers) if (!k.toLowerCase().startsWith('access-control-')) out.push([k, v]);
  return out;
}

function splitList(value: string | undefined): string[] {
  if (value === undefined) return [];
  const out: string[] = [];
  for (const part of value.split(',')) {
    const h = part.trim().toLowerCase();
    if (h !== '') out.push(h);
  }
  return out;
}
