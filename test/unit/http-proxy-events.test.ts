import { describe, expect, it } from 'vitest';
import {
  buildEventV1,
  buildEventV2,
  domainPrefix,
  isTextMediaType,
  matchesMediaType,
  resourceIdFor,
} from '../../server/http/proxy-events.ts';
import type { GatewayHttpRequest } from '../../server/http/request.ts';
import { compileRouteTable } from '../../server/http/route-table.ts';

// 2015-04-09T12:34:56.789Z
const EPOCH = Date.UTC(2015, 3, 9, 12, 34, 56, 789);

function request(overrides: Partial<GatewayHttpRequest> = {}): GatewayHttpRequest {
  return {
    method: 'POST',
    stage: 'prod',
    path: '/items/42',
    rawPath: '/prod/items/42',
    rawQueryString: 'a=1&b=x+y&a=2',
    headers: [
      ['Host', 'abc123.execute-api.eu-west-1.amazonaws.com'],
      ['User-Agent', 'curl/8.0'],
      ['Accept', 'text/plain'],
      ['X-Multi', 'one'],
      ['x-multi', 'two'],
      ['Content-Type', 'application/json'],
      ['Cookie', 'c1=v1; c2=v2'],
      ['Cookie', 'c3=v3'],
    ],
    sourceIp: '203.0.113.9',
    body: Buffer.from('{"hello":"world"}'),
    requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
    requestTimeEpoch: EPOCH,
    domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
    ...overrides,
  };
}

const match = { routeKey: 'POST /items/{id}', resource: '/items/{id}', pathParameters: { id: '42' } };
const options = {
  accountId: '123456789012',
  apiId: 'abc123',
  stageVariables: { backend: 'http://localhost:3000' },
};

describe('payload format 1.0', () => {
  it('should build the REST event field for field', () => {
    const event = buildEventV1(request(), match, {
      ...options,
      authorizer: { principalId: 'user-1', scope: 'read' },
      extendedRequestId: 'R1knPH17NjMFftw=',
    });
    expect(event).toStrictEqual({
      resource: '/items/{id}',
      path: '/items/42',
      httpMethod: 'POST',
      headers: {
        Host: 'abc123.execute-api.eu-west-1.amazonaws.com',
        'User-Agent': 'curl/8.0',
        Accept: 'text/plain',
        'X-Multi': 'two',
        'Content-Type': 'application/json',
        Cookie: 'c3=v3',
      },
      multiValueHeaders: {
        Host: ['abc123.execute-api.eu-west-1.amazonaws.com'],
        'User-Agent': ['curl/8.0'],
        Accept: ['text/plain'],
        'X-Multi': ['one', 'two'],
        'Content-Type': ['application/json'],
        Cookie: ['c1=v1; c2=v2', 'c3=v3'],
      },
      queryStringParameters: { a: '2', b: 'x y' },
      multiValueQueryStringParameters: { a: ['1', '2'], b: ['x y'] },
      pathParameters: { id: '42' },
      stageVariables: { backend: 'http://localhost:3000' },
      requestContext: {
        accountId: '123456789012',
        apiId: 'abc123',
        authorizer: { principalId: 'user-1', scope: 'read' },
        domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
        domainPrefix: 'abc123',
        extendedRequestId: 'R1knPH17NjMFftw=',
        httpMethod: 'POST',
        identity: {
          accessKey: null,
          accountId: null,
          apiKey: null,
          apiKeyId: null,
          caller: null,
          clientCert: null,
          cognitoAuthenticationProvider: null,
          cognitoAuthenticationType: null,
          cognitoIdentityId: null,
          cognitoIdentityPoolId: null,
          principalOrgId: null,
          sourceIp: '203.0.113.9',
          user: null,
          userAgent: 'curl/8.0',
          userArn: null,
        },
        path: '/prod/items/42',
        protocol: 'HTTP/1.1',
        requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
        requestTime: '09/Apr/2015:12:34:56 +0000',
        requestTimeEpoch: EPOCH,
        resourceId: resourceIdFor('POST /items/{id}'),
        resourcePath: '/items/{id}',
        stage: 'prod',
      },
      body: '{"hello":"world"}',
      isBase64Encoded: false,
    });
  });

  it('should use null for every absent map and for an empty body', () => {
    const event = buildEventV1(
      request({ method: 'GET', headers: [], rawQueryString: '', body: Buffer.alloc(0) }),
      { routeKey: 'GET /', resource: '/', pathParameters: null },
      { accountId: '1', apiId: 'a' },
    );
    expect(event.headers).toBeNull();
    expect(event.multiValueHeaders).toBeNull();
    expect(event.queryStringParameters).toBeNull();
    expect(event.multiValueQueryStringParameters).toBeNull();
    expect(event.pathParameters).toBeNull();
    expect(event.stageVariables).toBeNull();
    expect(event.body).toBeNull();
    expect(event.isBase64Encoded).toBe(false);
    expect(event.requestContext.authorizer).toBeNull();
    expect(event.requestContext.identity.userAgent).toBeNull();
    expect(event).not.toHaveProperty('version');
    expect(buildEventV1(request(), match, { ...options, stageVariables: {} }).stageVariables).toBeNull();
  });

  it('should split the query on ";" for REST but not for HTTP APIs', () => {
    const req = request({ rawQueryString: 'a=1;b=2' });
    expect(buildEventV1(req, match, options).queryStringParameters).toEqual({ a: '1', b: '2' });
    expect(buildEventV1(req, match, { ...options, flavour: 'HTTP' }).queryStringParameters).toEqual({ a: '1;b=2' });
  });

  it('should add version and routeKey for HTTP APIs', () => {
    const event = buildEventV1(request(), match, { ...options, flavour: 'HTTP' });
    expect(event.version).toBe('1.0');
    expect(Object.keys(event)[0]).toBe('version');
    expect(event.requestContext.routeKey).toBe('POST /items/{id}');
  });

  it('should base64-encode a body whose Content-Type is a binary media type', () => {
    const bytes = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0xff]);
    const req = request({ headers: [['Content-Type', 'image/png']], body: bytes });
    const binary = buildEventV1(req, match, { ...options, binaryMediaTypes: ['image/*'] });
    expect(binary.isBase64Encoded).toBe(true);
    expect(binary.body).toBe(bytes.toString('base64'));
    const text = buildEventV1(req, match, { ...options, binaryMediaTypes: ['application/octet-stream'] });
    expect(text.isBase64Encoded).toBe(false);
    expect(text.body).toBe(bytes.toString('utf8'));
    // REST without binary media types never encodes.
    expect(buildEventV1(req, match, options).isBase64Encoded).toBe(false);
  });

  it('should omit the stage from requestContext.path on the $default stage', () => {
    const event = buildEventV1(request({ stage: '$default', rawPath: '/items/42' }), match, options);
    expect(event.requestContext.path).toBe('/items/42');
    expect(event.requestContext.stage).toBe('$default');
  });

  it('should not share maps with the options or the match', () => {
    const stageVariables = { a: '1' };
    const m = { ...match, pathParameters: { id: '1' } };
    const event = buildEventV1(request(), m, { ...options, stageVariables });
    expect(event.stageVariables).not.toBe(stageVariables);
    expect(event.pathParameters).not.toBe(m.pathParameters);
  });

  it('should accept a RouteMatch from the route table directly', () => {
    const lookup = compileRouteTable([['ANY /{proxy+}', 'r']]).match('GET', '/hello/world');
    if ('notFound' in lookup) throw new Error('no match');
    const event = buildEventV1(request({ method: 'GET', path: '/hello/world' }), lookup, options);
    expect(event.resource).toBe('/{proxy+}');
    expect(event.path).toBe('/hello/world');
    expect(event.pathParameters).toEqual({ proxy: 'hello/world' });
  });
});

