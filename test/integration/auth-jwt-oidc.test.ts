import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt, decodeProtectedHeader, SignJWT, UnsecuredJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { claimsForEvent, createJwtVerifier, JWT_ERRORS, type JwtVerifyResult } from '../../server/auth/jwt.ts';
import {
  type LocalTestIssuer,
  OIDC_TEST_AUDIENCE,
  OIDC_TEST_CLIENT_ID,
  type OidcTestProvider,
  startLocalIssuer,
  startOidcProvider,
} from '../helpers/oidc.ts';

function expectFailure(res: JwtVerifyResult, status: 401 | 403 | 500, error: string | RegExp): void {
  expect(res.ok).toBe(false);
  if (res.ok) return;
  expect(res.status).toBe(status);
  if (typeof error === 'string') expect(res.error).toBe(error);
  else expect(res.error).toMatch(error);
}

describe('JWT authorizer against a real OpenID Connect provider (oidc-provider)', () => {
  let op: OidcTestProvider;

  beforeAll(async () => {
    op = await startOidcProvider();
  });

  afterAll(async () => {
    await op?.stop();
  });

  const verifier = (over: Partial<Parameters<typeof createJwtVerifier>[0]> = {}) =>
    createJwtVerifier({ issuer: op.issuer, audience: [OIDC_TEST_AUDIENCE], jwksUri: op.jwksUri, ...over });

  it('issues RFC 9068 JWT access tokens for the requested audience', async () => {
    const token = await op.getToken();
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
    expect(decodeJwt(token)).toMatchObject({ iss: op.issuer, aud: OIDC_TEST_AUDIENCE, client_id: OIDC_TEST_CLIENT_ID });
  });

  it('accepts a valid token, with or without the Bearer prefix, and returns claims and scopes', async () => {
    const v = verifier();
    const token = await op.getToken({ scope: 'items.read chat.send' });
    for (const presented of [token, `Bearer ${token}`, `bearer   ${token}`]) {
      const res = await v.verify(presented, ['items.read']);
      expect(res.ok).toBe(true);
      if (!res.ok) return;
      expect(res.claims).toMatchObject({ iss: op.issuer, aud: OIDC_TEST_AUDIENCE, client_id: OIDC_TEST_CLIENT_ID });
      expect(res.scopes).toEqual(['items.read', 'chat.send']);
    }
    const noScopesRequired = await v.verify(token);
    expect(noScopesRequired.ok).toBe(true);
  });

  it('stringifies claims for requestContext.authorizer.jwt.claims', async () => {
    const res = await verifier().verify(await op.getToken());
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    const claims = claimsForEvent(res.claims);
    expect(claims.iss).toBe(op.issuer);
    expect(claims.exp).toMatch(/^\d{10}$/);
    expect(Object.values(claims).every((v) => typeof v === 'string')).toBe(true);
  });

  it('rejects a token for another audience with 401', async () => {
    const token = await op.getToken({ audience: 'https://other.gatehouse.test/api' });
    const res = await verifier().verify(token);
    expectFailure(res, 401, JWT_ERRORS.audience);
    expect(!res.ok && res.wwwAuthenticate).toBe(
      'Bearer scope="" error="invalid_token" error_description="the token does not have a valid audience"',
    );
  });

  it('checks aud, not client_id, when the token has an aud (AWS rule)', async () => {
    // The token's client_id is configured, but its aud is not: AWS evaluates aud and rejects.
    const token = await op.getToken({ audience: 'https://other.gatehouse.test/api' });
    const res = await verifier({ audience: [OIDC_TEST_CLIENT_ID] }).verify(token);
    expectFailure(res, 401, JWT_ERRORS.audience);
  });

  it('accepts any one of several configured audiences', async () => {
    const token = await op.getToken({ audience: 'https://other.gatehouse.test/api' });
    const res = await verifier({ audience: [OIDC_TEST_AUDIENCE, 'https://other.gatehouse.test/api'] }).verify(token);
    expect(res.ok).toBe(true);
  });

  it('rejects a token from another issuer with 401', async () => {
    const res = await verifier({ issuer: `${op.issuer}/other` }).verify(await op.getToken());
    expectFailure(res, 401, JWT_ERRORS.issuer);
  });

  it('rejects a real token once it has expired (clock moved past exp) and honours clock tolerance', async () => {
    const token = await op.getToken();
    const exp = decodeJwt(token).exp ?? 0;
    const afterExpiry = () => (exp + 1) * 1000;
    expectFailure(await verifier({ now: afterExpiry }).verify(token), 401, JWT_ERRORS.expired);
    expect((await verifier({ now: afterExpiry, clockToleranceSec: 30 }).verify(token)).ok).toBe(true);
  });

  it('answers 403 when the token lacks every required scope', async () => {
    const token = await op.getToken({ scope: 'items.read' });
    const v = verifier();
    const res = await v.verify(token, ['items.write', 'admin']);
    expectFailure(res, 403, JWT_ERRORS.scope);
    expect(!res.ok && res.wwwAuthenticate).toMatch(/^Bearer scope="items.write admin" error="insufficient_scope"/);
    expect((await v.verify(token, ['admin', 'items.read'])).ok).toBe(true);
  });

  it('verifies a token signed with a rotated key without recreating the verifier', async () => {
    const v = verifier({ cooldownMs: 0 });
    const before = await op.getToken();
    expect((await v.verify(before)).ok).toBe(true);
    const oldKid = op.currentKid();
    const fetchesBefore = op.jwksRequests();

    await op.rotateKeys();
    const after = await op.getToken();
    expect(decodeProtectedHeader(after).kid).toBe(op.currentKid());
    expect(op.currentKid()).not.toBe(oldKid);

    expect((await v.verify(after)).ok).toBe(true);
    expect(op.jwksRequests()).toBe(fetchesBefore + 1); // one refetch for the unknown kid
    expect((await v.verify(before)).ok).toBe(true); // the old key is still published
    expect((await v.verify(after)).ok).toBe(true);
    expect(op.jwksRequests()).toBe(fetchesBefore + 1); // keys cached again
  });

  it('does not refetch the JWKS for unknown kids while cooling down', async () => {
    const v = verifier({ cooldownMs: 60_000 });
    expect((await v.verify(await op.getToken())).ok).toBe(true);
    const fetches = op.jwksRequests();
    await op.rotateKeys();
    const rotated = await op.getToken();
    expectFailure(await v.verify(rotated), 401, JWT_ERRORS.unknownKid);
    expectFailure(await v.verify(rotated), 401, JWT_ERRORS.unknownKid);
    expect(op.jwksRequests()).toBe(fetches);
  });

  it('answers 500 (not 401) when the JWKS cannot be fetched', async () => {
    const dead = createServer((_req, res) => {
      res.writeHead(503).end();
    });
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    const { port } = dead.address() as AddressInfo;
    try {
      const token = await op.getToken();
      const res = await verifier({ jwksUri: `http://127.0.0.1:${port}/jwks` }).verify(token);
      expectFailure(res, 500, JWT_ERRORS.keysUnavailable);
      expect(!res.ok && res.wwwAuthenticate).toBeUndefined();
    } finally {
      await new Promise<void>((resolve) => dead.close(() => resolve()));
    }
  });
});

