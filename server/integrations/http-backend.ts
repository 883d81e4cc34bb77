import { Agent, type Dispatcher } from 'undici';

/**
 * The HTTP client behind HTTP_PROXY and HTTP integrations (reference 6.2), on one undici Agent
 * for the process: keep-alive connections, a bounded pool per origin (requests beyond it queue),
 * no redirects followed (3xx pass through, as on API Gateway).
 *
 * `request` never throws for a backend problem; it answers a `BackendResult`:
 *   - `timeout`: no complete response within `timeoutMs`, counted from the call (queueing,
 *     connecting, waiting for headers and reading the body all count; a backend that accepts
 *     and never answers, or stops mid-body, ends here) → 504 INTEGRATION_TIMEOUT;
 *   - `connect`: no connection (refused, DNS failure, unreachable, TLS handshake) → 502/504;
 *   - `reset`: the connection failed after it was made (closed or reset before or during the
 *     response, a malformed response) → 502;
 *   - `too_large`: the response body is over `maxResponseBytes` (known from Content-Length, or
 *     counted while reading); reading stops at once and the connection is dropped → 502;
 *   - `bad_url`: the request could not be built (not an http:/https: URL, credentials in the URL,
 *     invalid method or header) — a configuration problem → 500 API_CONFIGURATION_ERROR.
 */

export interface BackendRequest {
  method: string;
  /** absolute http: or https: URL */
  url: string;
  /**
   * Sent as given, except the headers the client manages itself: Content-Length (from `body`),
   * Connection, Keep-Alive, Transfer-Encoding, Upgrade and Expect are dropped; a Host header,
   * if any, replaces the one derived from the URL (the last one wins).
   */
  headers: Array<[string, string]>;
  body?: Buffer | undefined;
  timeoutMs: number;
  maxResponseBytes: number;
}

export type BackendErrorKind = 'timeout' | 'connect' | 'too_large' | 'reset' | 'bad_url';

export type BackendResult =
  | { ok: true; status: number; headers: Array<[string, string]>; body: Buffer }
  | { ok: false; kind: BackendErrorKind; message: string };

export interface HttpBackendOptions {
  /** maximum connections per origin (scheme://host:port); default 128 */
  connectionsPerOrigin?: number | undefined;
  /** idle keep-alive connections are closed after this long (the backend's own hint may be shorter); default 4000 */
  keepAliveTimeoutMs?: number | undefined;
  /** TCP + TLS connect timeout; default 10000 (a shorter request `timeoutMs` still wins) */
  connectTimeoutMs?: number | undefined;
  /** TLS: false accepts any certificate (AWS `tlsConfig.insecureSkipVerification`); default true */
  rejectUnauthorized?: boolean | undefined;
  /** TLS: extra trusted CA certificates (PEM) */
  ca?: string | Buffer | Array<string | Buffer> | undefined;
}

/** Headers the undici client refuses or sets itself. */
const CLIENT_MANAGED = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'expect', 'content-length']);

const EMPTY = Buffer.alloc(0);

export class HttpBackend {
  readonly #agent: Agent;

