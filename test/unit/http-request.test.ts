import { describe, expect, it } from 'vitest';
import {
  commaJoinedMap,
  decodeQueryComponent,
  headerValue,
  multiValueMap,
  normalisePath,
  parseQueryString,
  pathSegments,
  singleValueMap,
} from '../../server/http/request.ts';

describe('normalisePath', () => {
  it('should decode once and keep the leading slash', () => {
    expect(normalisePath('/items/a%20b')).toEqual({ ok: true, path: '/items/a b' });
    expect(normalisePath('/caf%C3%A9')).toEqual({ ok: true, path: '/café' });
    expect(normalisePath('/a/%2541')).toEqual({ ok: true, path: '/a/%41' });
    expect(normalisePath('/a+b')).toEqual({ ok: true, path: '/a+b' });
  });

  it('should give "/" for an empty path and add a missing leading slash', () => {
    expect(normalisePath('')).toEqual({ ok: true, path: '/' });
    expect(normalisePath('/')).toEqual({ ok: true, path: '/' });
    expect(normalisePath('items')).toEqual({ ok: true, path: '/items' });
  });

  it('should collapse repeated slashes and keep a trailing slash', () => {
    expect(normalisePath('//a///b/')).toEqual({ ok: true, path: '/a/b/' });
    expect(normalisePath('/a/b')).toEqual({ ok: true, path: '/a/b' });
  });

  it('should let an encoded slash separate segments', () => {
    expect(normalisePath('/a%2Fb')).toEqual({ ok: true, path: '/a/b' });
  });

  it('should allow dots inside a segment', () => {
    expect(normalisePath('/a/.well-known/b..c/...')).toEqual({ ok: true, path: '/a/.well-known/b..c/...' });
  });

  const traversal = [
    '/..',
    '/a/../b',
    '/a/./b',
    '/.',
    '/a/..',
    '/%2e%2e/etc/passwd',
    '/%2E%2E/x',
    '/.%2e/x',
    '/%2e./x',
    '/a/%2e/b',
    '/a%2f..%2fb',
    '/a%2F%2E%2E%2Fb',
    '/%252e%252e/x',
    '/%252E./x',
  ];
  it.each(traversal)('should reject the traversal attempt %s', (raw) => {
    expect(normalisePath(raw)).toEqual({ ok: false });
  });

  const malformed = [
    '/a%', // truncated escape
    '/a%zz',
    '/a%2',
    '/%C3', // incomplete UTF-8
    '/%FF', // never valid UTF-8
    '/%C0%AF', // overlong '/'
    '/%ED%A0%80', // UTF-16 surrogate encoded as UTF-8
    '/a%00b', // NUL
    '/a\u0000b',
    '/a%0d%0aSet-Cookie:x', // CR LF
    '/a%7F',
    '/a\\b', // backslash
    '/a%5cb',
    '/a%5C..%5Cb',
  ];
  it.each(malformed)('should reject the malformed path %j', (raw) => {
    expect(normalisePath(raw)).toEqual({ ok: false });
  });
});

describe('pathSegments', () => {
  it('should split on "/" and drop empty segments', () => {
    expect(pathSegments('/')).toEqual([]);
    expect(pathSegments('/a/b/')).toEqual(['a', 'b']);
  });
});

describe('query strings', () => {
  it('should parse pairs in order, decoding "+" and percent escapes', () => {
    expect(parseQueryString('a=1&b=x+y&c=%E2%82%AC&a=2')).toEqual([
      ['a', '1'],
      ['b', 'x y'],
      ['c', '€'],
      ['a', '2'],
    ]);
  });

  it('should handle names without values, empty values and empty parts', () => {
    expect(parseQueryString('flag&x=&&y=1=2')).toEqual([
      ['flag', ''],
      ['x', ''],
      ['y', '1=2'],
    ]);
    expect(parseQueryString('')).toEqual([]);
  });

  it('should keep a malformed escape as sent', () => {
    expect(parseQueryString('a=100%&b=%zz')).toEqual([
      ['a', '100%'],
      ['b', '%zz'],
    ]);
    expect(decodeQueryComponent('%2B+%20')).toBe('+  ');
  });

  it('should not split on ";" by default, but should for REST', () => {
    expect(parseQueryString('a=1;b=2')).toEqual([['a', '1;b=2']]);
    expect(parseQueryString('a=1;b=2&c=3', { semicolonSeparator: true })).toEqual([
      ['a', '1'],
      ['b', '2'],
      ['c', '3'],
    ]);
    expect(parseQueryString('a=1%3Bb', { semicolonSeparator: true })).toEqual([['a', '1;b']]);
  });

  it('should build single-value (last wins), multi-value and comma-joined maps', () => {
    const pairs = parseQueryString('a=1&b=2&a=3');
    expect(singleValueMap(pairs)).toEqual({ a: '3', b: '2' });
    expect(multiValueMap(pairs)).toEqual({ a: ['1', '3'], b: ['2'] });
    expect(commaJoinedMap(pairs)).toEqual({ a: '1,3', b: '2' });
  });

  it('should give null maps when there are no parameters', () => {
    expect(singleValueMap([])).toBeNull();
    expect(multiValueMap([])).toBeNull();
    expect(commaJoinedMap([])).toBeNull();
  });

  it('should keep prototype-named parameters as plain own properties', () => {
    const pairs = parseQueryString('__proto__=x&constructor=y&constructor=z&toString=t');
    const multi = multiValueMap(pairs);
    expect(multi).not.toBeNull();
    expect(Object.getPrototypeOf(multi)).toBe(Object.prototype);
    expect(Object.hasOwn(multi ?? {}, '__proto__')).toBe(true);
    expect(JSON.stringify(multi)).toBe('{"__proto__":["x"],"constructor":["y","z"],"toString":["t"]}');
    const single = singleValueMap(pairs);
    expect(Object.getPrototypeOf(single)).toBe(Object.prototype);
    expect(JSON.stringify(single)).toBe('{"__proto__":"x","constructor":"z","toString":"t"}');
  });
});

describe('headerValue', () => {
  it('should find the last value case-insensitively', () => {
    const headers: Array<[string, string]> = [
      ['Accept', 'a'],
      ['x-k', '1'],
      ['X-K', '2'],
    ];
    expect(headerValue(headers, 'X-k')).toBe('2');
    expect(headerValue(headers, 'accept')).toBe('a');
    expect(headerValue(headers, 'missing')).toBeUndefined();
  });
});
