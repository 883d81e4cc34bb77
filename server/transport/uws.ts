/**
 * The only module that touches uWebSockets.js. It turns uWS callbacks into a small, safe surface:
 * - upgrade requests are copied synchronously (uWS's HttpRequest dies at the first await), the
 *   WebSocket handshake is validated (uWS accepts any Sec-WebSocket-Version), and the response
 *   object tracks aborts so a late accept/reject after the client left is a no-op, not a crash;
 * - HTTP requests are copied the same way, bodies are read with a hard size cap (413 while
 *   reading, never buffered past the limit), every write is corked and guarded;
 * - WebSocket sockets are opaque `Socket` handles; sends report backpressure instead of
 *   buffering without bound.
 */
import uWS from 'uWebSockets.js';

export type Socket<T> = { readonly __socket: unique symbol; getUserData(): T };

export interface RawRequest {
  method: string;
  /** path as received (percent-encoding intact), no query */
  url: string;
  query: string;
  /** lower-cased names, in arrival order; repeated headers appear repeatedly */
  headers: Array<[string, string]>;
  /**
   * For plain HTTP requests, read from uWS on first use (it costs an ArrayBuffer) and kept. It is
   * always available to a request that is answered asynchronously; one answered synchronously
   * must read it before answering if it wants it ('' afterwards).
   */
  remoteAddress: string;
}

export interface UpgradeResponder {
  readonly aborted: boolean;
  onAbort(cb: () => void): void;
  accept(userData: object, protocol: string, extraHeaders: Record<string, string>): boolean;
  reject(status: number, body: string, headers?: Record<string, string>): void;
}

export interface HttpResponder {
  readonly aborted: boolean;
  onAbort(cb: () => void): void;
  /** Read the whole body, failing with 'too_large' once more than maxBytes arrive (the socket is then closed). */
  readBody(maxBytes: number): Promise<Buffer | 'too_large' | 'aborted'>;
  /**
   * `head`: answer a HEAD request (headers and the body's length, no body). `extra`: more headers
   * after `headers`, as a flat list `[name, value, name, value, ...]`.
   */
  send(
    status: number,
    headers: ReadonlyArray<readonly [string, string]> | Record<string, string>,
    body?: string | Uint8Array,
    head?: boolean,
    extra?: readonly string[],
  ): void;
  /** Close the TCP connection now, unanswered (request smuggling, unreadable input). A no-op once answered. */
  destroy(): void;
  /** Close the TCP connection right after the answer is written (call before `send`): a body left unread. */
  closeAfterAnswer(): void;
}

export interface TransportHandlers<T> {
  upgrade(req: RawRequest, res: UpgradeResponder): void;
  open(ws: Socket<T>): void;
  message(ws: Socket<T>, data: ArrayBuffer, isBinary: boolean): void;
  drain(ws: Socket<T>): void;
  close(ws: Socket<T>, code: number, reason: string): void;
  http(req: RawRequest, res: HttpResponder): void;
}

export interface TransportOptions {
  /** Upper bound handed to uWS; the gateway enforces its own (lower) limits with proper close codes. */
  maxPayloadLength: number;
  maxBackpressure: number;
}

export const SEND_OK = 1;
export const SEND_BACKPRESSURE = 0;
export const SEND_DROPPED = 2;

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 301: 'Moved Permanently', 302: 'Found', 304: 'Not Modified',
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout',
  409: 'Conflict', 410: 'Gone', 413: 'Payload Too Large', 414: 'URI Too Long', 415: 'Unsupported Media Type', 426: 'Upgrade Required',
  429: 'Too Many Requests', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 501: 'Not Implemented',
  502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};
const STATUS_LINES: string[] = [];
/** `200 OK`-style status lines, built once per code. */
const statusLine = (s: number): string => (STATUS_LINES[s] ??= `${s} ${STATUS_TEXT[s] ?? 'Status'}`);

function copyRequest(req: uWS.HttpRequest, res: uWS.HttpResponse): RawRequest {
  const headers: Array<[string, string]> = [];
  req.forEach((k, v) => {
    headers.push([k, v]);
  });
  return {
    method: req.getCaseSensitiveMethod(),
    url: req.getUrl(),
    query: req.getQuery() ?? '',
    headers,
    remoteAddress: Buffer.from(res.getRemoteAddressAsText()).toString(),
  };
}

const utf8 = new TextDecoder();

/** The headers `req.forEach` is collecting into (one request at a time: forEach is synchronous). */
let collecting: Array<[string, string]> = [];
function collectHeader(k: string, v: string): void {
  collecting.push([k, v]);
}

