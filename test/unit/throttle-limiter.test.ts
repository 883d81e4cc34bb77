import { describe, expect, it } from 'vitest';
import {
  ApiKeyConfigError,
  ApiKeyIndex,
  apiKeyId,
  isValidApiKey,
  parseApiKeySpecs,
  redactKey,
} from '../../server/throttling/api-keys.ts';
import { LocalRateLimitStore, type RateLimitStore } from '../../server/throttling/distributed.ts';
import {
  RequestLimiter,
  type ThrottleConfigError,
  type ThrottleDecision,
  type ThrottleRequest,
  type ThrottlingConfig,
} from '../../server/throttling/limiter.ts';

const FREE_KEY = 'FreeKey0000000000000000001';
const FREE_KEY_2 = 'FreeKey0000000000000000002';
const PRO_KEY = 'ProKey00000000000000000001';

interface Harness {
  limiter: RequestLimiter;
  advance: (ms: number) => void;
  setWall: (iso: string) => void;
}

function harness(config: Partial<ThrottlingConfig>, env: Record<string, string> = {}, store?: RateLimitStore): Harness {
  let mono = 0;
  let wall = Date.parse('2024-05-17T10:00:00Z');
  const now = (): number => mono;
  const wallNow = (): number => wall;
  const limiter = new RequestLimiter({
    config: { stages: {}, usagePlans: {}, ...config },
    env,
    now,
    wallNow,
    store: store ?? new LocalRateLimitStore({ now, wallNow }),
  });
  return {
    limiter,
    advance: (ms) => {
      mono += ms;
      wall += ms;
    },
    setWall: (iso) => {
      wall = Date.parse(iso);
    },
  };
}

const req = (over: Partial<ThrottleRequest> = {}): ThrottleRequest => ({
  stage: 'prod',
  routeKey: 'sendmessage',
  apiKeyRequired: false,
  ...over,
});

function admitted(l: RequestLimiter, r: ThrottleRequest, n: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (l.checkRequest(r).ok) ok++;
  return ok;
}

function denial(d: ThrottleDecision): Exclude<ThrottleDecision, { ok: true }> {
  if (d.ok) throw new Error('expected a refusal');
  return d;
}

