import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { clearRecorded, recorded, type StartedGateway, startGateway } from '../helpers/gateway.ts';
import { OIDC_TEST_AUDIENCE, type OidcTestProvider, startOidcProvider } from '../helpers/oidc.ts';
import { waitFor } from '../helpers/wait.ts';
import { connect, rejectedUpgrade } from '../helpers/ws-client.ts';

const calls = () => {
  const g = globalThis as { __authCalls?: Record<string, number> };
  g.__authCalls ??= {};
  return g.__authCalls;
};

const api = (authorizer: string, extraRoutes = '') => `
name: authtest
stages:
  test: {}
limits:
  authorizerTimeoutMillis: 500
authorizers:
${authorizer}
websocket:
  routeSelectionExpression: $request.body.action
  routes:
    $connect: { integration: { type: LAMBDA, handler: handlers/disconnect.handler }, authorizer: auth }
    $disconnect: { integration: { type: LAMBDA, handler: handlers/disconnect.handler } }
    $default: { integration: { type: LAMBDA, handler: handlers/echo.handler }, routeResponse: true }
${extraRoutes}
`;

describe('REQUEST authorizer on $connect', () => {
  let g: StartedGateway;
  beforeAll(async () => {
    g = await startGateway(api('  auth: { type: REQUEST, handler: handlers/auth.handler, identitySource: [route.request.querystring.token], resultTtlInSeconds: 300 }'));
  });
  afterAll(() => g?.stop());
  beforeEach(() => {
    clearRecorded();
    for (const k of Object.keys(calls())) delete calls()[k];
  });

  it('answers 401 without invoking the authorizer when the identity source is missing or empty', async () => {
    for (const q of ['', '?token=', '?other=1']) {
      const r = await rejectedUpgrade(g.wsUrl('test', q));
      expect(r.status).toBe(401);
      expect(JSON.parse(r.body)).toEqual({ message: 'Unauthorized' });
    }
    expect(calls()).toEqual({});
  });

  it('passes the REQUEST event and puts principalId and context on CONNECT, MESSAGE and DISCONNECT', async () => {
    const c = await connect(g.wsUrl('test', '?token=allow'));
    const authEvent = (globalThis as { __lastAuthEvent?: Record<string, unknown> }).__lastAuthEvent!;
    expect(authEvent).toMatchObject({ type: 'REQUEST', queryStringParameters: { token: 'allow' }, identitySource: ['allow'] });
    expect(authEvent.methodArn).toMatch(/^arn:aws:execute-api:us-east-1:123456789012:[a-z0-9]{10}\/test\/\$connect$/);
    expect((authEvent.requestContext as Record<string, unknown>).eventType).toBe('CONNECT');
    expect(authEvent).not.toHaveProperty('pathParameters');
    c.send('hi');
    await c.next();
    await c.close();
    await waitFor(() => recorded().some((e) => e.requestContext.eventType === 'DISCONNECT'));
    for (const type of ['CONNECT', 'MESSAGE', 'DISCONNECT']) {
      const ev = recorded().find((e) => e.requestContext.eventType === type)!;
      expect(ev.requestContext.authorizer).toMatchObject({ principalId: 'user-allow', user: 'allow', n: 1, b: true });
      expect(ev.requestContext.authorizer).toHaveProperty('integrationLatency');
    }
  });

  it.each([
    ['deny', 403, { message: 'User is not authorized to access this resource with an explicit deny' }],
    ['other', 403, { message: 'User is not authorized to access this resource' }],
    ['unauth', 401, { message: 'Unauthorized' }],
    ['throw', 500, { message: null }],
    ['malformed', 500, { message: null }],
    ['badcontext', 500, { message: null }],
  ])('token %s → %i', async (token, status, body) => {
    const r = await rejectedUpgrade(g.wsUrl('test', `?token=${token}`));
    expect(r.status).toBe(status);
    expect(JSON.parse(r.body)).toEqual(body);
    if (status === 500) expect(r.headers['x-amzn-errortype']).toBe('AuthorizerConfigurationException');
  });

  it('accepts a wildcard resource', async () => {
    const c = await connect(g.wsUrl('test', '?token=wildcard'));
    await c.close();
  });

  it('fails a hanging authorizer with 500 after its timeout, without delaying other connections', async () => {
    const hanging = rejectedUpgrade(g.wsUrl('test', '?token=hang'));
    const started = Date.now();
    const c = await connect(g.wsUrl('test', '?token=allow2'));
    expect(Date.now() - started).toBeLessThan(400);
    await c.close();
    expect((await hanging).status).toBe(500);
  });

  it('caches results per identity value and calls the authorizer once for 200 concurrent connects', async () => {
    const clients = await Promise.all(Array.from({ length: 200 }, () => connect(g.wsUrl('test', '?token=slow'))));
    expect(calls().slow).toBe(1);
    // Still cached afterwards.
    const again = await connect(g.wsUrl('test', '?token=slow'));
    expect(calls().slow).toBe(1);
    await Promise.all([...clients, again].map((c) => c.close()));
  });
});