/**
 * A plain HTTP request. Everything is copied at once, except the remote address: fetching it
 * from uWS costs an ArrayBuffer, so it is read on first use, and `serveHttp` reads it before the
 * handler's synchronous part ends without an answer (uWS's response may not be read later).
 * A request answered synchronously never pays for it unless it asked.
 */
class UwsRawRequest implements RawRequest {
  readonly method: string;
  readonly url: string;
  readonly query: string;
  readonly headers: Array<[string, string]>;
  /** the first `upgrade` header, as `req.getHeader('upgrade')` gives it ('' when absent) */
  readonly upgrade: string;
  private address: string | undefined = undefined;
  constructor(
    req: uWS.HttpRequest,
    private readonly responder: UwsHttpResponder,
  ) {
    collecting = [];
    req.forEach(collectHeader);
    const headers = collecting;
    collecting = [];
    let upgrade = '';
    for (let i = 0; i < headers.length; i++) {
      const h = headers[i]!;
      if (h[0] === 'upgrade') {
        upgrade = h[1];
        break;
      }
    }
    this.method = req.getCaseSensitiveMethod();
    this.url = req.getUrl();
    this.query = req.getQuery() ?? '';
    this.headers = headers;
    this.upgrade = upgrade;
  }
  get remoteAddress(): string {
    if (this.address === undefined) {
      // Only '' once the response is gone: read it before answering when it is still wanted.
      this.address = this.responder.usable() ? utf8.decode(this.responder.res.getRemoteAddressAsText()) : '';
    }
    return this.address;
  }
}

/**
 * Serves one plain HTTP request: copies it, calls the handler, and, when the handler did not
 * answer synchronously, attaches the abort handler uWS requires and reads what can only be read
 * while uWS's request is current.
 */
function serveHttp(res: uWS.HttpResponse, req: uWS.HttpRequest, handler: (req: RawRequest, res: HttpResponder) => void, checkUpgrade: boolean): void {
  const responder = new UwsHttpResponder(res);
  const raw = new UwsRawRequest(req, responder);
  if (checkUpgrade && raw.upgrade.toLowerCase() === 'websocket') {
    // uWS only hands well-formed handshakes to the ws route; anything else lands here.
    responder.send(400, BAD_HANDSHAKE_HEADERS, '{"message":"Bad Request: malformed WebSocket handshake"}');
    return;
  }
  try {
    handler(raw, responder);
  } finally {
    if (!responder.answered()) {
      // Read it now: the answer comes later, and the remote address is readable only until then.
      void raw.remoteAddress;
      responder.watchAbort();
    }
  }
}

const BAD_HANDSHAKE_HEADERS: ReadonlyArray<readonly [string, string]> = [['Content-Type', 'application/json']];

/** uWS exports LIBUS_LISTEN_EXCLUSIVE_PORT at runtime; its typings only declare the enum. */
const EXCLUSIVE_PORT = 1;

/** Listen with an exclusive port: a stale second process must not silently take half the connections. */
function listenExclusive(app: uWS.TemplatedApp, host: string, port: number): Promise<uWS.us_listen_socket> {
  return new Promise((resolve, reject) => {
    type ListenWithOptions = (h: string, p: number, o: number, cb: (s: uWS.us_listen_socket | false) => void) => void;
    const listen = app.listen.bind(app) as unknown as ListenWithOptions;
    listen(host, port, EXCLUSIVE_PORT, (socket) => {
      if (socket) resolve(socket);
      else reject(new Error(`cannot listen on ${host}:${port} (in use or not permitted)`));
    });
  });
}

const KEY_RE = /^[A-Za-z0-9+/]{22}==$/;

export class UwsTransport<T> {
  private readonly app: uWS.TemplatedApp;
  private listenSocket: uWS.us_listen_socket | undefined;

  constructor(handlers: TransportHandlers<T>, opts: TransportOptions) {
    this.app = uWS.App();
    this.app.ws<T>('/*', {
      maxPayloadLength: opts.maxPayloadLength,
      maxBackpressure: opts.maxBackpressure,
      closeOnBackpressureLimit: 0,
      idleTimeout: 0, // idleness is measured by the gateway on data messages only, as AWS does
      sendPingsAutomatically: false,
      compression: uWS.DISABLED,
      upgrade: (res, req, context) => {
        const raw = copyRequest(req, res);
        const key = req.getHeader('sec-websocket-key');
        const version = req.getHeader('sec-websocket-version');
        const extensions = req.getHeader('sec-websocket-extensions');
        const responder = new UwsUpgradeResponder(res, key, extensions, context);
        if (version !== '13') {
          responder.reject(426, '{"message":"Upgrade Required: Sec-WebSocket-Version 13 only"}', { 'Sec-WebSocket-Version': '13' });
          return;
        }
        if (!KEY_RE.test(key)) {
          responder.reject(400, '{"message":"Bad Request: malformed Sec-WebSocket-Key"}');
          return;
        }
        handlers.upgrade(raw, responder);
      },
      open: (ws) => handlers.open(ws as unknown as Socket<T>),
      message: (ws, message, isBinary) => handlers.message(ws as unknown as Socket<T>, message, isBinary),
      drain: (ws) => handlers.drain(ws as unknown as Socket<T>),
      close: (ws, code, message) => handlers.close(ws as unknown as Socket<T>, code, Buffer.from(message).toString()),
    });
    const http = handlers.http.bind(handlers);
    this.app.any('/*', (res, req) => serveHttp(res, req, http, true));
  }

