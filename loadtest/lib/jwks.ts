// A tiny local token issuer for the JWT-authorizer runs: an RSA key pair (jose), its public
// half served as a JWKS over node:http on 127.0.0.1, and RS256 tokens signed with it.
// It runs inside the orchestrator: the gateway fetches the JWKS once and caches it.

import { randomUUID } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from "jose";

export const JWT_BENCH_AUDIENCE = "https://gatehouse.bench/api";

export interface LocalIssuer {
  issuer: string;
  jwksUri: string;
  /** GET /jwks requests served so far. */
  jwksRequests(): number;
  /** An RS256 token for `sub`, valid for `ttlSec` (default 1 h). */
  sign(sub: string, ttlSec?: number): Promise<string>;
  stop(): Promise<void>;
}

export async function startLocalIssuer(): Promise<LocalIssuer> {
  const { publicKey, privateKey } = await generateKeyPair("RS256");
  const kid = `bench-${randomUUID()}`;
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" };
  const body = JSON.stringify({ keys: [jwk] });
  let hits = 0;
  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/jwks") {
      hits++;
      res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=3600" }).end(body);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;
  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    jwksRequests: () => hits,
    async sign(sub, ttlSec = 3600) {
      const now = Math.floor(Date.now() / 1000);
      const claims: JWTPayload = { iss: issuer, aud: JWT_BENCH_AUDIENCE, sub, iat: now, exp: now + ttlSec, scope: "bench" };
      return new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid, typ: "JWT" }).sign(privateKey);
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
