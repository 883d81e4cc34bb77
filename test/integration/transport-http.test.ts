// The transport's request-body reading (UwsHttpResponder.readBody) over real sockets: every
// outcome settles exactly once (body, too_large, aborted), and the socket goes on serving.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpResponder, type RawRequest, UwsHttpListener } from '../../server/transport/uws.ts';

type Outcome = { kind: 'body'; text: string } | { kind: 'too_large' } | { kind: 'aborted' };

let listener: UwsHttpListener;
let port = 0;
const outcomes = new Map<string, Outcome[]>();
const waiters = new Map<string, () => void>();

function record(tag: string, o: Outcome): void {
  const list = outcomes.get(tag) ?? [];
  list.push(o);
  outcomes.set(tag, list);
  waiters.get(tag)?.();
}

function settled(tag: string): Promise<Outcome[]> {
  if (outcomes.has(tag)) return Promise.resolve(outcomes.get(tag)!);
  return new Promise((resolve) => waiters.set(tag, () => resolve(outcomes.get(tag)!)));
}

async function handler(req: RawRequest, res: HttpResponder): Promise<void> {
  const tag = req.url.slice(1);
  const b = await res.readBody(64);
  if (b === 'aborted' || b === 'too_large') {
    record(tag, { kind: b });
    if (b === 'too_large') {
      res.closeAfterAnswer();
      res.send(413, { 'Content-Type': 'application/json' }, '{"message":"too large"}');
      res.destroy(); // a no-op once answered (uWS's response may not be touched again)
    }
    return;
  }
  record(tag, { kind: 'body', text: b.toString() });
  res.send(200, { 'Content-Type': 'text/plain' }, `got ${b.length}`);
}

/** Writes raw bytes, then reads until the peer closes or `untilText` appears. */
function raw(chunks: string[], opts: { destroyAfterWrite?: boolean; untilText?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const s = net.connect(port, '127.0.0.1', () => {
      for (const c of chunks) s.write(c);
      if (opts.destroyAfterWrite) {
        s.destroy();
        resolve('');
      }
    });
    s.on('data', (d) => {
      got += d.toString();
      if (opts.untilText && got.includes(opts.untilText)) {
        s.destroy();
        resolve(got);
      }
    });
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
}

beforeAll(async () => {
  listener = new UwsHttpListener((req, res) => {
    void handler(req, res);
  });
  port = await listener.listen('127.0.0.1', 0);
});

afterAll(() => listener.close());

describe('readBody over real sockets', () => {
  it('reads a body sent in several packets', async () => {
    const reply = await raw(['POST /split HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello', ' world'], { untilText: 'got 11' });
    expect(reply).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(await settled('split')).toEqual([{ kind: 'body', text: 'hello world' }]);
  });

  it("settles 'aborted' once when the client goes away mid-body", async () => {
    await raw(['POST /gone HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{"partial":'], { destroyAfterWrite: true });
    expect(await settled('gone')).toEqual([{ kind: 'aborted' }]);
  });

  it("settles 'too_large' once and answers 413", async () => {
    const reply = await raw([`POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n${'x'.repeat(200)}`]);
    expect(reply).toMatch(/^HTTP\/1\.1 413/);
    expect(await settled('big')).toEqual([{ kind: 'too_large' }]);
  });

  it('serves the next request on a keep-alive socket after a body was read', async () => {
    const one = 'POST /ka1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc';
    const two = 'POST /ka2 HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nabcd';
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const done = new Promise<void>((resolve) =>
      s.on('data', (d) => {
        got += d.toString();
        if (got.includes('got 3') && !got.includes('got 4')) s.write(two);
        if (got.includes('got 4')) resolve();
      }),
    );
    s.write(one);
    await done;
    s.destroy();
    expect(await settled('ka1')).toEqual([{ kind: 'body', text: 'abc' }]);
    expect(await settled('ka2')).toEqual([{ kind: 'body', text: 'abcd' }]);
  });
});