  listen(host: string, port: number): Promise<number> {
    return listenExclusive(this.app, host, port).then((socket) => {
      this.listenSocket = socket;
      return uWS.us_socket_local_port(socket);
    });
  }

  /** Stop accepting new connections; open sockets stay. */
  stopListening(): void {
    if (this.listenSocket) {
      uWS.us_listen_socket_close(this.listenSocket);
      this.listenSocket = undefined;
    }
  }

  /** Force-close everything (sockets included). */
  closeAll(): void {
    this.stopListening();
    this.app.close();
  }

  send(ws: Socket<T>, data: string | Uint8Array, binary: boolean): number {
    return (ws as unknown as uWS.WebSocket<T>).send(data, binary, false);
  }

  cork(ws: Socket<T>, fn: () => void): void {
    (ws as unknown as uWS.WebSocket<T>).cork(fn);
  }

  bufferedAmount(ws: Socket<T>): number {
    return (ws as unknown as uWS.WebSocket<T>).getBufferedAmount();
  }

  end(ws: Socket<T>, code: number, reason: string): void {
    (ws as unknown as uWS.WebSocket<T>).end(code, reason);
  }

  terminate(ws: Socket<T>): void {
    (ws as unknown as uWS.WebSocket<T>).close();
  }
}

/** A plain HTTP listener (no WebSocket), for the admin port: metrics, health, readiness. */
export class UwsHttpListener {
  private readonly app: uWS.TemplatedApp;
  private listenSocket: uWS.us_listen_socket | undefined;

  constructor(handler: (req: RawRequest, res: HttpResponder) => void) {
    this.app = uWS.App();
    this.app.any('/*', (res, req) => serveHttp(res, req, handler, false));
  }

  listen(host: string, port: number): Promise<number> {
    return listenExclusive(this.app, host, port).then((socket) => {
      this.listenSocket = socket;
      return uWS.us_socket_local_port(socket);
    });
  }

  close(): void {
    if (this.listenSocket) uWS.us_listen_socket_close(this.listenSocket);
    this.listenSocket = undefined;
    this.app.close();
  }
}

class UwsUpgradeResponder implements UpgradeResponder {
  aborted = false;
  private done = false;
  private abortCb: (() => void) | undefined;
  constructor(
    private readonly res: uWS.HttpResponse,
    private readonly key: string,
    private readonly extensions: string,
    private readonly context: uWS.us_socket_context_t,
  ) {
    res.onAborted(() => {
      this.aborted = true;
      this.abortCb?.();
    });
  }
  onAbort(cb: () => void): void {
    this.abortCb = cb;
  }
  accept(userData: object, protocol: string, extraHeaders: Record<string, string>): boolean {
    if (this.aborted || this.done) return false;
    this.done = true;
    this.res.cork(() => {
      const extra = Object.entries(extraHeaders);
      if (extra.length > 0) {
        // The status must be written before any header, or uWS writes "200 OK" for us.
        this.res.writeStatus('101 Switching Protocols');
        for (const [k, v] of extra) this.res.writeHeader(k, v);
      }
      this.res.upgrade(userData, this.key, protocol, this.extensions, this.context);
    });
    return true;
  }
  reject(status: number, body: string, headers: Record<string, string> = {}): void {
    if (this.aborted || this.done) return;
    this.done = true;
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status));
      const entries = Object.entries(headers).filter(([k]) => !/^(content-length|transfer-encoding|connection|date)$/i.test(k));
      if (!entries.some(([k]) => k.toLowerCase() === 'content-type')) this.res.writeHeader('Content-Type', 'application/json');
      for (const [k, v] of entries) this.res.writeHeader(k, v);
      this.res.end(body, true);
    });
  }
}

/** What `writeResponse` writes (set just before `res.cork(writeResponse)`, which calls it at once). */
let wRes: uWS.HttpResponse | undefined;
let wStatus = 200;
let wHeaders: ReadonlyArray<readonly [string, string]> = [];
let wExtra: readonly string[] | undefined;
let wBody: string | Uint8Array | undefined;
let wHead = false;
let wClose = false;

