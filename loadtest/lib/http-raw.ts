// A lean HTTP/1.1 keep-alive client on raw node:net sockets, for open-loop request drivers
// (cluster-driver.ts --mode post): the caller hands over a request already encoded as one
// string; the pool writes it to an idle connection (round-robin, so every connection stays
// warm). When all connections are busy it pipelines onto the least busy one, up to
// `pipelining` requests in flight per connection, and beyond that queues the request in the
// pool (FIFO) until a connection frees up. Responses are parsed incrementally (status line,
// headers up to CRLFCRLF, Content-Length or chunked body, skipped) and matched to their
// requests through a per-connection FIFO of (send time, tag).
//
// Pipelining is off by default (pipelining = 1): uWebSockets.js answers pipelined requests in
// order only while each response is sent synchronously; a request that arrives while an
// asynchronous response is still pending makes it close the connection ("denying async
// pipelining", HttpContext.h). The gateway answers @connections POSTs asynchronously when the
// target is on another node.
//
// No closure, promise or Buffer per request: reads land in one shared buffer (consumed
// synchronously); only a response head split across reads, and a queued request, are kept.
//
// A connection that errors, is closed, or sends something unparseable fails its outstanding
// requests (onRequestFailed) and is reopened after a short backoff. A connection idle for
// IDLE_RECYCLE_MS is reopened first, before the server's keep-alive timeout can close it under
// a request that is on its way.

import { connect, type Socket } from "node:net";

export interface RawHttpHandlers {
  /** A response to the request sent at `sentAt` (ms, performance.now()) with `tag` arrived at `now`. */
  onResponse(status: number, sentAt: number, tag: number, now: number): void;
  /** The request sent with `tag` got no response (its connection failed, or the pool closed). */
  onRequestFailed(tag: number): void;
  /** A connection error or protocol violation (for a lastError field). */
  onError(message: string): void;
}

export interface RawHttpPoolOptions {
  host: string;
  port: number;
  connections: number;
  /** Requests in flight per connection before requests queue in the pool; default 1 (no pipelining). */
  pipelining?: number;
  handlers: RawHttpHandlers;
  /** Largest response head accepted (bytes); default 64 KiB. */
  maxHeadBytes?: number;
}

const CRLFCRLF = Buffer.from("\r\n\r\n", "latin1");
const HTTP_1_DOT = Buffer.from("HTTP/1.", "latin1");
const NAME_CONTENT_LENGTH = Buffer.from("content-length", "latin1");
const NAME_TRANSFER_ENCODING = Buffer.from("transfer-encoding", "latin1");
const NAME_CONNECTION = Buffer.from("connection", "latin1");
const WORD_CHUNKED = Buffer.from("chunked", "latin1");
const WORD_CLOSE = Buffer.from("close", "latin1");

/** Reads are consumed synchronously, so all connections of the process share one buffer. */
const sharedReadBuffer = Buffer.allocUnsafe(64 * 1024);

// Parser states.
const ST_HEAD = 0;
const ST_BODY_LENGTH = 1;
const ST_CHUNK_SIZE = 2;
const ST_CHUNK_DATA = 3;
const ST_CHUNK_DATA_END = 4;
const ST_TRAILERS = 5;
/** No Content-Length, not chunked: the body runs until the server closes. */
const ST_BODY_UNTIL_CLOSE = 6;

const RECONNECT_MIN_MS = 50;
const RECONNECT_MAX_MS = 1000;
/** Below the usual server keep-alive timeouts (uWS 10 s, Node 5 s); undici's default too. */
const IDLE_RECYCLE_MS = 4000;

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HTAB = 0x09;
const COLON = 0x3a;
const SEMICOLON = 0x3b;

function isOws(c: number): boolean {
  return c === SP || c === HTAB;
}

/** buf[start, end) equals `lower` (lower-case ASCII), ignoring ASCII case. */
function equalsIgnoreCase(buf: Buffer, start: number, end: number, lower: Buffer): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    const c = buf[start + i]!;
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== lower[i]) return false;
  }
  return true;
}

