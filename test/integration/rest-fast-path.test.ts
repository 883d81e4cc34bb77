import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Logger } from '../../server/log.ts';
import { type StartedGateway, startGateway } from '../helpers/gateway.ts';

// Requests without a body, authorizer, validator or throttling take the gateway's synchronous
// path (no promise of its own, the 2.0 event from the transport's lower-case headers, the remote
// address read only when needed). These tests pin down that this path answers exactly as the
// general one does.
const API = `
name: restfast
stages:
  prod: { variables: { env: production } }
limits:
  integrationTimeoutMillis: 300
http:
  mode: HTTP
  routes:
    "GET /echo2/{id}": { integration: { type: LAMBDA, handler: handlers/rest.echoEvent, payloadFormatVersion: "2.0" } }
    "POST /echo2/{id}": { integration: { type: LAMBDA, handler: handlers/rest.echoEvent, payloadFormatVersion: "2.0" } }
    "GET /sync": { integration: { type: LAMBDA, handler: handlers/rest.syncEcho, payloadFormatVersion: "2.0" } }
    "GET /sync-throws": { integration: { type: LAMBDA, handler: handlers/rest.syncThrows, payloadFormatVersion: "2.0" } }
    "GET /hangs": { integration: { type: LAMBDA, handler: handlers/rest.hangs, payloadFormatVersion: "2.0" } }
    "GET /callback": { integration: { type: LAMBDA, handler: handlers/rest.callbackEcho, payloadFormatVersion: "2.0" } }
    "GET /v1": { integration: { type: LAMBDA, handler: handlers/rest.echoEvent, payloadFormatVersion: "1.0" } }
    "GET /mock": { integration: { type: MOCK, response: { statusCode: 200, body: '{"ok":true}' } } }
`;

/** Keeps the access log records; everything else is dropped. */
const accessRecords: Array<Record<string, unknown>> = [];
const ignore = (_fields: object, _msg: string): void => undefined;
const capture: Logger = {
  debug: ignore,
  info(fields, msg) {
    if (msg === 'access') accessRecords.push(fields as Record<string, unknown>);
  },
  warn: ignore,
  error: ignore,
  child: () => capture,
};

let g: StartedGateway;
beforeAll(async () => {
  const before = process.env.GATEHOUSE_ACCESS_LOG;
  process.env.GATEHOUSE_ACCESS_LOG = '1';
  try {
    g = await startGateway(API, { logger: capture }, 'rest-api');
  } finally {
    if (before === undefined) delete process.env.GATEHOUSE_ACCESS_LOG;
    else process.env.GATEHOUSE_ACCESS_LOG = before;
  }
});
afterAll(() => g?.stop());

interface RawResponse {
  status: number;
  headers: Array<[string, string]>;
  body: string;
}

/** One request written byte for byte (exact header names, order and repeats), one response read. */
function raw(request: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const s = net.connect(g.port, '127.0.0.1', () => s.write(request));
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
      const headers = lines.slice(1).map((l): [string, string] => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]);
      // A HEAD answer carries the length of a body it does not send.
      const length = request.startsWith('HEAD ') ? 0 : Number(headers.find(([k]) => k === 'content-length')?.[1] ?? 0);
      if (buf.length < end + 4 + length) return;
      s.destroy();
      resolve({ status: Number(lines[0]!.split(' ')[1]), headers, body: buf.subarray(end + 4, end + 4 + length).toString('utf8') });
    });
    s.on('error', reject);
  });
}

const header = (r: RawResponse, name: string) => r.headers.find(([k]) => k === name)?.[1];

const GET_ECHO = [
  'GET /prod/echo2/42?a=1&a=2&b= HTTP/1.1',
  'Host: example.com:8080',
  'User-Agent: raw/1.0',
  'X-Dup: one',
  'x-dup: two',
  'Cookie: c1=v1; c2=v2',
  'Cookie: c3=v3',
  'Constructor: ctor',
  '',
  '',
].join('\r\n');

