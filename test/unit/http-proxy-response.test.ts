import { describe, expect, it } from 'vitest';
import {
  MALFORMED_RESPONSE_V1,
  MALFORMED_RESPONSE_V2,
  type MappedResponse,
  mapLambdaResponseV1,
  mapLambdaResponseV1Text,
  mapLambdaResponseV2,
  mapLambdaResponseV2Text,
} from '../../server/http/proxy-response.ts';

function ok(r: MappedResponse): { status: number; headers: Array<[string, string]>; body: string } {
  if (!r.ok) throw new Error(`expected ok, got: ${r.reason}`);
  return { status: r.status, headers: r.headers, body: r.body.toString('utf8') };
}

describe('Lambda proxy response 1.0', () => {
  it('should map status, headers and body', () => {
    expect(ok(mapLambdaResponseV1({ statusCode: 201, headers: { 'Content-Type': 'text/plain', 'X-N': 5 }, body: 'hi' }))).toEqual({
      status: 201,
      headers: [
        ['Content-Type', 'text/plain'],
        ['X-N', '5'],
      ],
      body: 'hi',
    });
  });

  it('should merge headers and multiValueHeaders, multiValueHeaders winning per name', () => {
    const r = ok(
      mapLambdaResponseV1({
        statusCode: 200,
        headers: { 'X-A': 'single', 'X-B': 'only-single', 'Content-Type': 'text/plain' },
        multiValueHeaders: { 'x-a': ['m1', 'm2'], 'Set-Cookie': ['a=1', 'b=2'] },
      }),
    );
    expect(r.headers).toEqual([
      ['X-B', 'only-single'],
      ['Content-Type', 'text/plain'],
      ['x-a', 'm1'],
      ['x-a', 'm2'],
      ['Set-Cookie', 'a=1'],
      ['Set-Cookie', 'b=2'],
    ]);
  });

  it('should default the body to empty and the content type to application/json', () => {
    expect(ok(mapLambdaResponseV1({ statusCode: 204 }))).toEqual({
      status: 204,
      headers: [['content-type', 'application/json']],
      body: '',
    });
    expect(ok(mapLambdaResponseV1({ statusCode: 200, body: null, headers: null })).body).toBe('');
  });

  it('should decode a base64 body', () => {
    const bytes = Buffer.from([0, 1, 2, 250, 251, 255]);
    const r = mapLambdaResponseV1({ statusCode: 200, body: bytes.toString('base64'), isBase64Encoded: true });
    expect(r.ok && r.body.equals(bytes)).toBe(true);
    const url = mapLambdaResponseV1({ statusCode: 200, body: bytes.toString('base64url'), isBase64Encoded: true });
    expect(url.ok && url.body.equals(bytes)).toBe(true);
    expect(ok(mapLambdaResponseV1({ statusCode: 200, body: 'aGk=', isBase64Encoded: false })).body).toBe('aGk=');
  });

  it('should skip null header values and ignore unknown fields', () => {
    const r = ok(mapLambdaResponseV1({ statusCode: 200, headers: { 'X-Null': null }, cookies: ['ignored=1'], extra: 1 }));
    expect(r.headers).toEqual([['content-type', 'application/json']]);
  });

  const malformed: Array<[string, unknown]> = [
    ['undefined', undefined],
    ['null', null],
    ['a string', 'hello'],
    ['an array', [200]],
    ['missing statusCode', { body: 'x' }],
    ['string statusCode', { statusCode: '200' }],
    ['fractional statusCode', { statusCode: 200.5 }],
    ['statusCode below 100', { statusCode: 99 }],
    ['statusCode above 599', { statusCode: 600 }],
    ['object body', { statusCode: 200, body: { a: 1 } }],
    ['number body', { statusCode: 200, body: 5 }],
    ['headers not an object', { statusCode: 200, headers: 'x' }],
    ['header value an object', { statusCode: 200, headers: { a: { b: 1 } } }],
    ['header value an array', { statusCode: 200, headers: { a: ['x'] } }],
    ['header value with CRLF', { statusCode: 200, headers: { a: 'x\r\nSet-Cookie: evil=1' } }],
    ['invalid header name', { statusCode: 200, headers: { 'a b': 'x' } }],
    ['multiValueHeaders value not an array', { statusCode: 200, multiValueHeaders: { a: 'x' } }],
    ['multiValueHeaders entry an object', { statusCode: 200, multiValueHeaders: { a: [{}] } }],
    ['isBase64Encoded not a boolean', { statusCode: 200, body: 'aGk=', isBase64Encoded: 'true' }],
    ['invalid base64', { statusCode: 200, body: 'not base64!', isBase64Encoded: true }],
  ];
  it.each(malformed)('should be malformed for %s', (_name, value) => {
    const r = mapLambdaResponseV1(value);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toEqual(expect.any(String));
  });

  it('should publish the 502 the caller answers with', () => {
    expect(MALFORMED_RESPONSE_V1).toEqual({ status: 502, body: '{"message": "Internal server error"}' });
  });
});

