import { describe, expect, it } from 'vitest';
import {
  buildMethodArn,
  evaluatePolicy,
  MAX_AUTHORIZER_RESPONSE_BYTES,
  validateAuthorizerResponse,
  validateSimpleResponse,
  wildcardMatch,
} from '../../server/auth/policy.ts';

const ACCT = '123456789012';
const API = 'abcdef1234';
const WS_CONNECT = `arn:aws:execute-api:us-east-1:${ACCT}:${API}/prod/$connect`;
const GET_PET = `arn:aws:execute-api:us-east-1:${ACCT}:${API}/prod/GET/pets/42`;

function policy(...statements: unknown[]): { Version: string; Statement: unknown[] } {
  return { Version: '2012-10-17', Statement: statements };
}

function allow(resource: unknown, action: unknown = 'execute-api:Invoke'): Record<string, unknown> {
  return { Effect: 'Allow', Action: action, Resource: resource };
}

function deny(resource: unknown, action: unknown = 'execute-api:Invoke'): Record<string, unknown> {
  return { Effect: 'Deny', Action: action, Resource: resource };
}

describe('evaluatePolicy', () => {
  it('allows when an Allow statement names the exact ARN', () => {
    expect(evaluatePolicy(policy(allow(WS_CONNECT)), WS_CONNECT)).toBe('allow');
  });

  it('accepts a single Statement object instead of an array', () => {
    expect(evaluatePolicy({ Version: '2012-10-17', Statement: allow(WS_CONNECT) }, WS_CONNECT)).toBe('allow');
  });

  it('returns deny for an explicit Deny', () => {
    expect(evaluatePolicy(policy(deny(WS_CONNECT)), WS_CONNECT)).toBe('deny');
  });

  it('returns implicit-deny when no statement matches', () => {
    expect(evaluatePolicy(policy(allow(GET_PET)), WS_CONNECT)).toBe('implicit-deny');
    expect(evaluatePolicy(policy(), WS_CONNECT)).toBe('implicit-deny');
  });

  it('lets an explicit Deny win over a matching Allow, in either order', () => {
    const wide = allow(`arn:aws:execute-api:us-east-1:${ACCT}:${API}/*`);
    expect(evaluatePolicy(policy(wide, deny(WS_CONNECT)), WS_CONNECT)).toBe('deny');
    expect(evaluatePolicy(policy(deny(WS_CONNECT), wide), WS_CONNECT)).toBe('deny');
  });

  it('ignores a Deny that does not match the ARN', () => {
    expect(evaluatePolicy(policy(allow('*'), deny(GET_PET)), WS_CONNECT)).toBe('allow');
  });

  it('matches * across segments, including / and :', () => {
    expect(evaluatePolicy(policy(allow('arn:aws:execute-api:*:*:*')), GET_PET)).toBe('allow');
    expect(evaluatePolicy(policy(allow(`arn:aws:execute-api:us-east-1:*:${API}/prod/*`)), GET_PET)).toBe('allow');
    expect(evaluatePolicy(policy(allow(`arn:aws:execute-api:us-east-1:${ACCT}:${API}/*/GET/*`)), GET_PET)).toBe('allow');
    expect(evaluatePolicy(policy(allow('*')), WS_CONNECT)).toBe('allow');
  });

  it('does not let * escape a fixed suffix or prefix', () => {
    expect(evaluatePolicy(policy(allow(`arn:aws:execute-api:us-east-1:*:${API}/test/*`)), GET_PET)).toBe('implicit-deny');
    expect(evaluatePolicy(policy(allow(`arn:aws:execute-api:us-east-1:${ACCT}:${API}/*/POST/*`)), GET_PET)).toBe(
      'implicit-deny',
    );
  });

  it('matches ? as exactly one character', () => {
    const arn = `arn:aws:execute-api:us-east-1:${ACCT}:${API}/prod/GET/pets/4?`;
    expect(evaluatePolicy(policy(allow(arn)), GET_PET)).toBe('allow');
    expect(evaluatePolicy(policy(allow(arn)), `${GET_PET}2`)).toBe('implicit-deny');
    expect(evaluatePolicy(policy(allow(arn)), GET_PET.slice(0, -1))).toBe('implicit-deny');
  });

  it('matches resources case-sensitively', () => {
    expect(evaluatePolicy(policy(allow(GET_PET.replace('pets', 'Pets'))), GET_PET)).toBe('implicit-deny');
    expect(evaluatePolicy(policy(allow(WS_CONNECT.replace('prod', 'PROD'))), WS_CONNECT)).toBe('implicit-deny');
  });

  it('accepts Action and Resource arrays', () => {
    const st = allow([GET_PET, WS_CONNECT], ['s3:GetObject', 'execute-api:Invoke']);
    expect(evaluatePolicy(policy(st), WS_CONNECT)).toBe('allow');
    expect(evaluatePolicy(policy(allow([GET_PET], ['s3:GetObject'])), GET_PET)).toBe('implicit-deny');
  });

  it('accepts execute-api:* and * actions, and action names in any case', () => {
    expect(evaluatePolicy(policy(allow(WS_CONNECT, 'execute-api:*')), WS_CONNECT)).toBe('allow');
    expect(evaluatePolicy(policy(allow(WS_CONNECT, '*')), WS_CONNECT)).toBe('allow');
    expect(evaluatePolicy(policy(allow(WS_CONNECT, 'Execute-API:invoke')), WS_CONNECT)).toBe('allow');
    expect(evaluatePolicy(policy(allow(WS_CONNECT, 'execute-api:ManageConnections')), WS_CONNECT)).toBe(
      'implicit-deny',
    );
  });

  it('accepts Effect in any case', () => {
    expect(evaluatePolicy(policy({ ...allow(WS_CONNECT), Effect: 'allow' }), WS_CONNECT)).toBe('allow');
    expect(evaluatePolicy(policy(allow('*'), { ...deny(WS_CONNECT), Effect: 'DENY' }), WS_CONNECT)).toBe('deny');
  });

  it('supports NotResource and NotAction', () => {
    const st = { Effect: 'Allow', Action: 'execute-api:Invoke', NotResource: GET_PET };
    expect(evaluatePolicy(policy(st), WS_CONNECT)).toBe('allow');
    expect(evaluatePolicy(policy(st), GET_PET)).toBe('implicit-deny');
    const notAction = { Effect: 'Deny', NotAction: 's3:*', Resource: '*' };
    expect(evaluatePolicy(policy(allow('*'), notAction), WS_CONNECT)).toBe('deny');
  });

  it('fails closed on Condition: a conditional Allow never grants, a conditional Deny always applies', () => {
    const cond = { IpAddress: { 'aws:SourceIp': '10.0.0.0/8' } };
    expect(evaluatePolicy(policy({ ...allow('*'), Condition: cond }), WS_CONNECT)).toBe('implicit-deny');
    expect(evaluatePolicy(policy(allow('*'), { ...deny('*'), Condition: cond }), WS_CONNECT)).toBe('deny');
  });

  it('reproduces the cached-policy pitfall: a policy for one method is an implicit deny for another', () => {
    // An authorizer that returned a policy for the method it was first called for; with caching on,
    // AWS reuses that policy for every method of the API until the TTL ends (4.5).
    const cached = validateAuthorizerResponse({ principalId: 'u1', policyDocument: policy(allow(GET_PET)) });
    expect(cached.ok).toBe(true);
    if (!cached.ok) return;
    expect(evaluatePolicy(cached.policyDocument, GET_PET)).toBe('allow');
    const otherMethod = `arn:aws:execute-api:us-east-1:${ACCT}:${API}/prod/DELETE/pets/42`;
    expect(evaluatePolicy(cached.policyDocument, otherMethod)).toBe('implicit-deny');
    // The documented fix: return a wildcard resource.
    const wildcard = policy(allow(`arn:aws:execute-api:us-east-1:${ACCT}:${API}/prod/*`));
    expect(evaluatePolicy(wildcard, otherMethod)).toBe('allow');
  });

  it('never throws on garbage and treats it as implicit-deny', () => {
    for (const doc of [null, undefined, 42, 'Allow', [], { Statement: 'x' }, { Statement: [null, 1, {}] }]) {
      expect(evaluatePolicy(doc, WS_CONNECT)).toBe('implicit-deny');
    }
    expect(evaluatePolicy(policy({ Effect: 'Allow', Action: 'execute-api:Invoke' }), WS_CONNECT)).toBe('implicit-deny');
    expect(evaluatePolicy(policy({ Effect: 'Maybe', Action: '*', Resource: '*' }), WS_CONNECT)).toBe('implicit-deny');
  });
});