describe('authorizer variants', () => {
  it('TTL 0 calls the authorizer for every connect', async () => {
    const g = await startGateway(api('  auth: { type: REQUEST, handler: handlers/auth.handler, identitySource: [route.request.querystring.token], resultTtlInSeconds: 0 }'));
    try {
      for (const k of Object.keys(calls())) delete calls()[k];
      for (let i = 0; i < 3; i++) await (await connect(g.wsUrl('test', '?token=allow'))).close();
      expect(calls().allow).toBe(3);
    } finally {
      await g.stop();
    }
  });

  it('takes a token from Sec-WebSocket-Protocol and echoes the first subprotocol (browsers)', async () => {
    const yaml = api('  auth: { type: REQUEST, handler: handlers/auth.handler, identitySource: [route.request.header.Sec-WebSocket-Protocol] }').replace(
      '$connect: { integration: { type: LAMBDA, handler: handlers/disconnect.handler }, authorizer: auth }',
      '$connect: { authorizer: auth }',
    );
    const g = await startGateway(yaml);
    try {
      const c = await connect(g.wsUrl('test'), { protocols: ['gatehouse.bearer', 'allow'] });
      expect(c.protocol).toBe('gatehouse.bearer');
      await c.close();
      expect((await rejectedUpgrade(g.wsUrl('test'), { protocols: ['gatehouse.bearer', 'deny'] })).status).toBe(403);
      expect((await rejectedUpgrade(g.wsUrl('test'))).status).toBe(401);
    } finally {
      await g.stop();
    }
  });

  it('rejects authorizers on message routes and unknown authorizer names at load time', async () => {
    await expect(
      startGateway(api('  auth: { type: REQUEST, handler: handlers/auth.handler, identitySource: [route.request.querystring.token] }', '    x: { integration: { type: MOCK }, authorizer: auth }')),
    ).rejects.toThrow(/authorizers guard \$connect only/);
    await expect(startGateway(api('  other: { type: REQUEST, handler: handlers/auth.handler, identitySource: [route.request.querystring.token] }'))).rejects.toThrow(
      /unknown authorizer "auth"/,
    );
    await expect(startGateway(api('  auth: { type: REQUEST, handler: handlers/auth.handler, identitySource: [route.request.body.x] }'))).rejects.toThrow(
      /unsupported identity source/,
    );
  });
});

describe('JWT authorizer on $connect against a real OpenID Connect provider', () => {
  let oidc: OidcTestProvider;
  let g: StartedGateway;
  beforeAll(async () => {
    oidc = await startOidcProvider();
    const jwt = (name: string, source: string) =>
      `  ${name}: { type: JWT, issuer: "${oidc.issuer}", audience: ["${OIDC_TEST_AUDIENCE}"], jwksUri: "${oidc.jwksUri}"${source} }`;
    const yaml = `${api(`${jwt('auth', ', identitySource: [route.request.querystring.access_token]')}\n${jwt('restJwt', '')}`).replace(
      'authorizer: auth }',
      'authorizer: auth, authorizationScopes: [chat.send] }',
    )}
http:
  mode: HTTP
  routes:
    "GET /items": { integration: { type: MOCK, response: { statusCode: 200, body: '{"items":[]}' } }, authorizer: restJwt, authorizationScopes: [items.read] }
    "POST /items": { integration: { type: MOCK, response: { statusCode: 201, body: '{}' } }, authorizer: restJwt, authorizationScopes: [items.admin] }
`;
    g = await startGateway(yaml);
  });
  afterAll(async () => {
    await g?.stop();
    await oidc?.stop();
  });

  it('accepts a valid token and puts the claims in requestContext.authorizer.jwt', async () => {
    clearRecorded();
    const token = await oidc.getToken();
    const c = await connect(g.wsUrl('test', `?access_token=${token}`));
    const ev = recorded().find((e) => e.requestContext.routeKey === '$connect')!;
    const a = ev.requestContext.authorizer as { jwt: { claims: Record<string, string>; scopes: string[] } };
    expect(a.jwt.claims.aud).toContain(OIDC_TEST_AUDIENCE);
    expect(a.jwt.scopes).toContain('chat.send');
    await c.close();
  });

  it('guards REST routes: 401 without a token, 403 for a missing scope, 200 with the scope', async () => {
    const token = await oidc.getToken();
    const none = await fetch(g.httpUrl('/test/items'));
    expect(none.status).toBe(401);
    expect(await none.json()).toEqual({ message: 'Unauthorized' });
    const ok = await fetch(g.httpUrl('/test/items'), { headers: { Authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    const forbidden = await fetch(g.httpUrl('/test/items'), { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
    expect(forbidden.status).toBe(403);
    expect(forbidden.headers.get('www-authenticate')).toMatch(/insufficient_scope/);
  });

  it('answers 401 for a garbage or wrong-audience token and 403 for a missing scope', async () => {
    expect((await rejectedUpgrade(g.wsUrl('test', '?access_token=not.a.jwt'))).status).toBe(401);
    expect((await rejectedUpgrade(g.wsUrl('test'))).status).toBe(401);
    const noScope = await oidc.getToken({ scope: 'items.read' });
    expect((await rejectedUpgrade(g.wsUrl('test', `?access_token=${noScope}`))).status).toBe(403);
  });
});