describe('JWT authorizer against hand-crafted tokens (local JWKS)', () => {
  let local: LocalTestIssuer;
  const aud = 'gatehouse-local';

  beforeAll(async () => {
    local = await startLocalIssuer();
  });

  afterAll(async () => {
    await local?.stop();
  });

  const verifier = () => createJwtVerifier({ issuer: local.issuer, audience: [aud], jwksUri: local.jwksUri });
  const nowSec = () => Math.floor(Date.now() / 1000);

  it('accepts a well-formed token (control)', async () => {
    expect((await verifier().verify(await local.sign({ aud, sub: 'u1' }))).ok).toBe(true);
  });

  it('rejects an expired token with 401', async () => {
    const token = await local.sign({ aud, iat: nowSec() - 600, exp: nowSec() - 60 });
    expectFailure(await verifier().verify(token), 401, JWT_ERRORS.expired);
  });

  it('rejects a token without exp with 401', async () => {
    const token = await local.sign({ aud }, { omitExp: true });
    expect(decodeJwt(token).exp).toBeUndefined();
    expectFailure(await verifier().verify(token), 401, JWT_ERRORS.noExpiry);
  });

  it('rejects a token that is not valid yet (nbf) or issued in the future (iat) with 401', async () => {
    expectFailure(await verifier().verify(await local.sign({ aud, nbf: nowSec() + 120 })), 401, JWT_ERRORS.notYetValid);
    expectFailure(
      await verifier().verify(await local.sign({ aud, iat: nowSec() + 120 })),
      401,
      JWT_ERRORS.issuedInFuture,
    );
  });

  it('rejects alg none with 401 without fetching keys', async () => {
    const token = new UnsecuredJWT({ iss: local.issuer, aud, exp: nowSec() + 300 }).encode();
    expectFailure(await verifier().verify(token), 401, 'signing method none is invalid');
  });

  it('rejects an HS256 token (key-confusion attempt using the public JWK as the secret) with 401', async () => {
    const jwks = (await (await fetch(local.jwksUri)).json()) as { keys: Array<{ n: string }> };
    const secret = new TextEncoder().encode(jwks.keys[0]?.n ?? 'x');
    const token = await new SignJWT({ iss: local.issuer, aud, exp: nowSec() + 300 })
      .setProtectedHeader({ alg: 'HS256', kid: local.kid })
      .sign(secret);
    expectFailure(await verifier().verify(token), 401, 'signing method HS256 is invalid');
  });

  it('rejects a bad signature with 401', async () => {
    const forged = await local.sign({ aud, sub: 'admin' }, { foreignKey: true });
    expectFailure(await verifier().verify(forged), 401, JWT_ERRORS.signature);
    // Tampered payload: the real signature over a different body.
    const [h, , s] = (await local.sign({ aud, sub: 'u1' })).split('.');
    const body = Buffer.from(JSON.stringify({ iss: local.issuer, aud, sub: 'admin', exp: nowSec() + 300 })).toString(
      'base64url',
    );
    expectFailure(await verifier().verify(`${h}.${body}.${s}`), 401, JWT_ERRORS.signature);
  });

  it('rejects a token without kid or with an unknown kid with 401', async () => {
    expectFailure(await verifier().verify(await local.sign({ aud }, { kid: null })), 401, JWT_ERRORS.missingKid);
    expectFailure(await verifier().verify(await local.sign({ aud }, { kid: 'nope' })), 401, JWT_ERRORS.unknownKid);
  });

  it('rejects malformed tokens with 401', async () => {
    const v = verifier();
    for (const token of ['', 'Bearer ', 'not-a-jwt', 'a.b.c', 'a.b', '....', `${'x'.repeat(50)}.${'y'.repeat(50)}`]) {
      expectFailure(await v.verify(token), 401, JWT_ERRORS.malformed);
    }
  });

  it('falls back to client_id only when the token has no aud', async () => {
    const v = verifier();
    expect((await v.verify(await local.sign({ client_id: aud }))).ok).toBe(true);
    expectFailure(await v.verify(await local.sign({ client_id: 'someone-else' })), 401, JWT_ERRORS.audience);
    expectFailure(await v.verify(await local.sign({})), 401, JWT_ERRORS.audience);
    expectFailure(await v.verify(await local.sign({ aud: ['x', 'y'], client_id: aud })), 401, JWT_ERRORS.audience);
    expect((await v.verify(await local.sign({ aud: ['x', aud] }))).ok).toBe(true);
  });

  it('reads scopes from scp (array or string) when there is no scope claim', async () => {
    const v = verifier();
    const arr = await v.verify(await local.sign({ aud, scp: ['a', 'b'] }), ['b']);
    expect(arr.ok && arr.scopes).toEqual(['a', 'b']);
    const str = await v.verify(await local.sign({ aud, scp: 'a b' }), ['a']);
    expect(str.ok && str.scopes).toEqual(['a', 'b']);
    const none = await v.verify(await local.sign({ aud }));
    expect(none.ok && none.scopes).toBeNull();
    expectFailure(await v.verify(await local.sign({ aud }), ['a']), 403, JWT_ERRORS.scope);
  });
});

describe('claimsForEvent', () => {
  it('renders every claim as a string the way API Gateway does', () => {
    expect(
      claimsForEvent({
        sub: 'u1',
        exp: 1700000000,
        ratio: 0.5,
        email_verified: true,
        'cognito:groups': ['admin', 'users'],
        nested: [['a', 1], { k: 'v' }],
        address: { country: 'NZ' },
        nothing: null,
      }),
    ).toEqual({
      sub: 'u1',
      exp: '1700000000',
      ratio: '0.5',
      email_verified: 'true',
      'cognito:groups': '[admin users]',
      nested: '[[a 1] {"k":"v"}]',
      address: '{"country":"NZ"}',
      nothing: '',
    });
  });
});