describe('wildcardMatch', () => {
  it('handles runs of stars, empty matches and backtracking', () => {
    expect(wildcardMatch('', '')).toBe(true);
    expect(wildcardMatch('*', '')).toBe(true);
    expect(wildcardMatch('?', '')).toBe(false);
    expect(wildcardMatch('a**b', 'ab')).toBe(true);
    expect(wildcardMatch('*a*b', 'xaybab')).toBe(true);
    expect(wildcardMatch('*a*b', 'xaybac')).toBe(false);
    expect(wildcardMatch('a?c*', 'abcdef')).toBe(true);
  });

  it('stays fast on adversarial patterns', () => {
    const text = 'a'.repeat(5000);
    const started = performance.now();
    expect(wildcardMatch('*a*a*a*a*a*a*a*a*b', text)).toBe(false);
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe('validateAuthorizerResponse', () => {
  const good = {
    principalId: 'user-123',
    policyDocument: policy(allow(WS_CONNECT)),
    context: { stringKey: 'v', numberKey: 1, booleanKey: true },
    usageIdentifierKey: 'api-key-value',
  };

  it('accepts the documented shape and normalises the policy', () => {
    const res = validateAuthorizerResponse(good);
    expect(res).toEqual({
      ok: true,
      principalId: 'user-123',
      policyDocument: {
        Version: '2012-10-17',
        Statement: [{ Effect: 'Allow', Action: ['execute-api:Invoke'], Resource: [WS_CONNECT] }],
      },
      context: { stringKey: 'v', numberKey: 1, booleanKey: true },
      usageIdentifierKey: 'api-key-value',
    });
  });

  it('accepts a single Statement object, no context and null context', () => {
    const single = validateAuthorizerResponse({ principalId: 'u', policyDocument: { Statement: deny('*') } });
    expect(single.ok && single.policyDocument.Statement).toEqual([
      { Effect: 'Deny', Action: ['execute-api:Invoke'], Resource: ['*'] },
    ]);
    expect(single.ok && single.context).toEqual({});
    expect(validateAuthorizerResponse({ ...good, context: null }).ok).toBe(true);
    expect('usageIdentifierKey' in validateAuthorizerResponse({ ...good, usageIdentifierKey: undefined })).toBe(false);
  });

  it.each([
    ['not an object', 'Allow'],
    ['an array', [good]],
    ['missing principalId', { policyDocument: good.policyDocument }],
    ['numeric principalId', { ...good, principalId: 7 }],
    ['missing policyDocument', { principalId: 'u' }],
    ['policyDocument not an object', { principalId: 'u', policyDocument: 'Allow' }],
    ['missing Statement', { principalId: 'u', policyDocument: { Version: '2012-10-17' } }],
    ['Statement a string', { principalId: 'u', policyDocument: { Statement: 'Allow' } }],
    ['statement without Effect', { principalId: 'u', policyDocument: policy({ Action: '*', Resource: '*' }) }],
    ['unknown Effect', { principalId: 'u', policyDocument: policy({ Effect: 'Permit', Action: '*', Resource: '*' }) }],
    ['statement without Resource', { principalId: 'u', policyDocument: policy({ Effect: 'Allow', Action: '*' }) }],
    ['statement without Action', { principalId: 'u', policyDocument: policy({ Effect: 'Allow', Resource: '*' }) }],
    ['Resource and NotResource', { principalId: 'u', policyDocument: policy({ ...allow('*'), NotResource: 'x' }) }],
    ['Resource a number', { principalId: 'u', policyDocument: policy(allow(5)) }],
    ['Resource an empty array', { principalId: 'u', policyDocument: policy(allow([])) }],
    ['Action array with a non-string', { principalId: 'u', policyDocument: policy(allow('*', ['execute-api:Invoke', 1])) }],
    ['statement not an object', { principalId: 'u', policyDocument: policy('Allow *') }],
    ['context an array', { ...good, context: ['a'] }],
    ['context a string', { ...good, context: 'a=b' }],
    ['usageIdentifierKey a number', { ...good, usageIdentifierKey: 5 }],
  ])('rejects %s as malformed', (_name, value) => {
    const res = validateAuthorizerResponse(value);
    expect(res.ok).toBe(false);
    expect(!res.ok && res.reason.length).toBeGreaterThan(0);
  });

  it.each([
    ['an object', { nested: { a: 1 } }],
    ['an array', { list: [1, 2] }],
    ['null', { nothing: null }],
    ['NaN', { bad: Number.NaN }],
    ['Infinity', { bad: Number.POSITIVE_INFINITY }],
  ])('rejects a context value that is %s', (_name, context) => {
    const res = validateAuthorizerResponse({ ...good, context });
    expect(res.ok).toBe(false);
    expect(!res.ok && res.reason).toMatch(/^context\./);
  });

  it('accepts string, number and boolean context values, including empty string, 0 and false', () => {
    const res = validateAuthorizerResponse({ ...good, context: { s: '', n: 0, f: false, neg: -1.5 } });
    expect(res.ok && res.context).toEqual({ s: '', n: 0, f: false, neg: -1.5 });
  });

  it('enforces the 8 KB limit on the JSON size of the response', () => {
    const base = { principalId: 'u', policyDocument: policy(allow('*')), context: { pad: '' } };
    const baseSize = Buffer.byteLength(JSON.stringify(base));
    const atLimit = { ...base, context: { pad: 'x'.repeat(MAX_AUTHORIZER_RESPONSE_BYTES - baseSize) } };
    expect(Buffer.byteLength(JSON.stringify(atLimit))).toBe(MAX_AUTHORIZER_RESPONSE_BYTES);
    expect(validateAuthorizerResponse(atLimit).ok).toBe(true);
    const over = { ...base, context: { pad: 'x'.repeat(MAX_AUTHORIZER_RESPONSE_BYTES - baseSize + 1) } };
    const res = validateAuthorizerResponse(over);
    expect(res.ok).toBe(false);
    expect(!res.ok && res.reason).toMatch(/limit/);
  });

  it('counts the limit in UTF-8 bytes, not characters', () => {
    const res = validateAuthorizerResponse({ ...good, context: { pad: '€'.repeat(3000) } }); // 9000 bytes
    expect(res.ok).toBe(false);
  });

  it('rejects responses that cannot be serialised to JSON', () => {
    const circular: Record<string, unknown> = { principalId: 'u', policyDocument: policy(allow('*')) };
    circular.self = circular;
    expect(validateAuthorizerResponse(circular).ok).toBe(false);
    expect(validateAuthorizerResponse({ ...good, context: { big: 1n } }).ok).toBe(false);
  });
});

describe('validateSimpleResponse', () => {
  it('accepts isAuthorized true/false with or without context', () => {
    expect(validateSimpleResponse({ isAuthorized: true })).toEqual({ ok: true, isAuthorized: true, context: {} });
    expect(validateSimpleResponse({ isAuthorized: false, context: null })).toEqual({
      ok: true,
      isAuthorized: false,
      context: {},
    });
  });

  it('allows arrays and maps as context values', () => {
    const context = { roles: ['a', 'b'], profile: { tier: 'gold' }, n: 1 };
    expect(validateSimpleResponse({ isAuthorized: true, context })).toEqual({ ok: true, isAuthorized: true, context });
  });

  it.each([
    ['not an object', true],
    ['missing isAuthorized', { context: {} }],
    ['isAuthorized a string', { isAuthorized: 'true' }],
    ['isAuthorized 1', { isAuthorized: 1 }],
    ['context an array', { isAuthorized: true, context: [] }],
    ['over 8 KB', { isAuthorized: true, context: { pad: 'x'.repeat(MAX_AUTHORIZER_RESPONSE_BYTES) } }],
  ])('rejects %s', (_name, value) => {
    expect(validateSimpleResponse(value).ok).toBe(false);
  });
});

describe('buildMethodArn', () => {
  const base = { region: 'us-east-1', accountId: ACCT, apiId: API, stage: 'prod' };

  it('builds the WebSocket route form', () => {
    expect(buildMethodArn({ ...base, routeKey: '$connect' })).toBe(WS_CONNECT);
    expect(buildMethodArn({ ...base, routeKey: 'sendmessage' })).toBe(
      `arn:aws:execute-api:us-east-1:${ACCT}:${API}/prod/sendmessage`,
    );
  });

  it('builds the REST form with the verb upper-cased and the leading slash dropped', () => {
    expect(buildMethodArn({ ...base, method: 'get', resourcePath: '/pets/42' })).toBe(GET_PET);
    expect(buildMethodArn({ ...base, method: 'GET', resourcePath: 'pets/42' })).toBe(GET_PET);
  });

  it('ends the root resource in a slash', () => {
    expect(buildMethodArn({ ...base, method: 'GET', resourcePath: '/' })).toBe(
      `arn:aws:execute-api:us-east-1:${ACCT}:${API}/prod/GET/`,
    );
  });

  it('honours another partition', () => {
    expect(buildMethodArn({ ...base, partition: 'aws-cn', routeKey: '$connect' })).toMatch(/^arn:aws-cn:execute-api:/);
  });

  it('round-trips with evaluatePolicy wildcards', () => {
    const arn = buildMethodArn({ ...base, method: 'POST', resourcePath: '/orders' });
    expect(evaluatePolicy(policy(allow(`arn:aws:execute-api:us-east-1:${ACCT}:${API}/prod/POST/*`)), arn)).toBe('allow');
  });

  it('throws without a routeKey or a method and path', () => {
    expect(() => buildMethodArn(base)).toThrow(TypeError);
    expect(() => buildMethodArn({ ...base, method: 'GET' })).toThrow(TypeError);
  });
});

describe('validateAuthorizerResponse shares identical policies', () => {
  const response = (resource: string, user: string) => ({
    principalId: user,
    policyDocument: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'execute-api:Invoke', Resource: resource }] },
    context: { user },
  });

  it('gives callers with the same policy one frozen document, and keeps different ones apart', () => {
    const arn = 'arn:aws:execute-api:us-east-1:123456789012:abc/prod/*';
    const a = validateAuthorizerResponse(response(arn, 'alice'));
    const b = validateAuthorizerResponse(response(`${arn}`.slice(0), 'bob'));
    const c = validateAuthorizerResponse(response(`${arn.slice(0, -1)}GET/x`, 'carol'));
    if (!a.ok || !b.ok || !c.ok) throw new Error('expected valid responses');
    expect(b.policyDocument).toBe(a.policyDocument);
    expect(c.policyDocument).not.toBe(a.policyDocument);
    expect(Object.isFrozen(a.policyDocument)).toBe(true);
    expect(Object.isFrozen(a.policyDocument.Statement[0])).toBe(true);
    // Per-caller parts stay per caller.
    expect([a.principalId, b.principalId, a.context, b.context]).toEqual(['alice', 'bob', { user: 'alice' }, { user: 'bob' }]);
    expect(evaluatePolicy(b.policyDocument, 'arn:aws:execute-api:us-east-1:123456789012:abc/prod/$connect')).toBe('allow');
  });
});
