import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GetConnectionCommand,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { Sha256 } from '@smithy/core/checksum';
import { HttpRequest } from '@smithy/core/protocols';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManagementKeys, type SignedRequest, type SigV4Result, verifySigV4 } from '../../server/management/sigv4.ts';

const AKID = 'AKIDEXAMPLE';
const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
const KEYS: ReadonlyMap<string, string> = new Map([
  [AKID, SECRET],
  ['AKIDOTHER', 'other-secret'],
]);
const SIGNING_DATE = new Date('2024-01-20T11:54:57Z');
const NOW = () => SIGNING_DATE.getTime() + 1_000;
const HOST = '127.0.0.1:8080';
const CONN_PATH = '/prod/@connections/abc%3D';

function signer(opts: { secret?: string; service?: string; akid?: string } = {}): SignatureV4 {
  return new SignatureV4({
    credentials: { accessKeyId: opts.akid ?? AKID, secretAccessKey: opts.secret ?? SECRET },
    region: 'us-east-1',
    service: opts.service ?? 'execute-api',
    sha256: Sha256,
  });
}

function headersToRecord(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) out[k.toLowerCase()] = v;
  return out;
}

function buildQuery(query: Record<string, string | string[] | null>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(query)) {
    for (const one of Array.isArray(v) ? v : [v]) {
      parts.push(one === null ? encodeURIComponent(k) : `${encodeURIComponent(k)}=${encodeURIComponent(one)}`);
    }
  }
  return parts.join('&');
}

interface SignArgs {
  method: string;
  path?: string;
  query?: Record<string, string | string[]>;
  body?: Uint8Array;
  extraHeaders?: Record<string, string>;
  signerOpts?: Parameters<typeof signer>[0];
  presign?: boolean;
}

/** Signs with the real @smithy/signature-v4 and returns what the server would receive. */
async function sign(args: SignArgs): Promise<SignedRequest> {
  const path = args.path ?? CONN_PATH;
  const body = args.body ?? new Uint8Array();
  const request = new HttpRequest({
    method: args.method,
    protocol: 'http:',
    hostname: '127.0.0.1',
    port: 8080,
    path,
    query: args.query ?? {},
    headers: { host: HOST, ...(body.length > 0 ? { 'content-type': 'application/octet-stream' } : {}), ...args.extraHeaders },
    ...(body.length > 0 ? { body } : {}),
  });
  const s = signer(args.signerOpts);
  const signed = args.presign
    ? await s.presign(request, { signingDate: SIGNING_DATE, expiresIn: 300 })
    : await s.sign(request, { signingDate: SIGNING_DATE });
  return {
    method: signed.method,
    rawPath: signed.path,
    rawQuery: buildQuery(signed.query ?? {}),
    headers: headersToRecord(signed.headers),
    body,
  };
}

const binaryBody = new Uint8Array([0, 1, 2, 0xff, 0xfe, 0x80, 0x3d, 0x0a]);

function expectFail(result: SigV4Result, reason: string | RegExp): void {
  expect(result.ok).toBe(false);
  if (!result.ok) {
    if (typeof reason === 'string') expect(result.reason).toBe(reason);
    else expect(result.reason).toMatch(reason);
    expect(result.reason).not.toContain(SECRET);
  }
}