describe('payload format 2.0', () => {
  it('should build the HTTP API event field for field', () => {
    const event = buildEventV2(request(), match, {
      ...options,
      authorizer: { jwt: { claims: { sub: 'u1' }, scopes: ['read'] } },
    });
    expect(event).toStrictEqual({
      version: '2.0',
      routeKey: 'POST /items/{id}',
      rawPath: '/prod/items/42',
      rawQueryString: 'a=1&b=x+y&a=2',
      cookies: ['c1=v1', 'c2=v2', 'c3=v3'],
      headers: {
        host: 'abc123.execute-api.eu-west-1.amazonaws.com',
        'user-agent': 'curl/8.0',
        accept: 'text/plain',
        'x-multi': 'one,two',
        'content-type': 'application/json',
      },
      queryStringParameters: { a: '1,2', b: 'x y' },
      pathParameters: { id: '42' },
      stageVariables: { backend: 'http://localhost:3000' },
      body: '{"hello":"world"}',
      isBase64Encoded: false,
      requestContext: {
        accountId: '123456789012',
        apiId: 'abc123',
        authorizer: { jwt: { claims: { sub: 'u1' }, scopes: ['read'] } },
        domainName: 'abc123.execute-api.eu-west-1.amazonaws.com',
        domainPrefix: 'abc123',
        http: {
          method: 'POST',
          path: '/prod/items/42',
          protocol: 'HTTP/1.1',
          sourceIp: '203.0.113.9',
          userAgent: 'curl/8.0',
        },
        requestId: 'c6af9ac6-7b61-11e6-9a41-93e8deadbeef',
        routeKey: 'POST /items/{id}',
        stage: 'prod',
        time: '09/Apr/2015:12:34:56 +0000',
        timeEpoch: EPOCH,
      },
    });
  });

  it('should omit empty cookies, query, path parameters, stage variables, body and authorizer', () => {
    const event = buildEventV2(
      request({ method: 'GET', headers: [['accept', '*/*']], rawQueryString: '', body: Buffer.alloc(0) }),
      { routeKey: '$default', resource: '/items/42', pathParameters: null },
      { accountId: '1', apiId: 'a', stageVariables: {} },
    );
    for (const key of ['cookies', 'queryStringParameters', 'pathParameters', 'stageVariables', 'body']) {
      expect(event).not.toHaveProperty(key);
    }
    expect(event.requestContext).not.toHaveProperty('authorizer');
    expect(event.isBase64Encoded).toBe(false);
    expect(event.rawQueryString).toBe('');
    expect(event.routeKey).toBe('$default');
    expect(event.requestContext.http.userAgent).toBe('');
    expect(event.headers).toEqual({ accept: '*/*' });
  });

  it('should base64-encode bodies that are not text-like when no binary media types are set', () => {
    const form = request({ headers: [['content-type', 'application/x-www-form-urlencoded']], body: Buffer.from('a=1') });
    const ev = buildEventV2(form, match, options);
    expect(ev.isBase64Encoded).toBe(true);
    expect(ev.body).toBe(Buffer.from('a=1').toString('base64'));
    const none = buildEventV2(request({ headers: [], body: Buffer.from('x') }), match, options);
    expect(none.isBase64Encoded).toBe(true);
    const json = buildEventV2(request({ headers: [['content-type', 'application/vnd.api+json; charset=utf-8']] }), match, options);
    expect(json.isBase64Encoded).toBe(false);
    expect(json.body).toBe('{"hello":"world"}');
    // Configured binary media types take over from the heuristic.
    const configured = buildEventV2(form, match, { ...options, binaryMediaTypes: [] });
    expect(configured.isBase64Encoded).toBe(false);
    expect(configured.body).toBe('a=1');
  });

  it('should take lowerHeaders as they are when the transport provides them', () => {
    const lower: Array<[string, string]> = [
      ['host', 'abc123.execute-api.eu-west-1.amazonaws.com'],
      ['user-agent', 'curl/8.0'],
      ['accept', 'text/plain'],
      ['x-multi', 'one'],
      ['x-multi', 'two'],
      ['content-type', 'application/json'],
      ['cookie', 'c1=v1; c2=v2'],
      ['cookie', 'c3=v3'],
    ];
    const fromLower = buildEventV2(request({ headers: [['Ignored', 'x']], lowerHeaders: lower }), match, options);
    expect(fromLower).toStrictEqual(buildEventV2(request(), match, options));
  });

  it('should keep header names that are Object.prototype members as own values', () => {
    const ev = buildEventV2(
      request({
        headers: [
          ['__proto__', 'a'],
          ['__proto__', 'b'],
          ['constructor', 'c'],
          ['toString', 't'],
        ],
      }),
      match,
      options,
    );
    expect(Object.hasOwn(ev.headers, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(ev.headers)).toBe(Object.prototype);
    expect(JSON.stringify(ev.headers)).toBe('{"__proto__":"a,b","constructor":"c","tostring":"t"}');
  });

  it('should put the stage into http.path but not for $default', () => {
    expect(buildEventV2(request(), match, options).requestContext.http.path).toBe('/prod/items/42');
    const d = buildEventV2(request({ stage: '$default', rawPath: '/items/42' }), match, options);
    expect(d.requestContext.http.path).toBe('/items/42');
    expect(d.rawPath).toBe('/items/42');
  });
});

describe('helpers', () => {
  it('should match binary media types with wildcards and parameters', () => {
    expect(matchesMediaType('image/png', ['image/png'])).toBe(true);
    expect(matchesMediaType('IMAGE/PNG; q=1', ['image/png'])).toBe(true);
    expect(matchesMediaType('image/gif', ['image/*'])).toBe(true);
    expect(matchesMediaType('text/plain', ['image/*'])).toBe(false);
    expect(matchesMediaType('text/plain', ['*/*'])).toBe(true);
    expect(matchesMediaType(undefined, ['*/*'])).toBe(true);
    expect(matchesMediaType(undefined, ['image/*'])).toBe(false);
    expect(matchesMediaType('image/png', [])).toBe(false);
  });

  it('should classify text-like media types', () => {
    for (const t of ['text/html', 'application/json', 'application/ld+json', 'application/xml', 'image/svg+xml']) {
      expect(isTextMediaType(t)).toBe(true);
    }
    for (const t of ['application/octet-stream', 'image/png', 'multipart/form-data']) {
      expect(isTextMediaType(t)).toBe(false);
    }
    expect(isTextMediaType(undefined)).toBe(false);
  });

  it('should derive the domain prefix', () => {
    expect(domainPrefix('abc123.execute-api.eu-west-1.amazonaws.com')).toBe('abc123');
    expect(domainPrefix('localhost')).toBe('localhost');
    expect(domainPrefix('127.0.0.1')).toBe('127.0.0.1');
    expect(domainPrefix('[::1]')).toBe('[::1]');
  });

  it('should give stable 6-character resource ids', () => {
    const id = resourceIdFor('GET /items');
    expect(id).toMatch(/^[0-9a-z]{6}$/);
    expect(resourceIdFor('GET /items')).toBe(id);
    expect(resourceIdFor('GET /other')).not.toBe(id);
  });
});