/** A comma-separated list in buf[start, end) holds `lower` as an element, ignoring case and OWS. */
function listHas(buf: Buffer, start: number, end: number, lower: Buffer): boolean {
  let i = start;
  while (i <= end) {
    let e = i;
    while (e < end && buf[e] !== 0x2c) e++;
    let a = i;
    let b = e;
    while (a < b && isOws(buf[a]!)) a++;
    while (b > a && isOws(buf[b - 1]!)) b--;
    if (equalsIgnoreCase(buf, a, b, lower)) return true;
    i = e + 1;
  }
  return false;
}

/** The last element of a comma-separated list in buf[start, end) is `lower` (ignoring case and OWS). */
function listEndsWith(buf: Buffer, start: number, end: number, lower: Buffer): boolean {
  let b = end;
  while (b > start && isOws(buf[b - 1]!)) b--;
  let a = b;
  while (a > start && buf[a - 1] !== 0x2c) a--;
  while (a < b && isOws(buf[a]!)) a++;
  return equalsIgnoreCase(buf, a, b, lower);
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  if (l >= 0x61 && l <= 0x66) return l - 0x61 + 10;
  return -1;
}

class Conn {
  socket: Socket | null = null;
  connected = false;
  /** The server announced `Connection: close` (or we recycle it): no new requests; reopen once it closes. */
  retiring = false;
  /** performance.now() of the last request written or response completed. */
  lastActive = 0;
  /** The socket did connect (for the backoff; `connected` drops on a protocol error). */
  opened = false;
  /** Outstanding requests: ring buffer of send times and tags. */
  times = new Float64Array(16);
  tags = new Uint8Array(16);
  head = 0;
  count = 0;
  /** The socket's last 'error' message (for the report when it closes with requests outstanding). */
  socketError = "";
  /** Consecutive failed connects (for the backoff). */
  failures = 0;
  reconnectTimer: NodeJS.Timeout | null = null;
  // Response parser state.
  state = ST_HEAD;
  status = 0;
  /** Body bytes (ST_BODY_LENGTH) or chunk bytes (ST_CHUNK_DATA) still to skip. */
  remaining = 0;
  /** ST_CHUNK_SIZE: hex digits seen; in a chunk extension. ST_TRAILERS: bytes on the current line. */
  digits = 0;
  inExtension = false;
  lineBytes = 0;
  closeAfter = false;
  /** Bytes of a response head split over reads (copied). */
  carry: Buffer | null = null;


  push(sentAt: number, tag: number): void {
    let cap = this.times.length;
    if (this.count === cap) {
      const times = new Float64Array(cap * 2);
      const tags = new Uint8Array(cap * 2);
      for (let i = 0; i < this.count; i++) {
        const j = (this.head + i) % cap;
        times[i] = this.times[j]!;
        tags[i] = this.tags[j]!;
      }
      this.times = times;
      this.tags = tags;
      this.head = 0;
      cap *= 2;
    }
    const at = (this.head + this.count) % cap;
    this.times[at] = sentAt;
    this.tags[at] = tag;
    this.count++;
  }

  resetParser(): void {
    this.state = ST_HEAD;
    this.status = 0;
    this.remaining = 0;
    this.digits = 0;
    this.inExtension = false;
    this.lineBytes = 0;
    this.closeAfter = false;
    this.carry = null;
  }
}

export class RawHttpPool {
  private readonly conns: Conn[];
  private readonly host: string;
  private readonly port: number;
  private readonly handlers: RawHttpHandlers;
  private readonly maxHeadBytes: number;
  private readonly pipelining: number;
  private closed = false;
  /** Round-robin cursor over the connections. */
  private cursor = 0;
  /** Connections open right now. */
  private connectedCount = 0;
  // Requests waiting for a connection (FIFO; only when every connection is at `pipelining`).
  private qRequests: string[] = [];
  private qTimes: number[] = [];
  private qTags: number[] = [];
  private qHead = 0;
  private readonly maintenance: NodeJS.Timeout;
  /** Requests written or queued, not yet answered or failed. */
  outstanding = 0;

