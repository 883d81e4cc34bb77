import { describe, expect, it } from 'vitest';
import { canonicalHeaderName, headerMaps } from '../../server/websocket/headers.ts';

describe('canonical header names for AWS-style events', () => {
  it('restores the usual casing and the special cases', () => {
    expect(canonicalHeaderName('content-type')).toBe('Content-Type');
    expect(canonicalHeaderName('sec-websocket-protocol')).toBe('Sec-WebSocket-Protocol');
    expect(canonicalHeaderName('x-api-key')).toBe('x-api-key');
    expect(canonicalHeaderName('etag')).toBe('ETag');
  });

  it('treats names that are also Object.prototype members as plain headers', () => {
    for (const name of ['constructor', 'tostring', '__proto__', 'hasownproperty', 'valueof']) {
      expect(typeof canonicalHeaderName(name)).toBe('string');
    }
    const maps = headerMaps([
      ['constructor', 'a'],
      ['__proto__', 'b'],
      ['host', 'h'],
    ]);
    expect(maps.headers.Constructor).toBe('a');
    expect(Object.hasOwn(maps.headers, '__proto__')).toBe(true);
    expect(Object.getPrototypeOf(maps.headers)).toBe(Object.prototype);
    expect(maps.multiValueHeaders.Host).toEqual(['h']);
  });
});