describe('Lambda proxy response 2.0', () => {
  it('should map an explicit response with cookies as separate set-cookie headers', () => {
    expect(
      ok(
        mapLambdaResponseV2({
          statusCode: 302,
          headers: { location: '/next', 'x-list': 'a,b' },
          cookies: ['a=1; Path=/', 'b=2; HttpOnly'],
          body: '',
        }),
      ),
    ).toEqual({
      status: 302,
      headers: [
        ['location', '/next'],
        ['x-list', 'a,b'],
        ['set-cookie', 'a=1; Path=/'],
        ['set-cookie', 'b=2; HttpOnly'],
        ['content-type', 'application/json'],
      ],
      body: '',
    });
  });

  it('should keep a content type the function set and ignore multiValueHeaders', () => {
    const r = ok(
      mapLambdaResponseV2({ statusCode: 200, headers: { 'Content-Type': 'text/html' }, multiValueHeaders: { x: ['1'] }, body: '<p>' }),
    );
    expect(r.headers).toEqual([['Content-Type', 'text/html']]);
    expect(r.body).toBe('<p>');
  });

  it('should decode a base64 body', () => {
    const r = mapLambdaResponseV2({ statusCode: 200, body: Buffer.from('héllo').toString('base64'), isBase64Encoded: true });
    expect(ok(r).body).toBe('héllo');
  });

  const inferred: Array<[string, unknown, string]> = [
    ['an object without statusCode', { hello: 'world', n: [1, 2] }, '{"hello":"world","n":[1,2]}'],
    ['an object whose statusCode is undefined', { statusCode: undefined, a: 1 }, '{"a":1}'],
    ['a bare string (as-is)', 'plain text', 'plain text'],
    ['a string of JSON (as-is)', '{"a":1}', '{"a":1}'],
    ['a number', 42, '42'],
    ['a boolean', true, 'true'],
    ['null', null, 'null'],
    ['undefined', undefined, 'null'],
    ['an array', [1, 'two'], '[1,"two"]'],
  ];
  it.each(inferred)('should infer 200 application/json for %s', (_name, value, body) => {
    expect(ok(mapLambdaResponseV2(value))).toEqual({ status: 200, headers: [['content-type', 'application/json']], body });
  });

  const malformed: Array<[string, unknown]> = [
    ['string statusCode', { statusCode: '200' }],
    ['statusCode out of range', { statusCode: 1000 }],
    ['object body', { statusCode: 200, body: { a: 1 } }],
    ['cookies not an array', { statusCode: 200, cookies: 'a=1' }],
    ['cookie not a string', { statusCode: 200, cookies: [1] }],
    ['cookie with CRLF', { statusCode: 200, cookies: ['a=1\r\nx: y'] }],
    ['header array value', { statusCode: 200, headers: { a: ['1', '2'] } }],
    ['a BigInt', 10n],
    ['a cyclic object', (() => {
      const o: Record<string, unknown> = {};
      o.self = o;
      return o;
    })()],
    ['a function', () => 1],
  ];
  it.each(malformed)('should be malformed for %s', (_name, value) => {
    expect(mapLambdaResponseV2(value).ok).toBe(false);
  });

  it('should publish the 500 the caller answers with', () => {
    expect(MALFORMED_RESPONSE_V2).toEqual({ status: 500, body: '{"message":"Internal Server Error"}' });
  });
});

describe('text-bodied mapping (the gateway\'s own use)', () => {
  it('should keep a text body as the string returned and decode only base64 bodies', () => {
    for (const map of [mapLambdaResponseV1Text, mapLambdaResponseV2Text]) {
      expect(map({ statusCode: 201, body: 'hi' })).toEqual({ ok: true, status: 201, headers: [['content-type', 'application/json']], body: 'hi' });
      expect(map({ statusCode: 200, body: null })).toMatchObject({ ok: true, body: '' });
      const b = map({ statusCode: 200, body: 'aGk=', isBase64Encoded: true });
      expect(b.ok && Buffer.isBuffer(b.body) && b.body.toString()).toBe('hi');
      expect(map({ statusCode: 200, body: 5 }).ok).toBe(false);
    }
    expect(mapLambdaResponseV2Text({ a: 1 })).toEqual({ ok: true, status: 200, headers: [['content-type', 'application/json']], body: '{"a":1}' });
  });

  it('should agree with the Buffer-bodied mapping', () => {
    const values: unknown[] = [
      { statusCode: 200, headers: { 'X-A': 1, 'Content-Type': 'text/plain' }, cookies: ['a=1'], body: 'x' },
      { statusCode: 204 },
      'bare',
      undefined,
      { statusCode: 'bad' },
    ];
    for (const v of values) {
      const text = mapLambdaResponseV2Text(v);
      const buf = mapLambdaResponseV2(v);
      if (!text.ok || !buf.ok) {
        expect(text.ok).toBe(buf.ok);
        continue;
      }
      expect(buf.headers).toEqual(text.headers);
      expect(buf.body.equals(Buffer.from(text.body))).toBe(true);
    }
  });

  it('should give every public mapping a headers array of its own', () => {
    const a = ok(mapLambdaResponseV2({ statusCode: 200 }));
    a.headers.push(['x-mutated', '1']);
    expect(ok(mapLambdaResponseV2({ statusCode: 200 })).headers).toEqual([['content-type', 'application/json']]);
    expect(ok(mapLambdaResponseV1({ statusCode: 200 })).headers).toEqual([['content-type', 'application/json']]);
  });
});