describe('RequestLimiter: single levels', () => {
  it('account: burst then steady rate, 429 Too Many Requests with Retry-After', () => {
    const h = harness({ account: { rateLimit: 10, burstLimit: 5 } });
    expect(admitted(h.limiter, req(), 100)).toBe(5);
    const d = denial(h.limiter.checkRequest(req()));
    expect(d).toEqual({ ok: false, status: 429, message: 'Too Many Requests', retryAfterMs: 100, level: 'account' });
    let ok = 0;
    for (let i = 0; i < 1000; i++) {
      h.advance(10);
      ok += admitted(h.limiter, req(), 5);
    }
    expect(ok).toBe(100); // 10 s at 10/s
    // The account bucket is shared by every stage and route.
    h.advance(10_000);
    expect(admitted(h.limiter, req({ stage: 'other', routeKey: 'x' }), 3)).toBe(3);
    expect(admitted(h.limiter, req(), 10)).toBe(2);
  });

  it('stage default applies to each route separately', () => {
    const h = harness({ stages: { prod: { default: { rateLimit: 1, burstLimit: 2 } } } });
    expect(admitted(h.limiter, req({ routeKey: 'a' }), 10)).toBe(2);
    expect(admitted(h.limiter, req({ routeKey: 'b' }), 10)).toBe(2);
    expect(denial(h.limiter.checkRequest(req({ routeKey: 'a' }))).level).toBe('stage');
    // Other stages are not limited.
    expect(admitted(h.limiter, req({ stage: 'dev', routeKey: 'a' }), 10)).toBe(10);
  });

  it('a route setting overrides the stage default', () => {
    const h = harness({
      stages: { prod: { default: { rateLimit: 1, burstLimit: 2 }, routes: { sendmessage: { rateLimit: 1, burstLimit: 5 } } } },
    });
    expect(admitted(h.limiter, req(), 10)).toBe(5);
    expect(denial(h.limiter.checkRequest(req())).level).toBe('route');
    expect(admitted(h.limiter, req({ routeKey: '$default' }), 10)).toBe(2);
  });

  it('usage plan throttle is per API key, across routes', () => {
    const h = harness({
      usagePlans: { free: { throttle: { rateLimit: 1, burstLimit: 3 }, apiKeys: [FREE_KEY, FREE_KEY_2] } },
    });
    const r1 = req({ apiKey: FREE_KEY, apiKeyRequired: true });
    expect(admitted(h.limiter, r1, 2)).toBe(2);
    expect(admitted(h.limiter, { ...r1, routeKey: 'other' }, 5)).toBe(1);
    expect(denial(h.limiter.checkRequest(r1)).level).toBe('key');
    expect(admitted(h.limiter, req({ apiKey: FREE_KEY_2, apiKeyRequired: true }), 5)).toBe(3);
    h.advance(1000);
    expect(admitted(h.limiter, r1, 5)).toBe(1);
  });

  it('usage plan per-route throttle is per key and route', () => {
    const h = harness({
      usagePlans: { free: { routes: { sendmessage: { rateLimit: 1, burstLimit: 1 } }, apiKeys: [FREE_KEY] } },
    });
    const r = req({ apiKey: FREE_KEY, apiKeyRequired: true });
    expect(admitted(h.limiter, r, 5)).toBe(1);
    expect(denial(h.limiter.checkRequest(r)).level).toBe('plan');
    expect(admitted(h.limiter, { ...r, routeKey: 'other' }, 5)).toBe(5);
  });

  it('usage plans apply only on routes that require an API key', () => {
    const h = harness({ usagePlans: { free: { throttle: { rateLimit: 1, burstLimit: 1 }, apiKeys: [FREE_KEY] } } });
    expect(admitted(h.limiter, req({ apiKey: FREE_KEY }), 5)).toBe(5);
    expect(admitted(h.limiter, req({ apiKey: 'unknown' }), 5)).toBe(5);
  });

  it('per connection and per client IP', () => {
    const h = harness({ perConnection: { rateLimit: 1, burstLimit: 2 }, perClientIp: { rateLimit: 1, burstLimit: 3 } });
    expect(admitted(h.limiter, req({ connectionId: 'c1', clientIp: '10.0.0.1' }), 5)).toBe(2);
    expect(denial(h.limiter.checkRequest(req({ connectionId: 'c1', clientIp: '10.0.0.1' }))).level).toBe('connection');
    expect(admitted(h.limiter, req({ connectionId: 'c2', clientIp: '10.0.0.1' }), 5)).toBe(1);
    expect(denial(h.limiter.checkRequest(req({ connectionId: 'c3', clientIp: '10.0.0.1' }))).level).toBe('ip');
    expect(admitted(h.limiter, req({ connectionId: 'c3', clientIp: '10.0.0.2' }), 5)).toBe(2);
    h.limiter.forgetConnection('c1');
    expect(admitted(h.limiter, req({ connectionId: 'c1', clientIp: '10.0.0.3' }), 5)).toBe(2);
    // Without connection id or IP those limits do not apply.
    expect(admitted(h.limiter, req(), 50)).toBe(50);
  });

  it('quota: 429 Limit Exceeded until the period ends', () => {
    const h = harness({ usagePlans: { free: { quota: { limit: 3, period: 'DAY' }, apiKeys: [FREE_KEY] } } });
    const r = req({ apiKey: FREE_KEY, apiKeyRequired: true });
    expect(admitted(h.limiter, r, 10)).toBe(3);
    const d = denial(h.limiter.checkRequest(r));
    expect(d).toEqual({
      ok: false,
      status: 429,
      message: 'Limit Exceeded',
      retryAfterMs: Date.parse('2024-05-18T00:00:00Z') - Date.parse('2024-05-17T10:00:00Z'),
      level: 'quota',
    });
    h.setWall('2024-05-18T00:00:00Z');
    expect(admitted(h.limiter, r, 10)).toBe(3);
  });
});