describe('verifySigV4 with @smithy/signature-v4', () => {
  it('accepts POST /prod/@connections/{id} with a binary body and an encoded id', async () => {
    const req = await sign({ method: 'POST', body: binaryBody });
    expect(req.headers['x-amz-content-sha256']).toBeDefined();
    expect(verifySigV4(req, KEYS, { now: NOW })).toEqual({ ok: true, accessKeyId: AKID, region: 'us-east-1' });
  });

  it('accepts GET and DELETE', async () => {
    for (const method of ['GET', 'DELETE']) {
      const req = await sign({ method });
      expect(verifySigV4(req, KEYS, { now: NOW })).toEqual({ ok: true, accessKeyId: AKID, region: 'us-east-1' });
    }
  });

  it('accepts a request whose path is already fully percent-encoded', async () => {
    const req = await sign({ method: 'GET', path: '/prod/%40connections/a%2Fb%3D%20c' });
    expect(verifySigV4(req, KEYS, { now: NOW }).ok).toBe(true);
  });

  it('accepts signed query strings with repeated keys and reserved characters', async () => {
    const req = await sign({ method: 'GET', query: { z: 'last', a: ['2', '1 +/'], "b!'()*": 'x=y' } });
    expect(verifySigV4(req, KEYS, { now: NOW }).ok).toBe(true);
  });

  it('accepts when x-amz-content-sha256 is absent (hash of the body is used)', async () => {
    const req = await sign({ method: 'POST', body: binaryBody });
    const s = new SignatureV4({
      credentials: { accessKeyId: AKID, secretAccessKey: SECRET },
      region: 'eu-west-1',
      service: 'execute-api',
      sha256: Sha256,
      applyChecksum: false,
    });
    const signed = await s.sign(
      new HttpRequest({ method: 'POST', hostname: '127.0.0.1', port: 8080, path: CONN_PATH, headers: { host: HOST }, body: binaryBody }),
      { signingDate: SIGNING_DATE },
    );
    const headers = headersToRecord(signed.headers);
    expect(headers['x-amz-content-sha256']).toBeUndefined();
    expect(verifySigV4({ ...req, headers }, KEYS, { now: NOW })).toEqual({ ok: true, accessKeyId: AKID, region: 'eu-west-1' });
  });

  it('accepts UNSIGNED-PAYLOAD', async () => {
    const req = await sign({ method: 'POST', body: binaryBody, extraHeaders: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } });
    expect(verifySigV4({ ...req, body: new Uint8Array([9]) }, KEYS, { now: NOW }).ok).toBe(true);
  });

  it('accepts presigned query-string requests and rejects expired ones', async () => {
    const req = await sign({ method: 'GET', presign: true });
    expect(req.headers.authorization).toBeUndefined();
    expect(req.rawQuery).toContain('X-Amz-Signature=');
    expect(verifySigV4(req, KEYS, { now: NOW })).toEqual({ ok: true, accessKeyId: AKID, region: 'us-east-1' });
    expectFail(verifySigV4(req, KEYS, { now: () => SIGNING_DATE.getTime() + 301_000 }), 'presigned request has expired');
    const tampered = { ...req, rawQuery: `${req.rawQuery}&extra=1` };
    expectFail(verifySigV4(tampered, KEYS, { now: NOW }), 'signature does not match');
  });

  it('honours a custom service name', async () => {
    const req = await sign({ method: 'GET', signerOpts: { service: 'gatehouse' } });
    expect(verifySigV4(req, KEYS, { now: NOW, service: 'gatehouse' }).ok).toBe(true);
  });
});

