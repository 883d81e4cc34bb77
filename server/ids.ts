import { randomBytes } from 'node:crypto';

/**
 * AWS-style 16-character ids: 15 URL-safe base64 characters and a final "=" (the shape of
 * base64 of 11 bytes, e.g. `Dwz4leekPHcCG6Q=`). The first 9 characters (54 bits) are random per
 * process; the next 6 (36 bits) are a counter seeded at random. Unique across restarts and
 * nodes with overwhelming probability, and a few table lookups instead of a UUID per message.
 */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const PAIRS: string[] = [];
for (let i = 0; i < 4096; i++) PAIRS.push(ALPHABET[i >> 6]! + ALPHABET[i & 63]!);

const prefix = randomBytes(7).toString('base64url').slice(0, 9);
const COUNTER_SPACE = 2 ** 36;
let counter = randomBytes(4).readUInt32BE(0) * 16;

export function nextId(): string {
  counter = (counter + 1) % COUNTER_SPACE;
  const hi = Math.floor(counter / 16777216); // top 12 bits
  const lo = counter % 16777216; // low 24 bits
  return `${prefix}${PAIRS[hi]}${PAIRS[lo >> 12]}${PAIRS[lo & 4095]}=`;
}

/** RFC 4122 v4 UUID for REST request ids and management responses. */
export function uuid(): string {
  return crypto.randomUUID();
}