  constructor(opts: HttpBackendOptions = {}) {
    const keepAliveTimeout = opts.keepAliveTimeoutMs ?? 4000;
    const connect: { timeout: number; rejectUnauthorized?: boolean; ca?: string | Buffer | Array<string | Buffer> } = {
      timeout: opts.connectTimeoutMs ?? 10_000,
    };
    if (opts.rejectUnauthorized !== undefined) connect.rejectUnauthorized = opts.rejectUnauthorized;
    if (opts.ca !== undefined) connect.ca = opts.ca;
    this.#agent = new Agent({
      connections: opts.connectionsPerOrigin ?? 128,
      pipelining: 1,
      keepAliveTimeout,
      keepAliveMaxTimeout: Math.max(keepAliveTimeout, 600_000),
      connect,
    });
  }

  request(req: BackendRequest): Promise<BackendResult> {
    let url: URL;
    try {
      url = new URL(req.url);
    } catch (err) {
      return Promise.resolve(fail('bad_url', `invalid URL ${JSON.stringify(req.url)}: ${messageOf(err)}`));
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      return Promise.resolve(fail('bad_url', `unsupported URL scheme ${url.protocol} (only http: and https:)`));
    }
    if (url.username !== '' || url.password !== '') {
      return Promise.resolve(fail('bad_url', 'credentials in the URL are not supported; send an Authorization header'));
    }
    const method = req.method.toUpperCase();
    if (method === 'CONNECT') return Promise.resolve(fail('bad_url', 'the CONNECT method cannot be forwarded'));

    const headers: string[] = [];
    let host: string | undefined;
    for (const [k, v] of req.headers) {
      const lower = k.toLowerCase();
      if (lower === 'host') host = v;
      else if (!CLIENT_MANAGED.has(lower)) headers.push(k, v);
    }
    if (host !== undefined) headers.push('host', host);

    const body = req.body !== undefined && req.body.length > 0 ? req.body : undefined;
    const expectsBody = method === 'POST' || method === 'PUT' || method === 'PATCH';
    const opts: Dispatcher.DispatchOptions = {
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method,
      headers,
      body: body ?? (expectsBody ? EMPTY : null),
      headersTimeout: req.timeoutMs,
      bodyTimeout: req.timeoutMs,
    };
    return new Promise<BackendResult>((resolve) => {
      const handler = new ResponseCollector(req.timeoutMs, req.maxResponseBytes, resolve);
      this.#agent.dispatch(opts, handler);
    });
  }

  /** Closes idle connections and waits for requests in flight. */
  async close(): Promise<void> {
    await this.#agent.close();
  }
}

function fail(kind: BackendErrorKind, message: string): BackendResult {
  return { ok: false, kind, message };
}

function messageOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}

const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EAI_FAIL',
  'EAI_NONAME',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const BAD_REQUEST_CODES = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED']);

/** Aborts a request; carries which limit fired. */
class LimitError extends Error {
  constructor(readonly kind: 'timeout' | 'too_large', message: string) {
    super(message);
    this.name = 'LimitError';
  }
}

/**
 * One request's undici handler: collects the response up to the size limit and settles exactly
 * once, on the first of: complete response, error, deadline, size limit.
 */
class ResponseCollector implements Dispatcher.DispatchHandler {
  #settled = false;
  #controller: Dispatcher.DispatchController | undefined;
  /** set when a limit fired before undici handed over a controller */
  #pendingAbort: LimitError | undefined;
  #responseStarted = false;
  #status = 0;
  #headers: Array<[string, string]> = [];
  #chunks: Buffer[] = [];
  #size = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(
    timeoutMs: number,
    private readonly maxBytes: number,
    private readonly resolve: (r: BackendResult) => void,
  ) {
    this.#timer = setTimeout(() => this.#limit(new LimitError('timeout', `no complete response within ${timeoutMs} ms`)), timeoutMs);
  }

  #settle(r: BackendResult): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#chunks = [];
    this.resolve(r);
  }

  #limit(err: LimitError): void {
    if (this.#settled) return;
    this.#settle(fail(err.kind, err.message));
    if (this.#controller) this.#controller.abort(err);
    else this.#pendingAbort = err;
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#pendingAbort) controller.abort(this.#pendingAbort);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    parsed: Record<string, string | string[] | undefined>,
  ): void {
    this.#controller = controller;
    if (statusCode < 200) return; // informational; the final response follows
    this.#responseStarted = true;
    this.#status = statusCode;
    this.#headers = headerPairs(controller.rawHeaders, parsed);
    const length = parsed['content-length'];
    const declared = typeof length === 'string' ? Number(length) : Number.NaN;
    if (declared > this.maxBytes) {
      this.#limit(new LimitError('too_large', `response Content-Length ${declared} is over the limit of ${this.maxBytes} bytes`));
    }
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#settled) return;
    this.#size += chunk.length;
    if (this.#size > this.maxBytes) {
      this.#limit(new LimitError('too_large', `response body is over the limit of ${this.maxBytes} bytes`));
      return;
    }
    this.#chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.#settled) return;
    const body = this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks, this.#size);
    this.#settle({ ok: true, status: this.#status, headers: this.#headers, body });
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    if (this.#settled) return;
    if (err instanceof LimitError) {
      this.#settle(fail(err.kind, err.message));
      return;
    }
    this.#settle(this.#classify(err));
  }

  #classify(err: Error): BackendResult {
    const code = (err as { code?: unknown }).code;
    const text = messageOf(err);
    if (typeof code === 'string') {
      if (TIMEOUT_CODES.has(code)) return fail('timeout', `backend timed out: ${text}`);
      if (BAD_REQUEST_CODES.has(code)) return fail('bad_url', `invalid backend request: ${text}`);
      if (CONNECT_CODES.has(code)) return fail('connect', `cannot connect to the backend: ${text}`);
    }
    if (this.#responseStarted) return fail('reset', `the backend connection failed mid-response: ${text}`);
    // Connected but no response (closed, reset, garbage) vs never connected (TLS, other errors).
    if (this.#controller !== undefined) return fail('reset', `the backend connection failed before a response: ${text}`);
    return fail('connect', `cannot connect to the backend: ${text}`);
  }
}

function headerPairs(
  raw: Buffer[] | string[] | Record<string, string | string[] | undefined> | null | undefined,
  parsed: Record<string, string | string[] | undefined>,
): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  if (Array.isArray(raw)) {
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const k = raw[i] as Buffer | string;
      const v = raw[i + 1] as Buffer | string;
      out.push([typeof k === 'string' ? k : k.toString('latin1'), typeof v === 'string' ? v : v.toString('utf8')]);
    }
    return out;
  }
  for (const [k, v] of Object.entries(parsed)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const one of v) out.push([k, one]);
    else out.push([k, v]);
  }
  return out;
}

