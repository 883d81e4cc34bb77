import { randomBytes } from 'node:crypto';

/**
 * AWS-style 16-character ids: URL-safe base64 of 11 bytes, ending in "=" (e.g. `Dwz4leekPHcCG6Q=`).
 * 5 random bytes fixed per process + a 6-byte counter seeded at random: unique across restarts
 * and nodes with overwhelming probability, and far cheaper than a UUID per message.
 */
const buf = Buffer.alloc(11);
randomBytes(5).copy(buf, 0);
let counter = randomBytes(4).readUInt32BE(0) * 4096;

export function nextId(): string {
  counter++;
  buf.writeUIntBE(counter % 0x1000000000000, 5, 6);
  return `${buf.toString('base64url')}=`;
}

/** RFC 4122 v4 UUID for REST request ids and management responses. */
export function uuid(): string {
  return crypto.randomUUID();
}

const ID_RE = /^[A-Za-z0-9_-]{15}=$/;
export function isWellFormedConnectionId(id: string): boolean {
  return ID_RE.test(id);
}
