import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';

/**
 * Test identity providers for the JWT authorizer.
 *
 * `startOidcProvider()` runs a REAL OpenID Connect provider (the `oidc-provider` package) on
 * 127.0.0.1:<ephemeral>. Access tokens come from the client_credentials grant of a test client;
 * resource indicators make them JWTs (RFC 9068, `typ: at+jwt`) whose `aud` is the requested
 * resource. `rotateKeys()` swaps in a provider instance with a new signing key (old key still
 * published, as a real rotation does) on the same port and issuer, without closing the socket.
 *
 * `startLocalIssuer()` is a bare JWKS endpoint plus a jose signer, for tokens no well-behaved
 * provider issues (expired, alg none, forged signatures, missing kid).
 */

export const OIDC_TEST_AUDIENCE = 'https://api.gatehouse.test/chat';
export const OIDC_TEST_CLIENT_ID = 'gatehouse-test-client';
/** Scopes the test resource server grants; getToken() asks for all of them unless told otherwise. */
export const OIDC_TEST_SCOPES = 'items.read items.write chat.send';

export interface OidcTestProvider {
  issuer: string;
  jwksUri: string;
  getToken(opts?: { scope?: string; audience?: string }): Promise<string>;
  /** New signing key; the previous key stays in the JWKS so earlier tokens still verify. */
  rotateKeys(): Promise<void>;
  /** kid of the key currently signing. */
  currentKid(): string;
  /** GET requests served on the JWKS path so far (to assert refetch behaviour). */
  jwksRequests(): number;
  stop(): Promise<void>;
}

/** The slice of oidc-provider's API used here (the package ships no type declarations). */
interface OidcProviderInstance {
  callback(): (req: IncomingMessage, res: ServerResponse) => void;
}
type OidcProviderConstructor = new (issuer: string, configuration: Record<string, unknown>) => OidcProviderInstance;

async function loadProviderClass(): Promise<OidcProviderConstructor> {
  // A variable specifier keeps tsc from demanding declarations for an untyped package.
  const specifier: string = 'oidc-provider';
  const mod: unknown = await import(specifier);
  const ctor = (mod as { Provider?: unknown }).Provider;
  if (typeof ctor !== 'function') throw new Error('oidc-provider does not export Provider');
  return ctor as OidcProviderConstructor;
}

async function newSigningJwk(): Promise<JWK> {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid: `k-${randomUUID()}`, alg: 'RS256', use: 'sig' };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
}

export async function startOidcProvider(): Promise<OidcTestProvider> {
  const Provider = await loadProviderClass();
  const clientSecret = randomUUID();
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  let jwksHits = 0;
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/jwks') jwksHits++;
    if (!handler) {
      res.writeHead(503).end();
      return;
    }
    handler(req, res);
  });
  const port = await listen(server);
  const issuer = `http://127.0.0.1:${port}`;

  const build = (keys: JWK[]): OidcProviderInstance =>
    new Provider(issuer, {
      clients: [
        {
          client_id: OIDC_TEST_CLIENT_ID,
          client_secret: clientSecret,
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
          token_endpoint_auth_method: 'client_secret_post',
        },
      ],
      jwks: { keys },
      cookies: { keys: [randomUUID()] },
      ttl: { ClientCredentials: 300 },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: () => OIDC_TEST_AUDIENCE,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx: unknown, resourceIndicator: string) => ({
            scope: OIDC_TEST_SCOPES,
            audience: resourceIndicator,
            accessTokenTTL: 300,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          }),
        },
      },
    });

  let keys = [await newSigningJwk()];
  handler = build(keys).callback();

  const discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as {
    jwks_uri?: unknown;
    token_endpoint?: unknown;
  };
  if (typeof discovery.jwks_uri !== 'string' || typeof discovery.token_endpoint !== 'string') {
    await close(server);
    throw new Error('OIDC discovery document lacks jwks_uri or token_endpoint');
  }
  const jwksUri = discovery.jwks_uri;
  const tokenEndpoint = discovery.token_endpoint;

  return {
    issuer,
    jwksUri,
    async getToken(opts = {}) {
      const body = new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: OIDC_TEST_CLIENT_ID,
        client_secret: clientSecret,
        scope: opts.scope ?? OIDC_TEST_SCOPES,
        resource: opts.audience ?? OIDC_TEST_AUDIENCE,
      });
      const res = await fetch(tokenEndpoint, { method: 'POST', body });
      const json = (await res.json()) as { access_token?: unknown; error?: unknown; error_description?: unknown };
      if (res.status !== 200 || typeof json.access_token !== 'string') {
        throw new Error(`token request failed: ${res.status} ${String(json.error)} ${String(json.error_description)}`);
      }
      return json.access_token;
    },
    async rotateKeys() {
      keys = [await newSigningJwk(), ...keys];
      handler = build(keys).callback();
    },
    currentKid() {
      return String(keys[0]?.kid);
    },
    jwksRequests() {
      return jwksHits;
    },
    async stop() {
      handler = undefined;
      await close(server);
    },
  };
}

export interface LocalTestIssuer {
  issuer: string;
  jwksUri: string;
  /** kid of the published RSA key. */
  kid: string;
  /**
   * Signs `claims` (iss defaults to the local issuer, exp to +5 min, iat to now) with the published
   * key, or with `opts.foreignKey` (a key NOT in the JWKS) while still claiming the published kid.
   * `kid: null` leaves the kid header out; `omitExp` leaves the exp claim out.
   */
  sign(claims: JWTPayload, opts?: { foreignKey?: boolean; kid?: string | null; omitExp?: boolean }): Promise<string>;
  stop(): Promise<void>;
}

export async function startLocalIssuer(): Promise<LocalTestIssuer> {
  const published = await generateKeyPair('RS256', { extractable: true });
  const foreign = await generateKeyPair('RS256', { extractable: true });
  const kid = `local-${randomUUID()}`;
  const publicJwk = { ...(await exportJWK(published.publicKey)), kid, alg: 'RS256', use: 'sig' };
  const jwksBody = JSON.stringify({ keys: [publicJwk] });
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/jwks') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(jwksBody);
    } else {
      res.writeHead(404).end();
    }
  });
  const port = await listen(server);
  const issuer = `http://127.0.0.1:${port}`;
  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    kid,
    async sign(claims, opts = {}) {
      const nowSec = Math.floor(Date.now() / 1000);
      const header = opts.kid === null ? { alg: 'RS256' } : { alg: 'RS256', kid: opts.kid ?? kid };
      const payload: JWTPayload = { iss: issuer, iat: nowSec, exp: nowSec + 300, ...claims };
      if (opts.omitExp) delete payload.exp;
      return new SignJWT(payload)
        .setProtectedHeader(header)
        .sign(opts.foreignKey ? foreign.privateKey : published.privateKey);
    },
    stop: () => close(server),
  };
}
