import { describe, expect, it } from 'vitest';
import { normalisePath } from '../../server/http/request.ts';
import {
  compileRouteTable,
  parseRouteKey,
  type RouteLookup,
  RouteKeyError,
  RouteTable,
  routeKeyProblem,
} from '../../server/http/route-table.ts';

/** Route value = its own key, so a match shows which route won. */
function table(...keys: string[]): RouteTable<string> {
  return compileRouteTable(keys.map((k) => [k, k] as const));
}

function winner(lookup: RouteLookup<string>): string | undefined {
  return 'notFound' in lookup ? undefined : lookup.route;
}

describe('route table: exact and parameter routes', () => {
  it('should match a static route with its method', () => {
    const t = table('GET /items', 'POST /items');
    expect(t.match('GET', '/items')).toEqual({
      route: 'GET /items',
      routeKey: 'GET /items',
      resource: '/items',
      pathParameters: null,
    });
    expect(winner(t.match('POST', '/items'))).toBe('POST /items');
  });

  it('should match the root path', () => {
    const t = table('GET /');
    expect(winner(t.match('GET', '/'))).toBe('GET /');
    expect(winner(t.match('GET', '/x'))).toBeUndefined();
  });

  it('should extract {param} values', () => {
    const t = table('GET /items/{id}/parts/{partId}');
    expect(t.match('GET', '/items/42/parts/7')).toEqual({
      route: 'GET /items/{id}/parts/{partId}',
      routeKey: 'GET /items/{id}/parts/{partId}',
      resource: '/items/{id}/parts/{partId}',
      pathParameters: { id: '42', partId: '7' },
    });
  });

  it('should prefer a static segment over {param} at the same level', () => {
    const t = table('GET /items/{id}', 'GET /items/new');
    expect(winner(t.match('GET', '/items/new'))).toBe('GET /items/new');
    expect(winner(t.match('GET', '/items/other'))).toBe('GET /items/{id}');
  });

  it('should backtrack from a static branch that does not lead to a full match', () => {
    const t = table('GET /a/b', 'GET /{x}/c');
    expect(t.match('GET', '/a/c')).toMatchObject({ route: 'GET /{x}/c', pathParameters: { x: 'a' } });
  });

  it('should compare static segments case-sensitively', () => {
    const t = table('GET /Items');
    expect(winner(t.match('GET', '/items'))).toBeUndefined();
    expect(winner(t.match('GET', '/Items'))).toBe('GET /Items');
  });

  it('should ignore a trailing slash and repeated slashes', () => {
    const t = table('GET /items/{id}');
    expect(t.match('GET', '/items/1/')).toMatchObject({ pathParameters: { id: '1' } });
  });

  it('should answer a static path the same with and without a trailing slash', () => {
    const t = table('GET /items/new', 'ANY /items/new', 'GET /items/{id}', 'GET /');
    for (const p of ['/items/new', '/items/new/']) {
      expect(t.match('GET', p)).toEqual({ route: 'GET /items/new', routeKey: 'GET /items/new', resource: '/items/new', pathParameters: null });
      expect(winner(t.match('PUT', p))).toBe('ANY /items/new');
    }
    expect(winner(t.match('GET', '/'))).toBe('GET /');
    expect(winner(t.match('POST', '/'))).toBeUndefined();
  });

  it('should allow different parameter names for different methods at one level', () => {
    const t = table('GET /a/{id}', 'DELETE /a/{key}');
    expect(t.match('GET', '/a/1')).toMatchObject({ pathParameters: { id: '1' } });
    expect(t.match('DELETE', '/a/1')).toMatchObject({ pathParameters: { key: '1' } });
  });
});

describe('route table: ANY', () => {
  it('should use ANY for methods that are not defined explicitly', () => {
    const t = table('ANY /items', 'GET /items');
    expect(winner(t.match('GET', '/items'))).toBe('GET /items');
    expect(winner(t.match('DELETE', '/items'))).toBe('ANY /items');
    expect(winner(t.match('PROPFIND', '/items'))).toBe('ANY /items');
  });

  it('should not match a method that is neither defined nor covered by ANY', () => {
    const t = table('GET /items');
    expect(t.match('POST', '/items')).toEqual({ notFound: true });
    expect(t.match('HEAD', '/items')).toEqual({ notFound: true });
  });

  it('should fall back to a less specific path when the most specific one lacks the method', () => {
    const t = table('POST /items/new', 'GET /items/{id}');
    expect(winner(t.match('GET', '/items/new'))).toBe('GET /items/{id}');
  });

  it('should prefer ANY on the more specific path over an explicit method on a {param} path', () => {
    const t = table('ANY /items/new', 'GET /items/{id}');
    expect(winner(t.match('GET', '/items/new'))).toBe('ANY /items/new');
  });
});