  constructor(options: RawHttpPoolOptions) {
    if (!Number.isInteger(options.connections) || options.connections < 1) throw new Error("connections must be a positive integer");
    this.host = options.host;
    this.port = options.port;
    this.handlers = options.handlers;
    this.maxHeadBytes = options.maxHeadBytes ?? 64 * 1024;
    this.pipelining = Math.max(1, Math.floor(options.pipelining ?? 1));
    this.conns = Array.from({ length: options.connections }, () => new Conn());
    this.maintenance = setInterval(() => this.recycleIdle(), 1000);
    this.maintenance.unref();
  }

  /** Requests waiting in the pool for a connection. */
  get queued(): number {
    return this.qRequests.length - this.qHead;
  }

  /** Opens all connections; rejects (and closes the pool) when one of them fails, or after timeoutMs. */
  open(timeoutMs = 10_000): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let pending = this.conns.length;
      let settled = false;
      const timer = setTimeout(() => settle(new Error(`connecting to ${this.host}:${this.port} timed out`)), timeoutMs);
      const settle = (err: Error | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err === null) resolve();
        else {
          this.close();
          reject(err);
        }
      };
      for (const c of this.conns) {
        this.connectConn(c, (err) => {
          if (err !== null) settle(err);
          else if (--pending === 0) settle(null);
        });
      }
    });
  }

  /**
   * Sends one complete request (head and body in one string): on an idle connection, else
   * pipelined onto the least busy one (up to `pipelining` in flight), else queued until a
   * connection frees up. `tag` (0..255) comes back with the response. False when no
   * connection is open (nothing was sent or queued).
   */
  send(request: string, sentAt: number, tag: number): boolean {
    if (this.connectedCount === 0) return false;
    const conns = this.conns;
    const n = conns.length;
    let best: Conn | null = null;
    let bestCount = this.pipelining;
    let i = this.cursor;
    for (let k = 0; k < n; k++) {
      const c = conns[i]!;
      i = i + 1 === n ? 0 : i + 1;
      if (!c.connected || c.retiring || c.count >= bestCount) continue;
      best = c;
      bestCount = c.count;
      if (bestCount === 0) break;
    }
    this.cursor = i;
    this.outstanding++;
    if (best === null) {
      this.qRequests.push(request);
      this.qTimes.push(sentAt);
      this.qTags.push(tag);
      return true;
    }
    this.write(best, request, sentAt, tag);
    return true;
  }

  private write(c: Conn, request: string, sentAt: number, tag: number): void {
    c.push(sentAt, tag);
    c.lastActive = performance.now();
    c.socket!.write(request);
  }

  /** Moves queued requests onto `c` while it has room. */
  private pump(c: Conn): void {
    while (this.qHead < this.qRequests.length && c.connected && !c.retiring && c.count < this.pipelining) {
      const at = this.qHead++;
      this.write(c, this.qRequests[at]!, this.qTimes[at]!, this.qTags[at]!);
    }
    if (this.qHead === this.qRequests.length) {
      if (this.qHead > 0) this.clearQueue();
    } else if (this.qHead > 4096 && this.qHead * 2 > this.qRequests.length) {
      this.qRequests = this.qRequests.slice(this.qHead);
      this.qTimes = this.qTimes.slice(this.qHead);
      this.qTags = this.qTags.slice(this.qHead);
      this.qHead = 0;
    }
  }

  private clearQueue(): void {
    this.qRequests = [];
    this.qTimes = [];
    this.qTags = [];
    this.qHead = 0;
  }

  /** Fails every queued request (no connection left to send them on, or the pool closed). */
  private failQueue(): number {
    const n = this.queued;
    for (let i = this.qHead; i < this.qRequests.length; i++) this.handlers.onRequestFailed(this.qTags[i]!);
    this.clearQueue();
    this.outstanding -= n;
    return n;
  }

  /** Reopens connections idle for IDLE_RECYCLE_MS (only at low request rates). */
  private recycleIdle(): void {
    const limit = performance.now() - IDLE_RECYCLE_MS;
    for (const c of this.conns) {
      if (c.connected && !c.retiring && c.count === 0 && c.lastActive < limit) {
        c.retiring = true;
        c.socket?.end();
      }
    }
  }

  /** Closes every connection; requests still outstanding are failed. Returns how many. */
  close(): number {
    this.closed = true;
    clearInterval(this.maintenance);
    let failed = this.failQueue();
    for (const c of this.conns) {
      if (c.reconnectTimer !== null) clearTimeout(c.reconnectTimer);
      c.reconnectTimer = null;
      failed += this.failOutstanding(c);
      if (c.connected) this.connectedCount--;
      c.connected = false;
      c.socket?.destroy();
    }
    return failed;
  }

  private connectConn(c: Conn, onFirst: ((err: Error | null) => void) | null): void {
    c.resetParser();
    c.retiring = false;
    const socket = connect({
      host: this.host,
      port: this.port,
      noDelay: true,
      onread: {
        buffer: sharedReadBuffer,
        callback: (nread: number) => {
          if (c.socket === socket) this.onRead(c, sharedReadBuffer, 0, nread);
          return true;
        },
      },
    });
    c.socket = socket;
    socket.setNoDelay(true);
    socket.on("connect", () => {
      if (this.closed) {
        socket.destroy();
        return;
      }
      c.connected = true;
      c.opened = true;
      this.connectedCount++;
      c.failures = 0;
      c.lastActive = performance.now();
      onFirst?.(null);
      onFirst = null;
      this.pump(c);
    });
    socket.on("error", (err: Error) => {
      c.socketError = err.message;
      this.handlers.onError(err.message);
      onFirst?.(err);
      onFirst = null;
    });
    socket.on("close", () => {
      if (c.socket !== socket) return;
      const wasConnected = c.opened;
      c.opened = false;
      if (c.connected) this.connectedCount--;
      c.connected = false;
      if (c.state === ST_BODY_UNTIL_CLOSE && c.count > 0) this.complete(c, performance.now());
      const lost = this.failOutstanding(c);
      if (lost > 0) this.handlers.onError(`${c.socketError || "connection closed"} (${lost} request(s) outstanding)`);
      // No connection left and this one failed (or could not connect): the server looks gone,
      // fail the queue now rather than let it wait for a reconnect.
      if (this.connectedCount === 0 && this.queued > 0 && (!wasConnected || c.socketError !== "")) {
        const n = this.failQueue();
        this.handlers.onError(`${c.socketError || "connection closed"} (no connection left; ${n} queued request(s) failed)`);
      }
      c.socketError = "";
      c.socket = null;
      onFirst?.(new Error("connection closed before it opened"));
      onFirst = null;
      if (this.closed) return;
      if (!wasConnected) c.failures++;
      const backoff = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** Math.min(c.failures, 5));
      c.reconnectTimer = setTimeout(() => {
        c.reconnectTimer = null;
        if (!this.closed) this.connectConn(c, null);
      }, backoff);
    });
  }

  private failOutstanding(c: Conn): number {
    const n = c.count;
    const cap = c.times.length;
    for (let i = 0; i < n; i++) this.handlers.onRequestFailed(c.tags[(c.head + i) % cap]!);
    c.head = 0;
    c.count = 0;
    this.outstanding -= n;
    return n;
  }

  /** Gives up on a connection after a protocol violation: its outstanding requests fail on close. */
  private protocolError(c: Conn, reason: string): void {
    c.socketError = `bad response from ${this.host}:${this.port}: ${reason}`;
    this.handlers.onError(c.socketError);
    if (c.connected) this.connectedCount--;
    c.connected = false;
    c.socket?.destroy();
  }

  /** One response finished: hand it to its request (the FIFO's oldest). */
  private complete(c: Conn, now: number): void {
    const status = c.status;
    const closeAfter = c.closeAfter;
    c.state = ST_HEAD;
    c.closeAfter = false;
    if (c.count === 0) {
      this.protocolError(c, `response ${status} without a request`);
      return;
    }
    const at = c.head;
    c.head = at + 1 === c.times.length ? 0 : at + 1;
    c.count--;
    this.outstanding--;
    if (closeAfter) c.retiring = true;
    c.lastActive = now;
    this.handlers.onResponse(status, c.times[at]!, c.tags[at]!, now);
    if (this.qHead < this.qRequests.length) this.pump(c);
  }

  private onRead(c: Conn, buf: Buffer, start: number, end: number): void {
    if (!c.connected) return;
    if (c.carry !== null) {
      // Rare: the previous read ended inside a response head.
      buf = Buffer.concat([c.carry, buf.subarray(start, end)]);
      start = 0;
      end = buf.length;
      c.carry = null;
    }
    const now = performance.now();
    let pos = start;
    while (pos < end && c.connected) {
      switch (c.state) {
        case ST_HEAD: {
          const at = buf.indexOf(CRLFCRLF, pos);
          // (The shared buffer holds stale bytes past `end`: a match must end within the read.)
          if (at < 0 || at + 4 > end) {
            if (end - pos > this.maxHeadBytes) {
              this.protocolError(c, "response head too large");
              return;
            }
            c.carry = Buffer.from(buf.subarray(pos, end));
            return;
          }
          if (!this.parseHead(c, buf, pos, at)) return;
          pos = at + 4;
          const status = c.status;
          if (status < 200) {
            // Interim response (100 Continue, 103 Early Hints): the real one follows.
            c.closeAfter = false;
          } else if (c.state === ST_HEAD || (c.state === ST_BODY_LENGTH && c.remaining === 0)) {
            // No body (204, 304, Content-Length: 0): complete even if this read ends here.
            this.complete(c, now);
          }
          // else parseHead chose the body state
          break;
        }
        case ST_BODY_LENGTH: {
          const take = Math.min(c.remaining, end - pos);
          pos += take;
          c.remaining -= take;
          if (c.remaining === 0) this.complete(c, now);
          break;
        }
        case ST_CHUNK_SIZE: {
          const ch = buf[pos++]!;
          if (ch === LF) {
            if (c.digits === 0) {
              this.protocolError(c, "empty chunk size");
              return;
            }
            c.state = c.remaining === 0 ? ST_TRAILERS : ST_CHUNK_DATA;
            c.lineBytes = 0;
          } else if (ch === CR || c.inExtension) {
            // CR before LF, or chunk-extension bytes: ignored
          } else if (ch === SEMICOLON) {
            c.inExtension = true;
          } else if (isOws(ch)) {
            if (c.digits > 0) c.inExtension = true; // BWS before an extension
          } else {
            const v = hexValue(ch);
            if (v < 0 || c.digits >= 12) {
              this.protocolError(c, "bad chunk size");
              return;
            }
            c.remaining = c.remaining * 16 + v;
            c.digits++;
          }
          break;
        }
        case ST_CHUNK_DATA: {
          const take = Math.min(c.remaining, end - pos);
          pos += take;
          c.remaining -= take;
          if (c.remaining === 0) {
            c.state = ST_CHUNK_DATA_END;
            c.lineBytes = 0;
          }
          break;
        }
        case ST_CHUNK_DATA_END: {
          // CRLF after the chunk's data (a bare LF accepted).
          const ch = buf[pos++]!;
          if (ch === LF) {
            c.state = ST_CHUNK_SIZE;
            c.remaining = 0;
            c.digits = 0;
            c.inExtension = false;
          } else if (ch !== CR || c.lineBytes++ > 0) {
            this.protocolError(c, "chunk data not followed by CRLF");
            return;
          }
          break;
        }
        case ST_TRAILERS: {
          // Trailer fields up to an empty line; the last-chunk line's LF was consumed.
          const ch = buf[pos++]!;
          if (ch === LF) {
            if (c.lineBytes === 0) this.complete(c, now);
            else c.lineBytes = 0;
          } else if (ch !== CR) {
            c.lineBytes++;
          }
          break;
        }
        case ST_BODY_UNTIL_CLOSE:
          pos = end;
          break;
      }
    }
  }

  /**
   * Parses the head in buf[start, end) (end = the CRLFCRLF): status, Content-Length,
   * Transfer-Encoding, Connection; sets the body state. False after a protocol error.
   */
  private parseHead(c: Conn, buf: Buffer, start: number, end: number): boolean {
    // "HTTP/1.x SSS reason"
    if (end - start < 12 || buf.compare(HTTP_1_DOT, 0, HTTP_1_DOT.length, start, start + HTTP_1_DOT.length) !== 0 || buf[start + 8] !== SP) {
      this.protocolError(c, `not an HTTP/1.x status line: ${JSON.stringify(buf.toString("latin1", start, Math.min(end, start + 40)))}`);
      return false;
    }
    let status = 0;
    for (let i = start + 9; i < start + 12; i++) {
      const d = buf[i]! - 0x30;
      if (d < 0 || d > 9) {
        this.protocolError(c, "bad status code");
        return false;
      }
      status = status * 10 + d;
    }
    c.status = status;
    let contentLength = -1;
    let chunked = false;
    let otherCoding = false;
    let closeAfter = false;
    let lineStart = buf.indexOf(LF, start);
    // lineStart < 0 or past end: the status line is the whole head (no fields).
    lineStart = lineStart < 0 || lineStart > end ? end : lineStart + 1;
    while (lineStart < end) {
      let lineEnd = buf.indexOf(LF, lineStart);
      if (lineEnd < 0 || lineEnd > end) lineEnd = end;
      const next = lineEnd + 1;
      if (lineEnd > lineStart && buf[lineEnd - 1] === CR) lineEnd--;
      const colon = buf.indexOf(COLON, lineStart);
      if (colon >= 0 && colon < lineEnd) {
        let nameEnd = colon;
        while (nameEnd > lineStart && isOws(buf[nameEnd - 1]!)) nameEnd--;
        let v = colon + 1;
        while (v < lineEnd && isOws(buf[v]!)) v++;
        let ve = lineEnd;
        while (ve > v && isOws(buf[ve - 1]!)) ve--;
        if (equalsIgnoreCase(buf, lineStart, nameEnd, NAME_CONTENT_LENGTH)) {
          let n = 0;
          if (ve === v || ve - v > 15) {
            this.protocolError(c, "bad Content-Length");
            return false;
          }
          for (let i = v; i < ve; i++) {
            const d = buf[i]! - 0x30;
            if (d < 0 || d > 9) {
              this.protocolError(c, "bad Content-Length");
              return false;
            }
            n = n * 10 + d;
          }
          if (contentLength >= 0 && contentLength !== n) {
            this.protocolError(c, "conflicting Content-Length headers");
            return false;
          }
          contentLength = n;
        } else if (equalsIgnoreCase(buf, lineStart, nameEnd, NAME_TRANSFER_ENCODING)) {
          // Several Transfer-Encoding fields form one list: chunked must be the final coding.
          if (listEndsWith(buf, v, ve, WORD_CHUNKED)) {
            chunked = true;
            otherCoding = false;
          } else if (ve > v) {
            chunked = false;
            otherCoding = true;
          }
        } else if (equalsIgnoreCase(buf, lineStart, nameEnd, NAME_CONNECTION)) {
          if (listHas(buf, v, ve, WORD_CLOSE)) closeAfter = true;
        }
      }
      lineStart = next;
    }
    c.closeAfter = closeAfter;
    // Body length per RFC 9112 section 6.3 (the request is never HEAD or CONNECT).
    if (status < 200 || status === 204 || status === 304) {
      if (status === 101) {
        this.protocolError(c, "unexpected 101 Switching Protocols");
        return false;
      }
      c.state = ST_HEAD;
    } else if (chunked) {
      c.state = ST_CHUNK_SIZE;
      c.remaining = 0;
      c.digits = 0;
      c.inExtension = false;
    } else if (otherCoding) {
      c.state = ST_BODY_UNTIL_CLOSE;
      c.retiring = true;
    } else if (contentLength >= 0) {
      c.remaining = contentLength;
      c.state = ST_BODY_LENGTH;
    } else {
      c.state = ST_BODY_UNTIL_CLOSE;
      c.retiring = true;
    }
    return true;
  }
}
