import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import {
  CUSTOMISABLE_GATEWAY_RESPONSE_TYPES,
  DEFAULT_GATEWAY_RESPONSES,
  GATEWAY_RESPONSE_TYPES,
  GatewayResponseConfigError,
  type GatewayResponseType,
  compileGatewayResponses,
  gatewayResponsesSchema,
} from '../../server/http/gateway-responses.ts';

const RID = 'c0ffee00-0000-4000-8000-000000000001';
const header = (headers: Array<[string, string]>, name: string) =>
  headers.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);

describe('built-in gateway responses', () => {
  const responses = compileGatewayResponses(undefined);

  it.each<[GatewayResponseType, number, string, string]>([
    ['MISSING_AUTHENTICATION_TOKEN', 403, '{"message":"Missing Authentication Token"}', 'MissingAuthenticationTokenException'],
    ['UNAUTHORIZED', 401, '{"message":"Unauthorized"}', 'UnauthorizedException'],
    ['ACCESS_DENIED', 403, '{"message":"User is not authorized to access this resource"}', 'AccessDeniedException'],
    ['AUTHORIZER_CONFIGURATION_ERROR', 500, '{"message": null}', 'AuthorizerConfigurationException'],
    ['THROTTLED', 429, '{"message":"Too Many Requests"}', 'TooManyRequestsException'],
    ['QUOTA_EXCEEDED', 429, '{"message":"Limit Exceeded"}', 'LimitExceededException'],
    ['INVALID_API_KEY', 403, '{"message":"Forbidden"}', 'ForbiddenException'],
    ['BAD_REQUEST_BODY', 400, '{"message": "Invalid request body"}', 'BadRequestException'],
    ['INTEGRATION_TIMEOUT', 504, '{"message": "Endpoint request timed out"}', 'InternalServerErrorException'],
    ['BAD_GATEWAY', 502, '{"message": "Internal server error"}', 'InternalServerErrorException'],
    ['REQUEST_TOO_LARGE', 413, '{"message": "Request Too Long"}', 'BadRequestException'],
    ['UNSUPPORTED_MEDIA_TYPE', 415, '{"message":"Unsupported Media Type"}', 'UnsupportedMediaTypeException'],
  ])('should render %s as %i %s', (type, status, body, errorType) => {
    const r = responses.render(type, { requestId: RID });
    expect(r.status).toBe(status);
    expect(r.body).toBe(body);
    expect(header(r.headers, 'x-amzn-ErrorType')).toEqual([errorType]);
    expect(header(r.headers, 'content-type')).toEqual(['application/json']);
  });

  it('should use the given message, and the default one for null or undefined', () => {
    expect(responses.render('BAD_REQUEST_PARAMETERS', { message: 'Missing required request parameters: [q1, h1]', requestId: RID }).body).toBe(
      '{"message": "Missing required request parameters: [q1, h1]"}',
    );
    expect(responses.render('THROTTLED', { message: null, requestId: RID }).body).toBe('{"message":"Too Many Requests"}');
    expect(responses.render('ACCESS_DENIED', { message: 'User is not authorized to access this resource with an explicit deny', requestId: RID }).body).toBe(
      '{"message":"User is not authorized to access this resource with an explicit deny"}',
    );
  });

  it('should JSON-escape the message in the default body', () => {
    const r = responses.render('DEFAULT_4XX', { message: 'bad "quote" \\ and\nnewline', requestId: RID });
    expect(JSON.parse(r.body)).toEqual({ message: 'bad "quote" \\ and\nnewline' });
  });

  it('should take a status override for this particular error', () => {
    const r = responses.render('INTEGRATION_FAILURE', { requestId: RID, status: 502 });
    expect(r.status).toBe(502);
    expect(responses.render('DEFAULT_4XX', { requestId: RID, status: 404, message: 'Not Found' }).status).toBe(404);
  });

  it('should add extra headers, replacing same-named built-in ones', () => {
    const r = responses.render('THROTTLED', {
      requestId: RID,
      extraHeaders: [
        ['Retry-After', '2'],
        ['Content-Type', 'application/problem+json'],
      ],
    });
    expect(header(r.headers, 'retry-after')).toEqual(['2']);
    expect(header(r.headers, 'content-type')).toEqual(['application/problem+json']);
  });

  it('should not add x-amzn-RequestId (the pipeline adds it to every response)', () => {
    expect(header(responses.render('THROTTLED', { requestId: RID }).headers, 'x-amzn-RequestId')).toEqual([]);
  });

  it('should have a default for every type and list every AWS type as customisable but REQUEST_TOO_LARGE', () => {
    for (const t of GATEWAY_RESPONSE_TYPES) expect(DEFAULT_GATEWAY_RESPONSES[t].status).toBeGreaterThanOrEqual(400);
    expect(CUSTOMISABLE_GATEWAY_RESPONSE_TYPES).toHaveLength(20) // the 21 AWS types but REQUEST_TOO_LARGE;
    expect(CUSTOMISABLE_GATEWAY_RESPONSE_TYPES).not.toContain('REQUEST_TOO_LARGE');
    expect(CUSTOMISABLE_GATEWAY_RESPONSE_TYPES).not.toContain('BAD_GATEWAY');
  });
});

