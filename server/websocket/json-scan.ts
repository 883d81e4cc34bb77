/**
 * Route selection without JSON.parse. For the common expression `$request.body.<key>` the
 * gateway only needs two facts about a text message: is it valid JSON, and what is the
 * top-level `<key>` when it is a plain string. This single pass validates the whole text with
 * JSON's grammar (so invalid JSON still goes to `$default`, exactly as with JSON.parse) and
 * captures that value, without building any object. It answers NEEDS_PARSE when the value is
 * not a plain string (number, object, escaped string ...) or nesting is unusually deep; the
 * caller then falls back to JSON.parse, whose result is authoritative.
 */
export const INVALID = 0;
export const NEEDS_PARSE = 1;

/** Returns the captured string value ('' when absent or the root is not an object), INVALID or NEEDS_PARSE. */
export function scanTopLevelKey(text: string, key: string): string | typeof INVALID | typeof NEEDS_PARSE {
  // Most messages are compact JSON without escapes: then every string ends at the next quote,
  // found natively (indexOf) instead of one character at a time.
  plainText = !ESCAPE_OR_CONTROL.test(text);
  const n = text.length;
  let i = skipWs(text, 0, n);
  if (i >= n) return INVALID;
  // Arrays and scalars at the root are rare: JSON.parse and the general lookup handle them.
  if (text.charCodeAt(i) !== 123 /* { */) return NEEDS_PARSE;
  let result: string | typeof NEEDS_PARSE = '';
  i = skipWs(text, i + 1, n);
  if (text.charCodeAt(i) === 125 /* } */) return skipWs(text, i + 1, n) === n ? '' : INVALID;
  for (;;) {
    if (text.charCodeAt(i) !== 34) return INVALID;
    const keyStart = i + 1;
    const keyEnd = skipString(text, i, n);
    if (keyEnd < 0) return INVALID;
    // An escaped key could still spell `key`: only JSON.parse can tell.
    const escapedKey = sawEscape;
    const plainKey = !escapedKey && keyEnd - 1 - keyStart === key.length && text.startsWith(key, keyStart);
    i = skipWs(text, keyEnd, n);
    if (text.charCodeAt(i) !== 58 /* : */) return INVALID;
    i = skipWs(text, i + 1, n);
    if (i >= n) return INVALID;
    const valueIsString = text.charCodeAt(i) === 34;
    const valueStart = i;
    const end = skipValue(text, i, n, 1);
    if (end === -1) return INVALID;
    if (end === -2) return NEEDS_PARSE;
    if (escapedKey) result = NEEDS_PARSE;
    else if (plainKey) {
      // Duplicate keys: the last one wins, as with JSON.parse.
      result = valueIsString && !sawEscape ? text.slice(valueStart + 1, end - 1) : NEEDS_PARSE;
    }
    i = skipWs(text, end, n);
    const c = text.charCodeAt(i);
    if (c === 44 /* , */) {
      i = skipWs(text, i + 1, n);
      continue;
    }
    if (c === 125 /* } */) return skipWs(text, i + 1, n) === n ? result : INVALID;
    return INVALID;
  }
}

function skipWs(t: string, i: number, n: number): number {
  while (i < n) {
    const c = t.charCodeAt(i);
    if (c !== 32 && c !== 10 && c !== 13 && c !== 9) break;
    i++;
  }
  return i;
}

/** Set by skipString: whether the string just skipped contained an escape. */
let sawEscape = false;

/** A backslash or a control character (raw control characters are invalid inside strings). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const ESCAPE_OR_CONTROL = /[\u0000-\u001f\\]/;
/** Set per text by scanTopLevelKey: the text has neither (see ESCAPE_OR_CONTROL). */
let plainText = false;

/** One past the closing quote, or -1. `i` is at the opening quote. */
function skipString(t: string, i: number, n: number): number {
  sawEscape = false;
  if (plainText) {
    const q = t.indexOf('"', i + 1);
    return q < 0 ? -1 : q + 1;
  }
  i++;
  while (i < n) {
    const c = t.charCodeAt(i);
    if (c === 34) return i + 1;
    if (c < 32) return -1;
    if (c === 92 /* \ */) {
      sawEscape = true;
      const e = t.charCodeAt(i + 1);
      if (e === 117 /* u */) {
        for (let k = 2; k < 6; k++) if (!isHex(t.charCodeAt(i + k))) return -1;
        i += 6;
        continue;
      }
      if (e === 34 || e === 92 || e === 47 || e === 98 || e === 102 || e === 110 || e === 114 || e === 116) {
        i += 2;
        continue;
      }
      return -1;
    }
    i++;
  }
  return -1;
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

const MAX_DEPTH = 64;

/** One past the value starting at `i`, -1 when invalid, -2 when too deep to bother (use JSON.parse). */
function skipValue(t: string, i: number, n: number, depth: number): number {
  const c = t.charCodeAt(i);
  if (c === 34) return skipString(t, i, n);
  if (c === 123 || c === 91) {
    if (depth >= MAX_DEPTH) return -2;
    const close = c === 123 ? 125 : 93;
    i = skipWs(t, i + 1, n);
    if (t.charCodeAt(i) === close) return i + 1;
    for (;;) {
      if (c === 123) {
        if (t.charCodeAt(i) !== 34) return -1;
        i = skipString(t, i, n);
        if (i < 0) return -1;
        i = skipWs(t, i, n);
        if (t.charCodeAt(i) !== 58) return -1;
        i = skipWs(t, i + 1, n);
      }
      if (i >= n) return -1;
      i = skipValue(t, i, n, depth + 1);
      if (i < 0) return i;
      i = skipWs(t, i, n);
      const d = t.charCodeAt(i);
      if (d === 44) {
        i = skipWs(t, i + 1, n);
        continue;
      }
      return d === close ? i + 1 : -1;
    }
  }
  if (c === 116) return t.startsWith('true', i) ? i + 4 : -1;
  if (c === 102) return t.startsWith('false', i) ? i + 5 : -1;
  if (c === 110) return t.startsWith('null', i) ? i + 4 : -1;
  return skipNumber(t, i, n);
}

function skipNumber(t: string, i: number, n: number): number {
  if (t.charCodeAt(i) === 45) i++;
  const first = t.charCodeAt(i);
  if (first === 48) i++;
  else if (first >= 49 && first <= 57) {
    i++;
    while (i < n && isDigit(t.charCodeAt(i))) i++;
  } else return -1;
  if (t.charCodeAt(i) === 46 /* . */) {
    i++;
    if (!isDigit(t.charCodeAt(i))) return -1;
    while (i < n && isDigit(t.charCodeAt(i))) i++;
  }
  const e = t.charCodeAt(i);
  if (e === 101 || e === 69) {
    i++;
    const s = t.charCodeAt(i);
    if (s === 43 || s === 45) i++;
    if (!isDigit(t.charCodeAt(i))) return -1;
    while (i < n && isDigit(t.charCodeAt(i))) i++;
  }
  return i;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
