import { pack, unpack } from 'msgpackr';
import WebSocket from 'ws';

export interface CloseInfo {
  code: number;
  reason: string;
}

/**
 * A real WebSocket client (the `ws` package) with an awaitable message queue: `next()` resolves
 * with the next frame (or rejects after a timeout), `closed` resolves with the close code.
 */
export class TestClient {
  readonly messages: Array<{ data: Buffer; binary: boolean }> = [];
  private waiters: Array<(m: { data: Buffer; binary: boolean }) => void> = [];
  readonly closed: Promise<CloseInfo>;
  protocol = '';

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, binary: boolean) => {
      const m = { data: Buffer.from(data), binary };
      const w = this.waiters.shift();
      if (w) w(m);
      else this.messages.push(m);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  send(data: string | object): void {
    this.ws.send(typeof data === 'string' ? data : JSON.stringify(data));
  }

  sendBinary(value: unknown): void {
    this.ws.send(pack(value), { binary: true });
  }

  nextRaw(timeoutMs = 5000): Promise<{ data: Buffer; binary: boolean }> {
    const queued = this.messages.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no message within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (m: { data: Buffer; binary: boolean }) => {
        clearTimeout(t);
        resolve(m);
      };
      this.waiters.push(waiter);
    });
  }

  async next(timeoutMs = 5000): Promise<string> {
    const m = await this.nextRaw(timeoutMs);
    if (m.binary) throw new Error('expected a text frame, got binary');
    return m.data.toString('utf8');
  }

  async nextJson<T = Record<string, unknown>>(timeoutMs = 5000): Promise<T> {
    return JSON.parse(await this.next(timeoutMs)) as T;
  }

  async nextMsgpack<T = unknown>(timeoutMs = 5000): Promise<T> {
    const m = await this.nextRaw(timeoutMs);
    if (!m.binary) throw new Error(`expected a binary frame, got text: ${m.data.toString()}`);
    return unpack(m.data) as T;
  }

  /** Resolves true if no frame arrives within `ms` (used after a one-way route, bounded). */
  async expectSilence(ms = 300): Promise<void> {
    try {
      const m = await this.nextRaw(ms);
      throw new Error(`expected no message, got ${m.data.toString()}`);
    } catch (err) {
      if (!(err as Error).message.startsWith('no message')) throw err;
    }
  }

  close(code?: number, reason?: string): Promise<CloseInfo> {
    this.ws.close(code, reason);
    return this.closed;
  }
}

export function connect(url: string, opts: { headers?: Record<string, string>; protocols?: string[] } = {}): Promise<TestClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, opts.protocols ?? [], { headers: opts.headers ?? {} });
    const client = new TestClient(ws);
    ws.once('open', () => {
      client.protocol = ws.protocol;
      resolve(client);
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => reject(Object.assign(new Error(`upgrade rejected with ${res.statusCode}`), { status: res.statusCode, body, headers: res.headers })));
    });
    ws.once('error', (err) => reject(err));
  });
}

/** Attempt an upgrade that must fail; resolves with the HTTP status and body. */
export async function rejectedUpgrade(url: string, opts: { headers?: Record<string, string>; protocols?: string[] } = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  try {
    const c = await connect(url, opts);
    await c.close();
  } catch (err) {
    const e = err as { status?: number; body?: string; headers?: Record<string, unknown> };
    if (e.status !== undefined) return { status: e.status, body: e.body ?? '', headers: e.headers ?? {} };
    throw err;
  }
  throw new Error('upgrade unexpectedly succeeded');
}
