import { randomBytes } from 'node:crypto';

/**
 * AWS-style 16-character ids: URL-safe base64 of 11 bytes (88 bits), so 15 characters of which
 * the last carries only 4 bits, then "=" (e.g. `Dwz4leekPHcCG6Q=`). The first 9 characters
 * (54 bits) are random per process; the next 6 hold a 34-bit counter seeded at random. Unique
 * across restarts and nodes with overwhelming probability, and a few table lookups instead of
 * a UUID per message.
 */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** Characters whose low 2 bits are zero: the last character of base64 of 11 bytes. */
const LAST = 'AEIMQUYcgkosw048';
const PAIRS: string[] = [];
for (let i = 0; i < 4096; i++) PAIRS.push(ALPHABET[i >> 6]! + ALPHABET[i & 63]!);

const prefix = randomBytes(7).toString('base64url').slice(0, 9);
const COUNTER_SPACE = 2 ** 34;
let counter = randomBytes(4).readUInt32BE(0) * 4;

export function nextId(): string {
  counter = (counter + 1) % COUNTER_SPACE;
  // 34 bits: two character pairs (12 bits each), one character (6 bits), one last character (4 bits).
  const c0 = Math.floor(counter / 2 ** 22); // bits 33..22 (12 bits)
  const c1 = Math.floor(counter / 1024) % 4096; // bits 21..10 (12 bits)
  const c2 = Math.floor(counter / 16) % 64; // bits 9..4 (6 bits)
  return `${prefix}${PAIRS[c0]}${PAIRS[c1]}${ALPHABET[c2]}${LAST[counter % 16]}=`;
}

/** RFC 4122 v4 UUID for REST request ids and management responses. */
export function uuid(): string {
  return crypto.randomUUID();
}
