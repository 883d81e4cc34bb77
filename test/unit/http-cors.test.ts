import { describe, expect, it } from 'vitest';
import { CorsConfigError, compileCors, isPreflight, stripCorsHeaders } from '../../server/http/cors.ts';

const APP = 'https://app.example.com';

describe('CORS preflight', () => {
  const cors = compileCors({
    allowOrigins: [APP],
    allowMethods: ['GET', 'POST', 'DELETE'],
    allowHeaders: ['Authorization', 'Content-Type'],
    exposeHeaders: ['x-request-id'],
    maxAge: 600,
  });

  it('should answer an allowed preflight with the configured lists', () => {
    expect(cors.preflight(APP, 'DELETE', 'authorization, content-type')).toEqual([
      ['access-control-allow-origin', APP],
      ['vary', 'Origin'],
      ['access-control-allow-methods', 'GET,POST,DELETE'],
      ['access-control-allow-headers', 'authorization,content-type'],
      ['access-control-max-age', '600'],
    ]);
  });

  it('should compare origins case-insensitively and echo the request spelling', () => {
    expect(cors.preflight('https://APP.example.com', 'GET', undefined)?.[0]).toEqual([
      'access-control-allow-origin',
      'https://APP.example.com',
    ]);
  });

  it('should refuse a disallowed or missing origin', () => {
    expect(cors.preflight('https://evil.example', 'GET', undefined)).toBeNull();
    expect(cors.preflight(undefined, 'GET', undefined)).toBeNull();
    expect(cors.preflight('null', 'GET', undefined)).toBeNull();
  });

  it('should refuse a method that is neither configured nor safelisted', () => {
    expect(cors.preflight(APP, 'PUT', undefined)).toBeNull();
    expect(cors.preflight(APP, undefined, undefined)).toBeNull();
    // HEAD is CORS-safelisted, so it needs no listing.
    expect(cors.preflight(APP, 'HEAD', undefined)).not.toBeNull();
  });

  it('should refuse a request header that is not allowed', () => {
    expect(cors.preflight(APP, 'GET', 'authorization, x-secret')).toBeNull();
    expect(cors.preflight(APP, 'GET', ' , Content-Type ,')).not.toBeNull();
  });
});

describe('CORS actual responses', () => {
  it('should add origin, credentials, expose headers and vary for an allowed origin', () => {
    const cors = compileCors({ allowOrigins: [APP], exposeHeaders: ['x-a', 'x-b'], allowCredentials: true });
    expect(cors.responseHeaders(APP)).toEqual([
      ['access-control-allow-origin', APP],
      ['access-control-allow-credentials', 'true'],
      ['vary', 'Origin'],
      ['access-control-expose-headers', 'x-a,x-b'],
    ]);
  });

  it('should add nothing for a disallowed or missing origin', () => {
    const cors = compileCors({ allowOrigins: [APP] });
    expect(cors.responseHeaders('https://evil.example')).toEqual([]);
    expect(cors.responseHeaders(undefined)).toEqual([]);
    expect(cors.responseHeaders('')).toEqual([]);
  });

  it('should allow nothing with an empty configuration', () => {
    const cors = compileCors({});
    expect(cors.responseHeaders(APP)).toEqual([]);
    expect(cors.preflight(APP, 'GET', undefined)).toBeNull();
  });
});

describe('CORS wildcards', () => {
  it('should answer "*" for any origin, without vary', () => {
    const cors = compileCors({ allowOrigins: ['*'], allowMethods: ['*'], allowHeaders: ['*'] });
    expect(cors.responseHeaders('https://anything.example')).toEqual([['access-control-allow-origin', '*']]);
    expect(cors.preflight('https://anything.example', 'PATCH', 'x-custom')).toEqual([
      ['access-control-allow-origin', '*'],
      ['access-control-allow-methods', '*'],
      ['access-control-allow-headers', '*'],
    ]);
  });

  it('should echo the requested method and headers when "*" meets credentials', () => {
    const cors = compileCors({ allowOrigins: [APP], allowMethods: ['*'], allowHeaders: ['*'], allowCredentials: true });
    expect(cors.preflight(APP, 'put', 'X-One, x-two')).toEqual([
      ['access-control-allow-origin', APP],
      ['access-control-allow-credentials', 'true'],
      ['vary', 'Origin'],
      ['access-control-allow-methods', 'PUT'],
      ['access-control-allow-headers', 'x-one,x-two'],
    ]);
  });

  it('should reject credentials with a "*" origin and a bad maxAge', () => {
    expect(() => compileCors({ allowOrigins: ['*'], allowCredentials: true })).toThrow(CorsConfigError);
    expect(() => compileCors({ maxAge: 1.5 })).toThrow(/maxAge/);
    expect(() => compileCors({ maxAge: 86401 })).toThrow(/maxAge/);
    expect(() => compileCors({ maxAge: -1 })).not.toThrow();
  });
});

describe('CORS helpers', () => {
  it('should recognise a preflight', () => {
    const h: Array<[string, string]> = [
      ['Origin', APP],
      ['Access-Control-Request-Method', 'POST'],
    ];
    expect(isPreflight('OPTIONS', h)).toBe(true);
    expect(isPreflight('GET', h)).toBe(false);
    expect(isPreflight('OPTIONS', [['origin', APP]])).toBe(false);
    expect(isPreflight('OPTIONS', [['access-control-request-method', 'GET']])).toBe(false);
  });

  it('should strip backend CORS headers', () => {
    expect(
      stripCorsHeaders([
        ['Access-Control-Allow-Origin', '*'],
        ['content-type', 'text/plain'],
        ['access-control-expose-headers', 'x'],
      ]),
    ).toEqual([['content-type', 'text/plain']]);
  });
});