// ---- URI templates -------------------------------------------------------------------------

export interface UriVariables {
  pathParameters: Readonly<Record<string, string>> | null;
  stageVariables: Readonly<Record<string, string>> | undefined;
  /** raw query string (no '?') to append, for proxy integrations; '' or absent appends nothing */
  query?: string | undefined;
}

export type SubstitutedUri = { ok: true; url: string } | { ok: false; message: string };

const URI_VARIABLE = /\$\{([^}]*)\}|\{([A-Za-z0-9_.-]+?)(\+?)\}/g;
const STAGE_VARIABLE = /^stageVariables\.([A-Za-z0-9_]+)$/;

/**
 * Percent-encodes one path segment. `.`/`..` cannot be encoded away (URL parsers treat `%2e` as a
 * dot), and a lone surrogate cannot be encoded at all: both are refused (undefined).
 */
function encodeSegment(seg: string): string | undefined {
  if (seg === '.' || seg === '..') return undefined;
  try {
    return encodeURIComponent(seg);
  } catch (err) {
    if (err instanceof URIError) return undefined;
    throw err;
  }
}

/**
 * Fills an integration URI template:
 *   - `${stageVariables.name}` → the stage variable, as it is (operator-controlled: it may hold a
 *     host, a port or a base path);
 *   - `{name}` / `{name+}` → the path parameter, percent-encoded segment by segment; a `/` inside
 *     (a greedy `{proxy+}` value) is kept as the separator. A value holding a `.` or `..` segment
 *     is refused: the caller normalises paths so this cannot happen, and encoding cannot make
 *     such a segment safe (`%2e%2e` is still `..` to a URL parser).
 * A variable with no value, or any other `${...}`, is an error (`ok: false`, for a 500).
 * With `vars.query`, the raw query string is appended (`?q` or `&q` when the template has one).
 */
export function substituteUri(template: string, vars: UriVariables): SubstitutedUri {
  let problem: string | undefined;
  const url = template.replace(URI_VARIABLE, (whole, expr: string | undefined, name: string | undefined) => {
    if (problem !== undefined) return whole;
    if (expr !== undefined) {
      const sv = STAGE_VARIABLE.exec(expr);
      if (!sv) {
        problem = `unsupported variable \${${expr}} in the integration URI (only \${stageVariables.NAME})`;
        return whole;
      }
      const key = sv[1] as string;
      const value = vars.stageVariables && Object.hasOwn(vars.stageVariables, key) ? vars.stageVariables[key] : undefined;
      if (value === undefined) {
        problem = `stage variable ${key} is not defined`;
        return whole;
      }
      return value;
    }
    const param = name as string;
    const value = vars.pathParameters && Object.hasOwn(vars.pathParameters, param) ? vars.pathParameters[param] : undefined;
    if (value === undefined) {
      problem = `path parameter ${param} has no value`;
      return whole;
    }
    const segments: string[] = [];
    for (const seg of value.split('/')) {
      const enc = encodeSegment(seg);
      if (enc === undefined) {
        problem = `path parameter ${param} contains a dot segment or a lone surrogate`;
        return whole;
      }
      segments.push(enc);
    }
    return segments.join('/');
  });
  if (problem !== undefined) return { ok: false, message: problem };
  const q = vars.query;
  if (q === undefined || q === '') return { ok: true, url };
  return { ok: true, url: `${url}${url.includes('?') ? (url.endsWith('?') || url.endsWith('&') ? '' : '&') : '?'}${q}` };
}