describe('route table: greedy {proxy+}', () => {
  it('should match one or more segments and join them', () => {
    const t = table('GET /static/{proxy+}');
    expect(t.match('GET', '/static/a')).toEqual({
      route: 'GET /static/{proxy+}',
      routeKey: 'GET /static/{proxy+}',
      resource: '/static/{proxy+}',
      pathParameters: { proxy: 'a' },
    });
    expect(t.match('GET', '/static/a/b/c.css')).toMatchObject({ pathParameters: { proxy: 'a/b/c.css' } });
  });

  it('should not match its parent path', () => {
    const t = table('ANY /{proxy+}', 'GET /static/{proxy+}');
    expect(t.match('GET', '/')).toEqual({ notFound: true });
    expect(t.match('GET', '/static')).toMatchObject({ route: 'ANY /{proxy+}', pathParameters: { proxy: 'static' } });
  });

  it('should rank every full match above every greedy match', () => {
    const t = table('GET /{proxy+}', 'ANY /a/{id}');
    expect(winner(t.match('GET', '/a/1'))).toBe('ANY /a/{id}');
  });

  it('should prefer an explicit method over ANY on the same greedy route', () => {
    const t = table('ANY /{proxy+}', 'GET /{proxy+}');
    expect(winner(t.match('GET', '/x/y'))).toBe('GET /{proxy+}');
    expect(winner(t.match('PUT', '/x/y'))).toBe('ANY /{proxy+}');
  });

  it('should prefer the greedy route with the longer prefix (AWS docs example)', () => {
    const t = table('GET /pets/dog/1', 'GET /pets/dog/{id}', 'GET /pets/{proxy+}', 'ANY /{proxy+}', '$default');
    expect(winner(t.match('GET', '/pets/dog/1'))).toBe('GET /pets/dog/1');
    expect(winner(t.match('GET', '/pets/dog/2'))).toBe('GET /pets/dog/{id}');
    expect(t.match('GET', '/pets/cat/1')).toMatchObject({ route: 'GET /pets/{proxy+}', pathParameters: { proxy: 'cat/1' } });
    expect(winner(t.match('POST', '/pets/cat/1'))).toBe('ANY /{proxy+}');
    expect(winner(t.match('GET', '/'))).toBe('$default');
  });

  it('should prefer a static prefix over a {param} prefix of the same length', () => {
    const t = table('GET /{tenant}/{proxy+}', 'GET /files/{proxy+}');
    expect(t.match('GET', '/files/a/b')).toMatchObject({ route: 'GET /files/{proxy+}', pathParameters: { proxy: 'a/b' } });
    expect(t.match('GET', '/acme/a/b')).toMatchObject({ pathParameters: { tenant: 'acme', proxy: 'a/b' } });
  });

  it('should carry {param} values in front of the greedy parameter', () => {
    const t = table('ANY /v1/{tenant}/{rest+}');
    expect(t.match('GET', '/v1/acme/x/y')).toMatchObject({ pathParameters: { tenant: 'acme', rest: 'x/y' } });
  });

  it('should skip a greedy node without the method and use a shorter greedy route', () => {
    const t = table('POST /a/{proxy+}', 'GET /{proxy+}');
    expect(t.match('GET', '/a/b')).toMatchObject({ route: 'GET /{proxy+}', pathParameters: { proxy: 'a/b' } });
  });
});

describe('route table: $default', () => {
  it('should catch everything else, with the request path as resource', () => {
    const t = table('GET /items', '$default');
    expect(t.match('DELETE', '/nowhere/at/all')).toEqual({
      route: '$default',
      routeKey: '$default',
      resource: '/nowhere/at/all',
      pathParameters: null,
    });
    expect(t.hasDefaultRoute).toBe(true);
    expect(t.size).toBe(2);
  });

  it('should be notFound without $default', () => {
    expect(table('GET /items').match('GET', '/other')).toEqual({ notFound: true });
    expect(table().match('GET', '/')).toEqual({ notFound: true });
  });
});