/** Framing headers and Date are the server's own (uWS writes them). */
function ownHeader(name: string): boolean {
  switch (name.length) {
    case 4:
    case 10:
    case 14:
    case 17: {
      const lk = name.toLowerCase();
      return lk === 'date' || lk === 'connection' || lk === 'content-length' || lk === 'transfer-encoding';
    }
    default:
      return false;
  }
}

/** One response, corked: a module function rather than a closure per response. */
function writeResponse(): void {
  const res = wRes!;
  const status = wStatus;
  // uWS writes `200 OK` itself when no status was written.
  if (status !== 200) res.writeStatus(statusLine(status));
  const headers = wHeaders;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i]!;
    if (!ownHeader(h[0])) res.writeHeader(h[0], h[1]);
  }
  const extra = wExtra;
  if (extra !== undefined) {
    for (let i = 0; i + 1 < extra.length; i += 2) if (!ownHeader(extra[i]!)) res.writeHeader(extra[i]!, extra[i + 1]!);
  }
  const body = wBody;
  // RFC 9110: no Content-Length on 204/304; HEAD reports the length GET would send.
  if (status === 204 || status === 304) res.endWithoutBody();
  else if (wHead) res.endWithoutBody(body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
  else res.end(body ?? '', wClose);
}

class UwsHttpResponder implements HttpResponder {
  aborted = false;
  private done = false;
  private watching = false;
  private abortCb: (() => void) | undefined = undefined;
  /**
   * Ends a pending `readBody` (with 'aborted' when the client goes away). A field rather than an
   * abort closure made per body: with such a closure, every request's state (its promise chain,
   * headers, body) survived the scavenges until the next full GC (measured: ~250 B promoted per
   * request, a mark-compact every ~2 s at 5,000 posts/s).
   */
  private bodyFinish: ((result: 'aborted') => void) | undefined = undefined;
  private closeAfter = false;
  constructor(readonly res: uWS.HttpResponse) {}
  /** Whether uWS's response may still be used. */
  usable(): boolean {
    return !this.aborted && !this.done;
  }
  answered(): boolean {
    return this.done;
  }
  /** uWS requires an abort handler on a response that outlives the request handler. */
  watchAbort(): void {
    if (this.aborted || this.watching) return;
    this.watching = true;
    this.res.onAborted(() => {
      this.aborted = true;
      this.bodyFinish?.('aborted');
      this.abortCb?.();
    });
  }
  onAbort(cb: () => void): void {
    this.abortCb = cb;
  }
  readBody(maxBytes: number): Promise<Buffer | 'too_large' | 'aborted'> {
    return new Promise((resolve) => {
      if (this.aborted || this.bodyFinish !== undefined) {
        resolve('aborted');
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let finished = false;
      const finish = (result: Buffer | 'too_large' | 'aborted') => {
        if (finished) return;
        finished = true;
        this.bodyFinish = undefined;
        resolve(result);
      };
      this.bodyFinish = finish;
      this.res.onData((chunk, isLast) => {
        if (finished) return;
        size += chunk.byteLength;
        if (size > maxBytes) {
          finish('too_large');
          return;
        }
        // The ArrayBuffer is neutered after this callback: copy.
        chunks.push(Buffer.from(new Uint8Array(chunk)));
        if (isLast) finish(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
      });
    });
  }
  send(
    status: number,
    headers: ReadonlyArray<readonly [string, string]> | Record<string, string>,
    body?: string | Uint8Array,
    head = false,
    extra?: readonly string[],
  ): void {
    if (this.aborted || this.done) return;
    // uWS leaves a HEAD answer (a length, no body) pending, so it still needs the abort handler,
    // and the response object is unusable once written.
    if (head && status !== 204 && status !== 304) this.watchAbort();
    this.done = true;
    wRes = this.res;
    wStatus = status;
    wHeaders = Array.isArray(headers) ? (headers as ReadonlyArray<readonly [string, string]>) : Object.entries(headers);
    wExtra = extra;
    wBody = body;
    wHead = head;
    wClose = this.closeAfter;
    try {
      this.res.cork(writeResponse);
    } catch (err) {
      // A value uWS refused, maybe after part of the answer was written: drop the connection
      // (uWS would otherwise wait for an answer that never comes).
      this.res.close();
      throw err;
    } finally {
      wRes = undefined;
      wHeaders = NO_PAIRS;
      wExtra = undefined;
      wBody = undefined;
    }
  }
  destroy(): void {
    if (this.aborted || this.done) return;
    this.done = true;
    this.res.close();
  }
  closeAfterAnswer(): void {
    this.closeAfter = true;
  }
}

const NO_PAIRS: ReadonlyArray<readonly [string, string]> = [];