describe('RequestLimiter: API keys', () => {
  const plans = { usagePlans: { free: { throttle: { rateLimit: 100, burstLimit: 100 }, apiKeys: [FREE_KEY] } } };

  it('missing or unknown key on a key-required route is 403 Forbidden', () => {
    const h = harness(plans);
    const forbidden = { ok: false, status: 403, message: 'Forbidden', level: 'apikey' };
    expect(h.limiter.checkRequest(req({ apiKeyRequired: true }))).toEqual(forbidden);
    expect(h.limiter.checkRequest(req({ apiKeyRequired: true, apiKey: '' }))).toEqual(forbidden);
    expect(h.limiter.checkRequest(req({ apiKeyRequired: true, apiKey: PRO_KEY }))).toEqual(forbidden);
    expect(h.limiter.checkRequest(req({ apiKeyRequired: true, apiKey: FREE_KEY })).ok).toBe(true);
  });

  it('a key-required route with no usage plans refuses every key', () => {
    const h = harness({});
    expect(denial(h.limiter.checkRequest(req({ apiKeyRequired: true, apiKey: FREE_KEY }))).status).toBe(403);
  });

  it('loads keys from key-env: variables', () => {
    const h = harness(
      { usagePlans: { pro: { throttle: { rateLimit: 1, burstLimit: 1 }, apiKeys: ['key-env:PRO_KEYS'] } } },
      { PRO_KEYS: ` ${PRO_KEY} , ${FREE_KEY_2},` },
    );
    expect(h.limiter.apiKeyCount).toBe(2);
    expect(h.limiter.checkRequest(req({ apiKeyRequired: true, apiKey: PRO_KEY })).ok).toBe(true);
    expect(h.limiter.checkRequest(req({ apiKeyRequired: true, apiKey: FREE_KEY_2 })).ok).toBe(true);
  });

  it('rejects bad key configuration without printing the key', () => {
    const bad = (apiKeys: string[], env: Record<string, string> = {}): Error => {
      try {
        harness({ usagePlans: { p: { apiKeys } } }, env);
      } catch (err) {
        return err as Error;
      }
      throw new Error('expected a configuration error');
    };
    const short = bad(['tooShort123']);
    expect(short).toBeInstanceOf(ApiKeyConfigError);
    expect(short.message).toContain('usagePlans.p.apiKeys[0]');
    expect(short.message).not.toContain('tooShort123');
    expect(bad(['has-dash-000000000000000000']).message).toContain('****0000');
    expect(bad(['key-env:NOPE']).message).toContain('NOPE is not set');
    expect(bad([FREE_KEY, FREE_KEY]).message).toContain('duplicate');
    const twoPlans = (() => {
      try {
        harness({ usagePlans: { a: { apiKeys: [FREE_KEY] }, b: { apiKeys: [FREE_KEY] } } });
      } catch (err) {
        return err as Error;
      }
      return undefined;
    })();
    expect(twoPlans?.message).toContain('usagePlans.b.apiKeys[0]');
    expect(twoPlans?.message).not.toContain(FREE_KEY);
  });

  it('rejects invalid limits with the config path', () => {
    expect(() => harness({ account: { rateLimit: -1, burstLimit: 1 } })).toThrow(/account: rateLimit/);
    expect(() => harness({ stages: { prod: { routes: { r: { rateLimit: 1, burstLimit: Number.NaN } } } } })).toThrow(
      /stages\.prod\.routes\.r: burstLimit/,
    );
    let err: ThrottleConfigError | undefined;
    try {
      harness({ usagePlans: { p: { quota: { limit: 1.5, period: 'DAY' }, apiKeys: [] } } });
    } catch (e) {
      err = e as ThrottleConfigError;
    }
    expect(err?.path).toBe('usagePlans.p.quota');
  });
});

