import { describe, expect, it } from 'vitest';
import { nextId, uuid } from '../../server/ids.ts';

describe('ids', () => {
  it('are 16 characters of URL-safe base64 of exactly 11 bytes, like AWS connection ids', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50_000; i++) {
      const id = nextId();
      expect(id).toMatch(/^[A-Za-z0-9_-]{14}[AEIMQUYcgkosw048]=$/);
      const bytes = Buffer.from(id, 'base64url');
      expect(bytes.length).toBe(11);
      expect(`${bytes.toString('base64url')}=`).toBe(id);
      seen.add(id);
    }
    expect(seen.size).toBe(50_000);
  });

  it('makes RFC 4122 UUIDs for REST request ids', () => {
    expect(uuid()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
