/**
 * Lua sources for the cluster-wide throttling store (registered once per client with
 * ioredis `defineCommand`, so they run as EVALSHA). Each script touches a single key, so it is
 * atomic and valid in Redis Cluster; the keys carry a `{...}` hash tag anyway so that any
 * future companion key of the same bucket lands in the same slot.
 */

/** Command names as defined on the ioredis client (unique to avoid clashes with other modules). */
export const LEASE_COMMAND = 'gatehouseThrottleLease';
export const QUOTA_COMMAND = 'gatehouseQuotaReserve';

/**
 * Token bucket lease.
 * KEYS[1]  bucket hash { t = tokens (float), ts = last refill in µs of Redis TIME }
 * ARGV[1]  rate (tokens/s, float)   ARGV[2] burst (capacity)
 * ARGV[3]  want: tokens to lease (>= 0)
 * ARGV[4]  owed: tokens the node already admitted on credit and now charges (may be negative
 *          to give unspent tokens back); charged unconditionally, the balance floors at -burst
 * Returns  { granted (integer), waitMs: ms until one token is available when granted < want
 *          (0 otherwise, -1 when the rate is 0) }
 * The clock is Redis TIME, so node clock skew never changes the refill; an absent key is a
 * full bucket, and the key expires once it would be full again.
 */
export const LEASE_LUA = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local owed = tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local v = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
if now > ts and rate > 0 then
  tokens = tokens + (now - ts) * rate / 1000000
end
if tokens > burst then tokens = burst end
tokens = tokens - owed
if tokens < -burst then tokens = -burst end
if tokens > burst then tokens = burst end
local granted = 0
if want > 0 and tokens >= 1 then
  granted = math.min(want, math.floor(tokens))
  tokens = tokens - granted
end
local wait = 0
if granted < want then
  if rate > 0 then
    wait = math.ceil((1 - tokens) * 1000 / rate)
    if wait < 1 then wait = 1 end
  else
    wait = -1
  end
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%.17g', now))
local ttl = 86400000
if rate > 0 then ttl = math.ceil((burst - tokens) * 1000 / rate) + 1000 end
if ttl > 86400000 then ttl = 86400000 end
redis.call('PEXPIRE', KEYS[1], ttl)
return { granted, wait }
`;

/**
 * Quota reservation (INCRBY + PEXPIREAT, atomically).
 * KEYS[1]  counter of one key for one period (the period start is part of the key name)
 * ARGV[1]  limit   ARGV[2] want: units to reserve   ARGV[3] owed: units already admitted on
 *          credit (charged unconditionally; negative gives unspent units back)
 * ARGV[4]  expire-at, epoch ms (period end plus slack for node clock skew)
 * Returns  { granted, used (counter after the call) }; granted < want means the period's quota
 *          is exhausted for everyone.
 */
export const QUOTA_LUA = `
local limit = tonumber(ARGV[1])
local want = tonumber(ARGV[2])
local owed = tonumber(ARGV[3])
local used = tonumber(redis.call('GET', KEYS[1]) or '0') + owed
if used < 0 then
  owed = owed - used
  used = 0
end
local granted = 0
local room = limit - used
if want > 0 and room > 0 then granted = math.min(want, room) end
local incr = owed + granted
if incr ~= 0 then
  used = redis.call('INCRBY', KEYS[1], incr)
  redis.call('PEXPIREAT', KEYS[1], ARGV[4])
end
return { granted, used }
`;
