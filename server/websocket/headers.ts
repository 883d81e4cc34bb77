import { setOwn } from '../http/request.ts';

/**
 * uWS hands header names lower-cased; AWS events carry them as the client sent them. Clients
 * send canonical casing for the well-known ones, so restore that (handlers read
 * `event.headers['Sec-WebSocket-Protocol']`, as in AWS's own subprotocol example).
 */
const SPECIAL: ReadonlyMap<string, string> = new Map(Object.entries({
  'sec-websocket-key': 'Sec-WebSocket-Key',
  'sec-websocket-version': 'Sec-WebSocket-Version',
  'sec-websocket-extensions': 'Sec-WebSocket-Extensions',
  'sec-websocket-protocol': 'Sec-WebSocket-Protocol',
  'x-amzn-trace-id': 'X-Amzn-Trace-Id',
  'x-api-key': 'x-api-key',
  'www-authenticate': 'WWW-Authenticate',
  etag: 'ETag',
  dnt: 'DNT',
}));
const cache = new Map<string, string>();

export function canonicalHeaderName(lower: string): string {
  const special = SPECIAL.get(lower); // a Map: a header named `constructor` is just a header
  if (special) return special;
  let c = cache.get(lower);
  if (c === undefined) {
    c = lower.replace(/(^|-)([a-z])/g, (_m, dash: string, ch: string) => dash + ch.toUpperCase());
    if (cache.size < 10_000) cache.set(lower, c);
  }
  return c;
}

export interface HeaderMaps {
  headers: Record<string, string>;
  multiValueHeaders: Record<string, string[]>;
}

export function headerMaps(pairs: ReadonlyArray<[string, string]>): HeaderMaps {
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (const [k, v] of pairs) {
    const name = canonicalHeaderName(k);
    setOwn(headers, name, v);
    const list = Object.hasOwn(multiValueHeaders, name) ? multiValueHeaders[name] : undefined;
    if (list) list.push(v);
    else setOwn(multiValueHeaders, name, [v]);
  }
  return { headers, multiValueHeaders };
}

export interface QueryMaps {
  queryStringParameters: Record<string, string>;
  multiValueQueryStringParameters: Record<string, string[]>;
}

/** Decoded query maps, or undefined when the URL had no query (AWS omits the keys then). */
export function queryMaps(query: string): QueryMaps | undefined {
  if (!query) return undefined;
  const queryStringParameters: Record<string, string> = {};
  const multiValueQueryStringParameters: Record<string, string[]> = {};
  for (const part of query.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const k = safeDecode(eq < 0 ? part : part.slice(0, eq));
    const v = eq < 0 ? '' : safeDecode(part.slice(eq + 1));
    setOwn(queryStringParameters, k, v);
    const list = Object.hasOwn(multiValueQueryStringParameters, k) ? multiValueQueryStringParameters[k] : undefined;
    if (list) list.push(v);
    else setOwn(multiValueQueryStringParameters, k, [v]);
  }
  return { queryStringParameters, multiValueQueryStringParameters };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}