describe('the synchronous REST path', () => {
  it('builds the complete 2.0 event, field for field', async () => {
    const started = Date.now();
    const r = await raw(GET_ECHO);
    expect(r.status).toBe(200);
    const ev = JSON.parse(r.body) as Record<string, unknown> & { requestContext: Record<string, unknown> };
    expect(ev).toStrictEqual({
      version: '2.0',
      routeKey: 'GET /echo2/{id}',
      rawPath: '/prod/echo2/42',
      rawQueryString: 'a=1&a=2&b=',
      cookies: ['c1=v1', 'c2=v2', 'c3=v3'],
      headers: { host: 'example.com:8080', 'user-agent': 'raw/1.0', 'x-dup': 'one,two', constructor: 'ctor' },
      queryStringParameters: { a: '1,2', b: '' },
      pathParameters: { id: '42' },
      stageVariables: { env: 'production' },
      isBase64Encoded: false,
      requestContext: {
        accountId: '123456789012',
        apiId: expect.any(String),
        domainName: 'example.com',
        domainPrefix: 'example',
        http: { method: 'GET', path: '/prod/echo2/42', protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'raw/1.0' },
        requestId: header(r, 'apigw-requestid'),
        routeKey: 'GET /echo2/{id}',
        stage: 'prod',
        time: expect.stringMatching(/^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/),
        timeEpoch: expect.any(Number),
      },
    });
    expect(ev.requestContext.timeEpoch).toBeGreaterThanOrEqual(started - 1000);
    expect(header(r, 'x-amzn-requestid')).toBe(header(r, 'apigw-requestid'));
    expect(header(r, 'x-handler')).toBe('echo');
  });

  it('gives the same event as the path that reads a body, apart from the method and the body', async () => {
    const post = GET_ECHO.replace('GET ', 'POST ').replace('Constructor: ctor\r\n', 'Constructor: ctor\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n');
    const [a, b] = await Promise.all([raw(GET_ECHO), raw(`${post}hi`)]);
    const viaGet = JSON.parse(a.body) as Record<string, unknown> & { requestContext: Record<string, unknown> & { http: Record<string, unknown> } };
    const viaPost = JSON.parse(b.body) as typeof viaGet;
    expect(viaPost.body).toBe('hi');
    expect(viaPost.headers).toEqual({ ...(viaGet.headers as object), 'content-type': 'text/plain', 'content-length': '2' });
    for (const ev of [viaGet, viaPost]) {
      delete ev.body;
      delete ev.headers;
      delete ev.routeKey;
      ev.requestContext.http.method = '-';
      for (const k of ['requestId', 'routeKey', 'time', 'timeEpoch']) delete ev.requestContext[k];
    }
    expect(viaPost).toStrictEqual(viaGet);
  });

  it('answers a synchronous handler at once, with the Lambda context', async () => {
    const r = await raw('GET /prod/sync HTTP/1.1\r\nHost: h\r\n\r\n');
    expect(r.status).toBe(200);
    const { event, context } = JSON.parse(r.body) as { event: { requestContext: Record<string, unknown>; headers: unknown }; context: Record<string, unknown> };
    expect(event.headers).toEqual({ host: 'h' });
    expect(event.requestContext.domainName).toBe('h');
    expect(context.functionName).toBe('rest');
    expect(context.awsRequestId).toBe(header(r, 'apigw-requestid'));
    expect(context.invokedFunctionArn).toBe('arn:aws:lambda:us-east-1:123456789012:function:rest');
    expect(context.remaining).toBeGreaterThan(0);
    expect(context.remaining).toBeLessThanOrEqual(300);
  });

  it('answers 500 for a synchronous throw, 504 for a handler that never settles, and serves callback-style handlers', async () => {
    const t = await raw('GET /prod/sync-throws HTTP/1.1\r\nHost: h\r\n\r\n');
    expect(t.status).toBe(500);
    expect(t.body).toBe('{"message":"Internal Server Error"}');
    const started = Date.now();
    const h = await raw('GET /prod/hangs HTTP/1.1\r\nHost: h\r\n\r\n');
    expect(h.status).toBe(504);
    expect(JSON.parse(h.body)).toEqual({ message: 'Endpoint request timed out' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    const c = await raw('GET /prod/callback HTTP/1.1\r\nHost: h\r\n\r\n');
    expect(c.status).toBe(200);
    expect(JSON.parse(c.body)).toEqual({ rawPath: '/prod/callback' });
    expect(header(c, 'content-type')).toBe('application/json');
  });

  it('builds 1.0 events with the header names as the client spells them (canonical case)', async () => {
    const r = await raw('GET /v1 HTTP/1.1\r\nHost: h\r\nX-Custom-Thing: v\r\n\r\n'.replace('/v1', '/prod/v1'));
    const ev = JSON.parse(r.body) as { headers: Record<string, string>; requestContext: { identity: { sourceIp: string } } };
    expect(ev.headers).toEqual({ Host: 'h', 'X-Custom-Thing': 'v' });
    expect(ev.requestContext.identity.sourceIp).toBe('127.0.0.1');
  });

  it('logs the client address for answers given synchronously (MOCK) and later (LAMBDA)', async () => {
    accessRecords.length = 0;
    await raw('GET /prod/mock HTTP/1.1\r\nHost: h\r\n\r\n');
    await raw('GET /prod/echo2/7 HTTP/1.1\r\nHost: h\r\n\r\n');
    await raw('GET /prod/nothing HTTP/1.1\r\nHost: h\r\n\r\n');
    expect(accessRecords.map((r) => [r.routeKey, r.status, r.ip])).toEqual([
      ['GET /mock', 200, '127.0.0.1'],
      ['GET /echo2/{id}', 200, '127.0.0.1'],
      ['-', 404, '127.0.0.1'],
    ]);
  });

  it('answers HEAD on a GET-only route like any unmatched method, and keeps the connection usable', async () => {
    const r = await raw('HEAD /prod/mock HTTP/1.1\r\nHost: h\r\n\r\n');
    expect(r.status).toBe(404);
    expect((await raw('GET /prod/mock HTTP/1.1\r\nHost: h\r\n\r\n')).body).toBe('{"ok":true}');
  });
});