// ---- proxy headers -------------------------------------------------------------------------

/** RFC 9110 7.6.1 hop-by-hop headers, plus the proxy-only ones. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function connectionTokens(headers: ReadonlyArray<readonly [string, string]>): Set<string> {
  const tokens = new Set<string>();
  for (const [k, v] of headers) {
    if (k.length !== 10 || k.toLowerCase() !== 'connection') continue;
    for (const t of v.split(',')) {
      const token = t.trim().toLowerCase();
      if (token !== '') tokens.add(token);
    }
  }
  return tokens;
}

function isHopByHop(lower: string, listed: ReadonlySet<string>): boolean {
  return HOP_BY_HOP.has(lower) || lower.startsWith('proxy-') || listed.has(lower);
}

export interface ForwardingInfo {
  /** the client's address */
  sourceIp: string;
  /** the scheme the client used to reach the gateway */
  proto: 'http' | 'https';
  /** the host the client addressed (its Host header, without port) */
  host: string;
  /** the gateway port the client connected to */
  port: string;
  /** headers to set on the backend request, replacing same-named incoming ones (e.g. mapped headers) */
  extra?: ReadonlyArray<readonly [string, string]> | undefined;
}

/**
 * The headers to send to an HTTP_PROXY backend: the incoming ones, in order, without hop-by-hop
 * headers (Connection and every header it lists, Keep-Alive, Proxy-*, TE, Trailer,
 * Transfer-Encoding, Upgrade), Host (the backend's is derived from its URL), Content-Length (from
 * the body) and Expect (the gateway has already read the body); then `X-Forwarded-For` (the
 * incoming values joined, then the source IP), `X-Forwarded-Proto`, `X-Forwarded-Port` and
 * `X-Forwarded-Host` (replacing any sent by the client); then `info.extra`, which replaces any
 * header of the same name.
 */
export function proxyRequestHeaders(
  incoming: ReadonlyArray<readonly [string, string]>,
  info: ForwardingInfo,
): Array<[string, string]> {
  const listed = connectionTokens(incoming);
  const out: Array<[string, string]> = [];
  const forwardedFor: string[] = [];
  for (const [k, v] of incoming) {
    const lower = k.toLowerCase();
    if (isHopByHop(lower, listed)) continue;
    switch (lower) {
      case 'host':
      case 'content-length':
      case 'expect':
      case 'x-forwarded-proto':
      case 'x-forwarded-port':
      case 'x-forwarded-host':
        continue;
      case 'x-forwarded-for': {
        const trimmed = v.trim();
        if (trimmed !== '') forwardedFor.push(trimmed);
        continue;
      }
    }
    out.push([k, v]);
  }
  forwardedFor.push(info.sourceIp);
  out.push(
    ['X-Forwarded-For', forwardedFor.join(', ')],
    ['X-Forwarded-Proto', info.proto],
    ['X-Forwarded-Port', info.port],
    ['X-Forwarded-Host', info.host],
  );
  if (info.extra === undefined || info.extra.length === 0) return out;
  const replaced = new Set(info.extra.map(([k]) => k.toLowerCase()));
  const kept = out.filter(([k]) => !replaced.has(k.toLowerCase()));
  for (const [k, v] of info.extra) kept.push([k, v]);
  return kept;
}

/**
 * The backend's response headers to pass to the client: without hop-by-hop headers (as above),
 * without Content-Length, which the transport sets for the body it actually sends, and without
 * Date, which the transport always writes itself (a second one would make the response carry
 * two values of a singleton field).
 */
export function proxyResponseHeaders(headers: ReadonlyArray<readonly [string, string]>): Array<[string, string]> {
  const listed = connectionTokens(headers);
  const out: Array<[string, string]> = [];
  for (const [k, v] of headers) {
    const lower = k.toLowerCase();
    if (isHopByHop(lower, listed) || lower === 'content-length' || lower === 'date') continue;
    out.push([k, v]);
  }
  return out;
}
