import { describe, expect, it } from 'vitest';
import { INVALID, NEEDS_PARSE, scanTopLevelKey } from '../../server/websocket/json-scan.ts';

/** What route selection sees through JSON.parse: the key's string value, '' when absent, or a marker. */
function reference(text: string, key: string): string | typeof INVALID | 'NONSTRING' {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return INVALID;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'NONSTRING';
  const x = (v as Record<string, unknown>)[key];
  if (x === undefined) return '';
  return typeof x === 'string' ? x : 'NONSTRING';
}

function agrees(text: string, key = 'action'): void {
  const got = scanTopLevelKey(text, key);
  const want = reference(text, key);
  if (got === NEEDS_PARSE) {
    // Always safe: the caller parses. But a plain-string answer must not be missed for simple input.
    return;
  }
  expect({ text, got }).toEqual({ text, got: want });
}

// Deterministic PRNG so a failure is reproducible.
let seed = 12345;
const rnd = () => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
};
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

function randomValue(depth: number): unknown {
  const r = rnd();
  if (depth > 3 || r < 0.3) return pick(['echo', 'join', '', 'a"b', 'tab\there', 'é☃', '\\u0041', 'x'.repeat(20)]);
  if (r < 0.45) return pick([0, -1, 3.14, 1e21, -0.5e-3, 42]);
  if (r < 0.55) return pick([true, false, null]);
  if (r < 0.75) return Array.from({ length: Math.floor(rnd() * 4) }, () => randomValue(depth + 1));
  const o: Record<string, unknown> = {};
  for (let k = Math.floor(rnd() * 4); k > 0; k--) o[pick(['action', 'data', 'a\\ction', 'act', 'n'])] = randomValue(depth + 1);
  return o;
}

function randomText(): string {
  const root = rnd() < 0.8 ? { ...(randomValue(1) as object), action: randomValue(2) } : randomValue(0);
  let s = JSON.stringify(root, null, rnd() < 0.3 ? 2 : undefined) ?? 'null';
  if (rnd() < 0.5) {
    const edits = 1 + Math.floor(rnd() * 3);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(rnd() * (s.length + 1));
      const op = rnd();
      const ch = pick(['"', '{', '}', '[', ']', ',', ':', '\\', ' ', 'a', '1', '-', '.', 'e', '\n', '\u0001', 't']);
      if (op < 0.33) s = s.slice(0, at) + ch + s.slice(at);
      else if (op < 0.66) s = s.slice(0, at) + s.slice(at + 1);
      else s = s.slice(0, at) + ch + s.slice(at + 1);
    }
  }
  return s;
}

describe('scanTopLevelKey agrees with JSON.parse', () => {
  it.each([
    ['{"action":"echo"}', 'echo'],
    ['  {"action" : "echo" , "x": [1, {"action":"inner"}]}  ', 'echo'],
    ['{"x":1}', ''],
    ['{}', ''],
    ['{"action":"a","action":"b"}', 'b'],
    ['{"action":"é☃"}', 'é☃'],
  ])('%s → %s', (text, want) => {
    expect(scanTopLevelKey(text, 'action')).toBe(want);
  });

  it.each(['', '{', '{"action":"echo"', '{"action":"echo"}x', '{"action":echo}', "{'action':'echo'}", '{"action":"a\u0001"}', '{"a":01}', '{"a":1.}', '{"a":-}', '{"a":tru}', '{"a":[1,]}', '{"a":1,}', '{"action":"\\x"}'])(
    'rejects %j as invalid',
    (text) => {
      expect(scanTopLevelKey(text, 'action')).toBe(INVALID);
      expect(reference(text, 'action')).toBe(INVALID);
    },
  );

  it('defers to JSON.parse for non-string values, escapes and non-object roots', () => {
    for (const t of ['plain text', '{"action":1}', '{"action":{"a":1}}', '{"action":"a\\"b"}', '{"act\\u0069on":"x"}', '[1,2]', '"s"', 'null']) {
      expect(scanTopLevelKey(t, 'action')).toBe(NEEDS_PARSE);
    }
  });

  it('matches JSON.parse on 20,000 random and mutated documents', () => {
    for (let k = 0; k < 20_000; k++) agrees(randomText());
  });

  it('compact text without escapes (the indexOf fast path): exact answers on 20,000 documents, mutated too', () => {
    const plain = ['echo', 'join', '', 'x'.repeat(40), 'é☃ 😀', 'a b', '{not:json}', '[1,2]'];
    let answered = 0;
    for (let k = 0; k < 20_000; k++) {
      const o: Record<string, unknown> = {};
      for (let f = Math.floor(rnd() * 3); f > 0; f--) o[pick(['data', 'n', 'act', 'x'])] = rnd() < 0.5 ? pick(plain) : pick([1, [1, 'a', { b: 'c' }], { q: 'r' }, null]);
      o.action = pick(plain);
      let s = JSON.stringify(o);
      if (rnd() < 0.5) {
        const at = Math.floor(rnd() * (s.length + 1));
        const ch = pick(['"', '{', '}', ']', ',', ':', ' ', 'a', '1']);
        s = rnd() < 0.5 ? s.slice(0, at) + ch + s.slice(at) : s.slice(0, at) + s.slice(at + 1);
      }
      const got = scanTopLevelKey(s, 'action');
      const want = reference(s, 'action');
      if (got === NEEDS_PARSE && !s.trimStart().startsWith('{')) continue; // non-object roots always defer
      if (want !== 'NONSTRING') {
        // Escape-free compact text with a string (or absent) action is always answered, never deferred.
        expect({ s, got }).toEqual({ s, got: want });
        answered++;
      } else expect([NEEDS_PARSE, INVALID]).toContain(got);
    }
    expect(answered).toBeGreaterThan(15_000);
  });
});