describe('verifySigV4 rejections', () => {
  it('wrong secret', async () => {
    const req = await sign({ method: 'POST', body: binaryBody, signerOpts: { secret: 'not-the-secret' } });
    expectFail(verifySigV4(req, KEYS, { now: NOW }), 'signature does not match');
  });

  it('unknown access key', async () => {
    const req = await sign({ method: 'GET', signerOpts: { akid: 'AKIDUNKNOWN' } });
    expectFail(verifySigV4(req, KEYS, { now: NOW }), 'unknown access key');
  });

  it('tampered body (x-amz-content-sha256 kept)', async () => {
    const req = await sign({ method: 'POST', body: binaryBody });
    const body = binaryBody.slice();
    body[0] = 42;
    expectFail(verifySigV4({ ...req, body }, KEYS, { now: NOW }), 'x-amz-content-sha256 does not match the request body');
  });

  it('tampered body and tampered x-amz-content-sha256', async () => {
    const req = await sign({ method: 'POST', body: binaryBody });
    const body = new Uint8Array([1, 2, 3]);
    const { createHash } = await import('node:crypto');
    const headers = { ...req.headers, 'x-amz-content-sha256': createHash('sha256').update(body).digest('hex') };
    expectFail(verifySigV4({ ...req, body, headers }, KEYS, { now: NOW }), 'signature does not match');
  });

  it('tampered path', async () => {
    const req = await sign({ method: 'POST', body: binaryBody });
    expectFail(verifySigV4({ ...req, rawPath: '/prod/@connections/abd%3D' }, KEYS, { now: NOW }), 'signature does not match');
    // decoding the id must not be equivalent to the signed, encoded form
    expectFail(verifySigV4({ ...req, rawPath: '/prod/@connections/abc=' }, KEYS, { now: NOW }), 'signature does not match');
  });

  it('tampered method', async () => {
    const req = await sign({ method: 'GET' });
    expectFail(verifySigV4({ ...req, method: 'DELETE' }, KEYS, { now: NOW }), 'signature does not match');
  });

  it('missing Authorization', async () => {
    const req = await sign({ method: 'GET' });
    const { authorization: _drop, ...headers } = req.headers;
    expectFail(verifySigV4({ ...req, headers }, KEYS, { now: NOW }), 'missing authentication token');
  });

  it('expired / future date', async () => {
    const req = await sign({ method: 'GET' });
    const late = () => SIGNING_DATE.getTime() + 6 * 60_000;
    expectFail(verifySigV4(req, KEYS, { now: late }), 'request time is outside the allowed clock skew');
    const early = () => SIGNING_DATE.getTime() - 6 * 60_000;
    expectFail(verifySigV4(req, KEYS, { now: early }), 'request time is outside the allowed clock skew');
    expect(verifySigV4(req, KEYS, { now: late, maxClockSkewMs: 10 * 60_000 }).ok).toBe(true);
  });

  it('wrong service in scope', async () => {
    const req = await sign({ method: 'GET', signerOpts: { service: 's3' } });
    expectFail(verifySigV4(req, KEYS, { now: NOW }), "credential scope service must be 'execute-api'");
  });

  it('malformed Authorization header', async () => {
    const req = await sign({ method: 'GET' });
    const auth = req.headers.authorization ?? '';
    const cases: Array<[string, string | RegExp]> = [
      ['garbage', /unsupported authorization algorithm/],
      ['AWS4-HMAC-SHA256 nonsense', 'malformed Authorization header'],
      [auth.replace(/, Signature=[0-9a-f]+/, ''), 'malformed Authorization header'],
      [auth.replace(/Signature=[0-9a-f]+/, 'Signature=zz'), 'malformed signature'],
      [auth.replace(/Credential=[^,]+/, 'Credential=AKIDEXAMPLE/20240120/us-east-1'), 'malformed credential scope'],
      [auth.replace('AWS4-HMAC-SHA256', 'AWS4-HMAC-SHA1'), /unsupported authorization algorithm/],
    ];
    for (const [authorization, reason] of cases) {
      expectFail(verifySigV4({ ...req, headers: { ...req.headers, authorization } }, KEYS, { now: NOW }), reason);
    }
  });

  it('malformed x-amz-date and scope/date mismatch', async () => {
    const req = await sign({ method: 'GET' });
    expectFail(verifySigV4({ ...req, headers: { ...req.headers, 'x-amz-date': 'yesterday' } }, KEYS, { now: NOW }), 'malformed X-Amz-Date');
    const auth = (req.headers.authorization ?? '').replace('/20240120/', '/20240119/');
    expectFail(
      verifySigV4({ ...req, headers: { ...req.headers, authorization: auth } }, KEYS, { now: NOW }),
      'credential scope date does not match the request date',
    );
  });

  it('unsigned host', async () => {
    const req = await sign({ method: 'GET' });
    const auth = (req.headers.authorization ?? '').replace('SignedHeaders=host;', 'SignedHeaders=');
    expect(auth).not.toContain('host');
    expectFail(verifySigV4({ ...req, headers: { ...req.headers, authorization: auth } }, KEYS, { now: NOW }), "'host' must be a signed header");
  });

  it('malformed SignedHeaders, unsigned x-amz-date and malformed query', async () => {
    const req = await sign({ method: 'GET' });
    const auth = req.headers.authorization ?? '';
    const upper = auth.replace('SignedHeaders=host;', 'SignedHeaders=Host;');
    expectFail(verifySigV4({ ...req, headers: { ...req.headers, authorization: upper } }, KEYS, { now: NOW }), 'malformed SignedHeaders');
    const noDate = auth.replace(';x-amz-date', '');
    expect(noDate).not.toContain('x-amz-date');
    expectFail(verifySigV4({ ...req, headers: { ...req.headers, authorization: noDate } }, KEYS, { now: NOW }), "'x-amz-date' must be a signed header");
    expectFail(verifySigV4({ ...req, rawQuery: 'a=%zz' }, KEYS, { now: NOW }), 'malformed query string');
    const both = { ...req, rawQuery: 'X-Amz-Algorithm=AWS4-HMAC-SHA256' };
    expectFail(verifySigV4(both, KEYS, { now: NOW }), 'request has both an Authorization header and X-Amz-Algorithm');
  });

  it('tampered signed header', async () => {
    const req = await sign({ method: 'GET' });
    expectFail(verifySigV4({ ...req, headers: { ...req.headers, host: 'evil.example:8080' } }, KEYS, { now: NOW }), 'signature does not match');
    const { host: _h, ...noHost } = req.headers;
    expectFail(verifySigV4({ ...req, headers: noHost }, KEYS, { now: NOW }), "signed header 'host' is missing from the request");
  });
});