describe('customised gateway responses', () => {
  it('should prefer the type customisation, then DEFAULT_4XX/5XX by status class, then the built-in', () => {
    const responses = compileGatewayResponses({
      UNAUTHORIZED: { statusCode: 401, body: '{"error":"login required","id":"$context.requestId"}' },
      DEFAULT_4XX: { headers: { 'Access-Control-Allow-Origin': '*' }, body: '{"oops":$context.error.messageString}' },
      DEFAULT_5XX: { statusCode: 503, body: '{"down":true}' },
    });
    const unauthorized = responses.render('UNAUTHORIZED', { requestId: RID });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.body).toBe(`{"error":"login required","id":"${RID}"}`);
    // headers of DEFAULT_4XX still apply to a customised 4xx type
    expect(header(unauthorized.headers, 'access-control-allow-origin')).toEqual(['*']);

    const throttled = responses.render('THROTTLED', { requestId: RID });
    expect(throttled.status).toBe(429);
    expect(throttled.body).toBe('{"oops":"Too Many Requests"}');
    expect(header(throttled.headers, 'x-amzn-ErrorType')).toEqual(['TooManyRequestsException']);

    // a status set on DEFAULT_5XX changes every 5xx response that does not set its own
    const timeout = responses.render('INTEGRATION_TIMEOUT', { requestId: RID });
    expect(timeout).toMatchObject({ status: 503, body: '{"down":true}' });
    expect(header(timeout.headers, 'access-control-allow-origin')).toEqual([]);
  });

  it('should choose the fallback class from a status override', () => {
    const responses = compileGatewayResponses({ DEFAULT_5XX: { body: 'five' }, DEFAULT_4XX: { body: 'four' } });
    expect(responses.render('DEFAULT_4XX', { requestId: RID, status: 404 }).body).toBe('four');
    expect(responses.render('INTEGRATION_FAILURE', { requestId: RID, status: 502 }).body).toBe('five');
    expect(responses.render('API_CONFIGURATION_ERROR', { requestId: RID }).body).toBe('five');
  });

  it('should customise BAD_GATEWAY through INTEGRATION_FAILURE', () => {
    const responses = compileGatewayResponses({
      INTEGRATION_FAILURE: { body: '{"type":"$context.error.responseType","m":$context.error.messageString}' },
    });
    const r = responses.render('BAD_GATEWAY', { requestId: RID });
    expect(r.status).toBe(502);
    expect(r.body).toBe('{"type":"INTEGRATION_FAILURE","m":"Internal server error"}');
    expect(responses.isCustomised('BAD_GATEWAY')).toBe(true);
    expect(responses.isCustomised('THROTTLED')).toBe(false);
  });

  it('should never customise REQUEST_TOO_LARGE, not even through DEFAULT_4XX', () => {
    const responses = compileGatewayResponses({ DEFAULT_4XX: { statusCode: 400, body: 'x', headers: { 'X-A': '1' } } });
    const r = responses.render('REQUEST_TOO_LARGE', { requestId: RID });
    expect(r).toMatchObject({ status: 413, body: '{"message": "Request Too Long"}' });
    expect(header(r.headers, 'x-a')).toEqual([]);
    expect(() => compileGatewayResponses({ REQUEST_TOO_LARGE: { statusCode: 400 } })).toThrow(/cannot be customised/);
  });

  it('should substitute $context variables (nested or flat), stage variables and the error fields', () => {
    const responses = compileGatewayResponses({
      ACCESS_DENIED: {
        headers: { 'X-Stage': '${context.stage}', 'X-Ip': '$context.identity.sourceIp' },
        body: '{"m":"$context.error.message","s":$context.error.messageString,"v":"$context.error.validationErrorString","ip":"$context.identity.sourceIp","sv":"$stageVariables.env","missing":"$context.nothing.here","quiet":"$!context.stage","lit":"$input.body"}.',
      },
      UNAUTHORIZED: { body: '{"message":$context.error.messageString}' },
    });
    const r = responses.render('ACCESS_DENIED', {
      requestId: RID,
      message: 'denied',
      context: { stage: 'prod', identity: { sourceIp: '10.0.0.7' }, 'error.validationErrorString': '[x]' },
      stageVariables: { env: 'blue' },
    });
    expect(r.body).toBe(
      '{"m":"denied","s":"denied","v":"[x]","ip":"10.0.0.7","sv":"blue","missing":"","quiet":"prod","lit":"$input.body"}.',
    );
    expect(header(r.headers, 'x-stage')).toEqual(['prod']);
    expect(header(r.headers, 'x-ip')).toEqual(['10.0.0.7']);
    // null message: messageString is the JSON null
    expect(responses.render('UNAUTHORIZED', { requestId: RID, message: null }).body).toBe('{"message":"Unauthorized"}');
    const authz = compileGatewayResponses({ AUTHORIZER_CONFIGURATION_ERROR: { body: '{"message":$context.error.messageString}' } });
    expect(authz.render('AUTHORIZER_CONFIGURATION_ERROR', { requestId: RID }).body).toBe('{"message":null}');
  });

  it('should not let a context value split a header', () => {
    const responses = compileGatewayResponses({ THROTTLED: { headers: { 'X-Who': '$context.who' } } });
    const r = responses.render('THROTTLED', { requestId: RID, context: { who: 'a\r\nSet-Cookie: x=1' } });
    expect(header(r.headers, 'x-who')).toEqual(['aSet-Cookie: x=1']);
  });

  it('should let customised headers replace extra and built-in ones', () => {
    const responses = compileGatewayResponses({ THROTTLED: { headers: { 'Content-Type': 'text/plain', 'Retry-After': '9' } } });
    const r = responses.render('THROTTLED', { requestId: RID, extraHeaders: [['Retry-After', '1']] });
    expect(header(r.headers, 'content-type')).toEqual(['text/plain']);
    expect(header(r.headers, 'retry-after')).toEqual(['9']);
  });

  it('should reject unknown types and invalid entries at compile time', () => {
    expect(() => compileGatewayResponses({ NOPE: {} })).toThrow(GatewayResponseConfigError);
    expect(() => compileGatewayResponses({ BAD_GATEWAY: {} })).toThrow(/unknown response type/);
    expect(() => compileGatewayResponses({ THROTTLED: { statusCode: 99 } })).toThrow(/statusCode/);
    expect(() => compileGatewayResponses({ THROTTLED: { headers: { 'Bad Header': 'x' } } })).toThrow(/header name/);
  });
});

describe('gatewayResponsesSchema', () => {
  const validate = new Ajv({ strict: true, allErrors: true }).compile(gatewayResponsesSchema);

  it('should accept customisations of the known types', () => {
    expect(
      validate({
        DEFAULT_4XX: { headers: { 'Access-Control-Allow-Origin': '*' } },
        UNAUTHORIZED: { statusCode: 401, body: '{"message":$context.error.messageString}' },
      }),
    ).toBe(true);
  });

  it.each([
    [{ REQUEST_TOO_LARGE: {} }],
    [{ BAD_GATEWAY: {} }],
    [{ UNKNOWN: {} }],
    [{ THROTTLED: { statusCode: 600 } }],
    [{ THROTTLED: { status: 429 } }],
    [{ THROTTLED: { headers: { 'a b': 'x' } } }],
    [{ THROTTLED: { headers: { a: 1 } } }],
  ])('should reject %j', (value) => {
    expect(validate(value)).toBe(false);
  });
});