describe('route table: parameter values', () => {
  function matchRaw(t: RouteTable<string>, raw: string): RouteLookup<string> {
    const n = normalisePath(raw);
    if (!n.ok) throw new Error(`rejected ${raw}`);
    return t.match('GET', n.path);
  }

  it('should hand out values decoded exactly once', () => {
    const t = table('GET /users/{name}');
    expect(matchRaw(t, '/users/J%C3%BCrgen%20S')).toMatchObject({ pathParameters: { name: 'Jürgen S' } });
    // %2541 decodes once to "%41", which must not become "A".
    expect(matchRaw(t, '/users/%2541')).toMatchObject({ pathParameters: { name: '%41' } });
  });

  it('should treat an encoded slash as a separator, as API Gateway does', () => {
    const t = table('GET /users/{name}', 'GET /files/{proxy+}');
    expect(matchRaw(t, '/users/a%2Fb')).toEqual({ notFound: true });
    expect(matchRaw(t, '/files/a%2Fb')).toMatchObject({ pathParameters: { proxy: 'a/b' } });
  });

  it('should keep a __proto__ parameter as an own property', () => {
    const t = table('GET /x/{__proto__}');
    const m = t.match('GET', '/x/1');
    expect('notFound' in m).toBe(false);
    if ('notFound' in m) return;
    expect(Object.hasOwn(m.pathParameters ?? {}, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(m.pathParameters)).toBe(Object.prototype);
  });
});

describe('route keys: validation', () => {
  const invalid: Array<[string, RegExp]> = [
    ['GET', /expected "METHOD \/path"/],
    ['get /items', /upper case: GET/],
    ['FETCH /items', /unknown method "FETCH"/],
    ['GET items', /must start with "\/"/],
    ['GET  /items', /must start with "\/"/],
    ['GET /items/', /must not end with "\/"/],
    ['GET /a//b', /empty path segment/],
    ['GET /{proxy+}/x', /must be the last path segment/],
    ['GET /a/{id}/b/{id}', /appears twice/],
    ['GET /a/x{id}', /whole segment/],
    ['GET /a/{}', /whole segment/],
    ['GET /a/{id', /whole segment/],
    ['GET /a/{i d}', /whole segment/],
    ['GET /a/b c', /may only contain/],
    ['GET /a/%20', /may only contain/],
    ['GET /a/..', /not allowed/],
    ['$DEFAULT', /expected "METHOD \/path"/],
  ];

  it.each(invalid)('should reject %j', (key, message) => {
    expect(() => parseRouteKey(key)).toThrow(RouteKeyError);
    expect(() => parseRouteKey(key)).toThrow(message);
    expect(routeKeyProblem(key)).toMatch(message);
  });

  it('should name the key in the message', () => {
    expect(routeKeyProblem('get /x')).toContain('invalid route key "get /x"');
  });

  it('should accept the valid forms', () => {
    for (const key of ['GET /', 'ANY /{proxy+}', 'OPTIONS /a-b/c_d/e.f/g,h/i:j', 'PATCH /v1/{id}/{rest+}', '$default']) {
      expect(routeKeyProblem(key)).toBeUndefined();
    }
    expect(parseRouteKey('GET /a/{id}/{rest+}')).toEqual({
      kind: 'route',
      method: 'GET',
      path: '/a/{id}/{rest+}',
      segments: [
        { kind: 'static', value: 'a' },
        { kind: 'param', name: 'id' },
        { kind: 'greedy', name: 'rest' },
      ],
    });
  });

  it('should reject duplicate and conflicting routes at compile time', () => {
    expect(() => table('GET /a', 'GET /a')).toThrow(/defined twice/);
    expect(() => table('$default', '$default')).toThrow(/defined twice/);
    expect(() => table('GET /a/{x}', 'GET /a/{y}')).toThrow(/conflicts with "GET \/a\/\{x\}"/);
    expect(() => table('ANY /{a+}', 'ANY /{b+}')).toThrow(/conflicts/);
    expect(() => table('GET /a/{x}', 'POST /a/{y}', 'GET /a/{x+}')).not.toThrow();
  });

  it('should accept a plain record as well as entries', () => {
    const t = new RouteTable<number>({ 'GET /a': 1, $default: 2 });
    expect(t.match('GET', '/a')).toMatchObject({ route: 1 });
    expect(t.match('GET', '/b')).toMatchObject({ route: 2 });
  });
});