describe('parseManagementKeys', () => {
  it('parses good input', () => {
    expect([...parseManagementKeys('AKID1:secret1,AKID2:se/cr+et2')]).toEqual([
      ['AKID1', 'secret1'],
      ['AKID2', 'se/cr+et2'],
    ]);
    expect([...parseManagementKeys(' AKID1 : s1 , AKID_2-x:s:2 ')]).toEqual([
      ['AKID1', 's1'],
      ['AKID_2-x', 's:2'],
    ]);
    expect(parseManagementKeys('').size).toBe(0);
    expect(parseManagementKeys('   ').size).toBe(0);
  });

  it('rejects malformed entries without leaking secrets', () => {
    const bad: Array<[string, RegExp]> = [
      ['AKID1', /entry #1 is malformed/],
      ['AKID1:topsecret,AKID2', /entry #2 is malformed/],
      [':topsecret', /entry #1 is malformed/],
      ['AKID1:', /entry #1 is malformed/],
      ['AKID1:topsecret,', /entry #2 is malformed/],
      ['AK ID:topsecret', /entry #1: access key id/],
      ['AKID1:topsecret,AKID1:topsecret2', /duplicate access key id 'AKID1'/],
    ];
    for (const [spec, message] of bad) {
      let error: unknown;
      try {
        parseManagementKeys(spec);
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain('topsecret');
    }
  });
});

describe('verifySigV4 against the real ApiGatewayManagementApiClient', () => {
  interface Captured {
    req: SignedRequest;
    url: string;
  }
  const captured: Captured[] = [];
  let server: Server;
  let client: ApiGatewayManagementApiClient;

  function toSignedRequest(req: IncomingMessage, body: Buffer): SignedRequest {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const headers: Record<string, string> = {};
    for (const [name, values] of Object.entries(req.headersDistinct)) {
      if (values) headers[name] = values.join(',');
    }
    return {
      method: req.method ?? 'GET',
      rawPath: q === -1 ? url : url.slice(0, q),
      rawQuery: q === -1 ? '' : url.slice(q + 1),
      headers,
      body: new Uint8Array(body),
    };
  }

  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        captured.push({ req: toSignedRequest(req, Buffer.concat(chunks)), url: req.url ?? '' });
        if (req.method === 'DELETE') {
          res.writeHead(204).end();
        } else if (req.method === 'GET') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(
            '{"connectedAt":"2024-01-20T11:54:57.419Z","identity":{"sourceIp":"1.2.3.4","userAgent":"x"},"lastActiveAt":"2024-01-20T11:54:57.419Z"}',
          );
        } else {
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    client = new ApiGatewayManagementApiClient({
      region: 'us-east-1',
      endpoint: `http://127.0.0.1:${port}/prod`,
      credentials: { accessKeyId: AKID, secretAccessKey: SECRET },
      maxAttempts: 1,
    });
  });

  afterAll(async () => {
    client.destroy();
    await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  });

  const id = 'L0SM9cOFvHcCIhw=';

  it('PostToConnection, GetConnection and DeleteConnection verify', async () => {
    captured.length = 0;
    await client.send(new PostToConnectionCommand({ ConnectionId: id, Data: binaryBody }));
    const conn = await client.send(new GetConnectionCommand({ ConnectionId: id }));
    expect(conn.Identity?.SourceIp).toBe('1.2.3.4');
    await client.send(new DeleteConnectionCommand({ ConnectionId: id }));

    expect(captured.map((c) => `${c.req.method} ${c.url}`)).toEqual([
      'POST /prod/@connections/L0SM9cOFvHcCIhw%3D',
      'GET /prod/@connections/L0SM9cOFvHcCIhw%3D',
      'DELETE /prod/@connections/L0SM9cOFvHcCIhw%3D',
    ]);
    expect(captured[0]?.req.body).toEqual(binaryBody);
    for (const { req } of captured) {
      expect(verifySigV4(req, KEYS)).toEqual({ ok: true, accessKeyId: AKID, region: 'us-east-1' });
      // decoding the path before verifying would break the SDK's double-encoded signature
      expect(verifySigV4({ ...req, rawPath: decodeURIComponent(req.rawPath) }, KEYS).ok).toBe(false);
      // ...and so would re-encoding it (e.g. a proxy normalising '@' to '%40')
      expect(verifySigV4({ ...req, rawPath: req.rawPath.replace('@', '%40') }, KEYS).ok).toBe(false);
    }
    const [post] = captured;
    if (post) {
      expectFail(verifySigV4({ ...post.req, body: new Uint8Array([1]) }, KEYS), 'x-amz-content-sha256 does not match the request body');
      expectFail(verifySigV4(post.req, new Map([[AKID, 'wrong']])), 'signature does not match');
    }
  });
});