describe('RequestLimiter: combined levels', () => {
  const combined: Partial<ThrottlingConfig> = {
    account: { rateLimit: 100, burstLimit: 10 },
    stages: { prod: { default: { rateLimit: 100, burstLimit: 8 }, routes: { slow: { rateLimit: 1, burstLimit: 2 } } } },
    usagePlans: {
      free: { throttle: { rateLimit: 1, burstLimit: 4 }, quota: { limit: 5, period: 'DAY' }, apiKeys: [FREE_KEY] },
      pro: { throttle: { rateLimit: 1000, burstLimit: 1000 }, apiKeys: [PRO_KEY] },
    },
    perConnection: { rateLimit: 100, burstLimit: 6 },
  };

  it('the tightest applicable bucket decides and refused requests consume nothing elsewhere', () => {
    const h = harness(combined);
    // Route "slow" (2) is tighter than account (10): 8 refusals must not drain the account.
    expect(admitted(h.limiter, req({ routeKey: 'slow' }), 10)).toBe(2);
    expect(denial(h.limiter.checkRequest(req({ routeKey: 'slow' }))).level).toBe('route');
    expect(admitted(h.limiter, req({ routeKey: 'a' }), 100)).toBe(8); // stage default 8 < account 10 - 2
    expect(admitted(h.limiter, req({ routeKey: 'b' }), 100)).toBe(0); // account now empty
    expect(denial(h.limiter.checkRequest(req({ routeKey: 'b' }))).level).toBe('account');
  });

  it('usage plan key throttle before stage, quota only counts admitted requests', () => {
    const h = harness(combined);
    const r = req({ routeKey: 'a', apiKey: FREE_KEY, apiKeyRequired: true });
    expect(admitted(h.limiter, r, 10)).toBe(4);
    expect(denial(h.limiter.checkRequest(r)).level).toBe('key');
    h.advance(1000);
    // 1 more token, quota has 1 left (4 used of 5).
    expect(admitted(h.limiter, r, 10)).toBe(1);
    h.advance(5000);
    const d = denial(h.limiter.checkRequest(r));
    expect(d.level).toBe('quota');
    expect(d.message).toBe('Limit Exceeded');
    // The quota refusal refunded the key/stage/account tokens: another key still gets its burst.
    expect(admitted(h.limiter, req({ routeKey: 'a', apiKey: PRO_KEY, apiKeyRequired: true }), 8)).toBe(8);
  });

  it('per-connection limit is checked first and refunded when a later level refuses', () => {
    const h = harness(combined);
    const r = req({ routeKey: 'slow', connectionId: 'c1' });
    expect(admitted(h.limiter, r, 10)).toBe(2); // route limit refuses 8, connection keeps 4
    expect(admitted(h.limiter, req({ routeKey: 'a', connectionId: 'c1' }), 10)).toBe(4);
    expect(denial(h.limiter.checkRequest(req({ routeKey: 'a', connectionId: 'c1' }))).level).toBe('connection');
  });

  it('steady state with every level: admits at the tightest rate', () => {
    const h = harness(combined);
    const r = req({ routeKey: 'a', apiKey: PRO_KEY, apiKeyRequired: true, connectionId: 'c1' });
    let ok = 0;
    for (let ms = 0; ms < 10_000; ms++) {
      h.advance(1);
      ok += admitted(h.limiter, r, 3);
    }
    // stage default 100/s + burst 8, account 100/s + burst 10, connection 100/s + burst 6.
    expect(ok).toBeGreaterThanOrEqual(1000);
    expect(ok).toBeLessThanOrEqual(1006);
  });
});

describe('api-keys', () => {
  it('validates the AWS format: 20-128 alphanumeric characters', () => {
    expect(isValidApiKey('a'.repeat(20))).toBe(true);
    expect(isValidApiKey('A1'.repeat(64))).toBe(true);
    expect(isValidApiKey('a'.repeat(19))).toBe(false);
    expect(isValidApiKey('a'.repeat(129))).toBe(false);
    expect(isValidApiKey(`${'a'.repeat(20)}-`)).toBe(false);
    expect(isValidApiKey(`${'a'.repeat(20)}_`)).toBe(false);
    expect(isValidApiKey(`${'a'.repeat(20)}\n`)).toBe(false);
  });

  it('redacts all but the last 4 characters', () => {
    expect(redactKey(FREE_KEY)).toBe('****0001');
    expect(redactKey('short')).toBe('****');
    expect(redactKey('')).toBe('****');
  });

  it('parses literal and env specs in order', () => {
    expect(parseApiKeySpecs([FREE_KEY, 'key-env:K'], { K: `${PRO_KEY},${FREE_KEY_2}` })).toEqual([
      FREE_KEY,
      PRO_KEY,
      FREE_KEY_2,
    ]);
    expect(() => parseApiKeySpecs(['key-env:'], {})).toThrow(ApiKeyConfigError);
    expect(() => parseApiKeySpecs(['key-env:K'], { K: ' , ' })).toThrow(/holds no keys/);
  });

  it('indexes keys by value with a non-reversible id', () => {
    const idx = new ApiKeyIndex<string>();
    const rec = idx.add(FREE_KEY, 'free', 'x');
    expect(idx.lookup(FREE_KEY)).toBe(rec);
    expect(idx.lookup(FREE_KEY_2)).toBeUndefined();
    expect(rec.id).toBe(apiKeyId(FREE_KEY));
    expect(rec.id).toMatch(/^[0-9a-f]{16}$/);
    expect(rec.redacted).toBe('****0001');
  });
});
