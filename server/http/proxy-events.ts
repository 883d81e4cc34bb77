import { clfTime } from '../time.ts';
import {
  commaJoinedMap,
  type GatewayHttpRequest,
  headerValue,
  multiValueMap,
  parseQueryString,
  setOwn,
  singleValueMap,
} from './request.ts';

/**
 * Lambda proxy events for REST/HTTP routes: payload format 1.0 (reference 6.3) and 2.0 (6.4).
 * Pure functions of the request, the route match and per-request options.
 */

/** What the builders need from a route match (`RouteMatch<T>` from route-table.ts fits). */
export interface MatchedRoute {
  routeKey: string;
  resource: string;
  pathParameters: Record<string, string> | null;
}

export interface ProxyEventOptions {
  accountId: string;
  apiId: string;
  stageVariables?: Readonly<Record<string, string>> | undefined;
  /** `requestContext.authorizer`, already in the shape of the payload format */
  authorizer?: Readonly<Record<string, unknown>> | undefined;
  /**
   * REST binary media types (`image/png`, `image/*`, `*\/*`): a body whose Content-Type matches
   * is passed base64-encoded. When undefined: format 1.0 for REST never encodes; format 2.0 and
   * 1.0 on HTTP APIs encode every body whose Content-Type is not text-like (see `isTextMediaType`).
   */
  binaryMediaTypes?: readonly string[] | undefined;
  /** REST's 16-character `extendedRequestId`; defaults to the request id */
  extendedRequestId?: string | undefined;
  /** REST resource id (6 characters); defaults to a stable hash of the route key */
  resourceId?: string | undefined;
}

export interface EventV1Options extends ProxyEventOptions {
  /**
   * `REST` (default): `;` also splits the query string, no `version` field.
   * `HTTP`: an HTTP API with `payloadFormatVersion: "1.0"`: adds `version: "1.0"` and
   * `requestContext.routeKey`, and binary detection as for 2.0.
   */
  flavour?: 'REST' | 'HTTP' | undefined;
}

export interface IdentityV1 {
  accessKey: null;
  accountId: null;
  apiKey: null;
  apiKeyId: null;
  caller: null;
  clientCert: null;
  cognitoAuthenticationProvider: null;
  cognitoAuthenticationType: null;
  cognitoIdentityId: null;
  cognitoIdentityPoolId: null;
  principalOrgId: null;
  sourceIp: string;
  user: null;
  userAgent: string | null;
  userArn: null;
}

export interface RequestContextV1 {
  accountId: string;
  apiId: string;
  authorizer: Record<string, unknown> | null;
  domainName: string;
  domainPrefix: string;
  extendedRequestId: string;
  httpMethod: string;
  identity: IdentityV1;
  path: string;
  protocol: 'HTTP/1.1';
  requestId: string;
  requestTime: string;
  requestTimeEpoch: number;
  resourceId: string;
  resourcePath: string;
  routeKey?: string;
  stage: string;
}

export interface ProxyEventV1 {
  version?: '1.0';
  resource: string;
  path: string;
  httpMethod: string;
  headers: Record<string, string> | null;
  multiValueHeaders: Record<string, string[]> | null;
  queryStringParameters: Record<string, string> | null;
  multiValueQueryStringParameters: Record<string, string[]> | null;
  pathParameters: Record<string, string> | null;
  stageVariables: Record<string, string> | null;
  requestContext: RequestContextV1;
  body: string | null;
  isBase64Encoded: boolean;
}

export interface RequestContextV2 {
  accountId: string;
  apiId: string;
  authorizer?: Record<string, unknown>;
  domainName: string;
  domainPrefix: string;
  http: { method: string; path: string; protocol: 'HTTP/1.1'; sourceIp: string; userAgent: string };
  requestId: string;
  routeKey: string;
  stage: string;
  time: string;
  timeEpoch: number;
}

export interface ProxyEventV2 {
  version: '2.0';
  routeKey: string;
  rawPath: string;
  rawQueryString: string;
  cookies?: string[];
  headers: Record<string, string>;
  queryStringParameters?: Record<string, string>;
  pathParameters?: Record<string, string>;
  stageVariables?: Record<string, string>;
  body?: string;
  isBase64Encoded: boolean;
  requestContext: RequestContextV2;
}

/** Payload format 1.0 (REST, or HTTP APIs with `payloadFormatVersion: "1.0"`). */
export function buildEventV1(req: GatewayHttpRequest, match: MatchedRoute, options: EventV1Options): ProxyEventV1 {
  const http = options.flavour === 'HTTP';
  const query = parseQueryString(req.rawQueryString, { semicolonSeparator: !http });
  const { headers, multiValueHeaders } = headerMapsV1(req.headers);
  const userAgent = headerValue(req.headers, 'user-agent');
  const binaryTypes = options.binaryMediaTypes ?? (http ? undefined : NO_TYPES);
  const body = encodeBody(req.body, headerValue(req.headers, 'content-type'), binaryTypes);
  const requestContext: RequestContextV1 = {
    accountId: options.accountId,
    apiId: options.apiId,
    authorizer: options.authorizer ? { ...options.authorizer } : null,
    domainName: req.domainName,
    domainPrefix: domainPrefix(req.domainName),
    extendedRequestId: options.extendedRequestId ?? req.requestId,
    httpMethod: req.method,
    identity: {
      accessKey: null,
      accountId: null,
      apiKey: null,
      apiKeyId: null,
      caller: null,
      clientCert: null,
      cognitoAuthenticationProvider: null,
      cognitoAuthenticationType: null,
      cognitoIdentityId: null,
      cognitoIdentityPoolId: null,
      principalOrgId: null,
      sourceIp: req.sourceIp,
      user: null,
      userAgent: userAgent ?? null,
      userArn: null,
    },
    path: stagePrefix(req.stage) + req.path,
    protocol: 'HTTP/1.1',
    requestId: req.requestId,
    requestTime: clfTime(req.requestTimeEpoch),
    requestTimeEpoch: req.requestTimeEpoch,
    resourceId: options.resourceId ?? resourceIdFor(match.routeKey),
    resourcePath: match.resource,
    stage: req.stage,
  };
  if (http) requestContext.routeKey = match.routeKey;
  const event: ProxyEventV1 = {
    resource: match.resource,
    path: req.path,
    httpMethod: req.method,
    headers,
    multiValueHeaders,
    queryStringParameters: singleValueMap(query),
    multiValueQueryStringParameters: multiValueMap(query),
    pathParameters: match.pathParameters ? { ...match.pathParameters } : null,
    stageVariables: nonEmptyCopy(options.stageVariables) ?? null,
    requestContext,
    body: body ? body.text : null,
    isBase64Encoded: body ? body.base64 : false,
  };
  return http ? { version: '1.0', ...event } : event;
}

/**
 * Payload format 2.0 (HTTP APIs). Header names are lower-cased and repeats comma-joined; every
 * `Cookie` header is split on ';' into `cookies` and left out of `headers`. Empty cookies, query,
 * path parameters, stage variables and body are omitted, as on AWS.
 */
export function buildEventV2(req: GatewayHttpRequest, match: MatchedRoute, options: ProxyEventOptions): ProxyEventV2 {
  const headers: Record<string, string> = {};
  let cookies: string[] | undefined;
  let userAgent = '';
  let contentType: string | undefined;
  // Names from the transport are lower-case already; anything else is lower-cased here.
  const lowerKnown = req.lowerHeaders !== undefined;
  const list = req.lowerHeaders ?? req.headers;
  for (let i = 0; i < list.length; i++) {
    const pair = list[i]!;
    const name = lowerKnown ? pair[0] : pair[0].toLowerCase();
    const value = pair[1];
    if (name === 'cookie') {
      cookies = splitCookies(value, cookies);
      continue;
    }
    if (name === 'user-agent') userAgent = value;
    else if (name === 'content-type') contentType = value;
    // Only an own value is a string: inherited members (`constructor`, `__proto__`) are not.
    const prev = headers[name];
    if (typeof prev === 'string') headers[name] = `${prev},${value}`;
    else setOwn(headers, name, value);
  }
  const query = req.rawQueryString === '' ? null : commaJoinedMap(parseQueryString(req.rawQueryString));
  const body = req.body.length === 0 ? undefined : encodeBody(req.body, contentType, options.binaryMediaTypes);
  const requestContext: RequestContextV2 = {
    accountId: options.accountId,
    apiId: options.apiId,
    domainName: req.domainName,
    domainPrefix: domainPrefix(req.domainName),
    http: {
      method: req.method,
      path: stagePrefix(req.stage) + req.path,
      protocol: 'HTTP/1.1',
      sourceIp: req.sourceIp,
      userAgent,
    },
    requestId: req.requestId,
    routeKey: match.routeKey,
    stage: req.stage,
    time: clfTime(req.requestTimeEpoch),
    timeEpoch: req.requestTimeEpoch,
  };
  if (options.authorizer) requestContext.authorizer = { ...options.authorizer };
  const event: ProxyEventV2 = {
    version: '2.0',
    routeKey: match.routeKey,
    rawPath: req.rawPath,
    rawQueryString: req.rawQueryString,
    headers,
    isBase64Encoded: body ? body.base64 : false,
    requestContext,
  };
  if (cookies !== undefined) event.cookies = cookies;
  if (query) event.queryStringParameters = query;
  if (match.pathParameters) event.pathParameters = { ...match.pathParameters };
  const stageVariables = nonEmptyCopy(options.stageVariables);
  if (stageVariables) event.stageVariables = stageVariables;
  if (body) event.body = body.text;
  return event;
}

/** Appends the non-empty `;`-separated cookies of one Cookie header; the list is created on the first one. */
function splitCookies(value: string, cookies: string[] | undefined): string[] | undefined {
  let out = cookies;
  for (const part of value.split(';')) {
    const c = part.trim();
    if (c === '') continue;
    if (out === undefined) out = [c];
    else out.push(c);
  }
  return out;
}

const NO_TYPES: readonly string[] = Object.freeze([]);

/**
 * 1.0 header maps. Names group case-insensitively under the first spelling seen; `headers`
 * keeps the last value, `multiValueHeaders` all of them. Both null when there are no headers.
 */
function headerMapsV1(pairs: ReadonlyArray<readonly [string, string]>): {
  headers: Record<string, string> | null;
  multiValueHeaders: Record<string, string[]> | null;
} {
  if (pairs.length === 0) return { headers: null, multiValueHeaders: null };
  const groups = new Map<string, { name: string; values: string[] }>();
  for (const [name, value] of pairs) {
    const lower = name.toLowerCase();
    const g = groups.get(lower);
    if (g) g.values.push(value);
    else groups.set(lower, { name, values: [value] });
  }
  const headers: Record<string, string> = {};
  const multiValueHeaders: Record<string, string[]> = {};
  for (const { name, values } of groups.values()) {
    setOwn(headers, name, values[values.length - 1] as string);
    setOwn(multiValueHeaders, name, values);
  }
  return { headers, multiValueHeaders };
}

/** The URL prefix of a stage in `requestContext.path` / `http.path`; none for `$default`. */
function stagePrefix(stage: string): string {
  return stage === '$default' || stage === '' ? '' : `/${stage}`;
}

const IP_LITERAL = /^(?:\d{1,3}(?:\.\d{1,3}){3}|\[?[0-9a-fA-F:]+\]?)$/;

/** First label of the domain name (`abc` of `abc.execute-api...`); an IP address stays whole. */
export function domainPrefix(domainName: string): string {
  // Every request to one host asks for the same answer: remember the last one.
  if (domainName === lastDomain) return lastPrefix;
  const dot = domainName.indexOf('.');
  const prefix = dot < 0 || IP_LITERAL.test(domainName) ? domainName : domainName.slice(0, dot);
  lastDomain = domainName;
  lastPrefix = prefix;
  return prefix;
}

let lastDomain = '';
let lastPrefix = '';

function nonEmptyCopy(map: Readonly<Record<string, string>> | undefined): Record<string, string> | undefined {
  if (!map) return undefined;
  // Spread copies own properties (a `__proto__` key included) without invoking setters.
  for (const k in map) if (Object.hasOwn(map, k)) return { ...map };
  return undefined;
}

const resourceIds = new Map<string, string>();
const RESOURCE_ID_CACHE_MAX = 10_000;

/** A stable 6-character lower-case id for a route key (REST resource ids look like `2gxmpl`). */
export function resourceIdFor(routeKey: string): string {
  let id = resourceIds.get(routeKey);
  if (id !== undefined) return id;
  // FNV-1a, 32 bit.
  let h = 0x811c9dc5;
  for (let i = 0; i < routeKey.length; i++) {
    h ^= routeKey.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  id = h.toString(36).padStart(6, '0').slice(-6);
  if (resourceIds.size < RESOURCE_ID_CACHE_MAX) resourceIds.set(routeKey, id);
  return id;
}

/**
 * Media types passed as text when no binary media types are configured (HTTP APIs): `text/*`,
 * JSON, XML and JavaScript, including `+json`/`+xml` suffixes. Everything else, form posts and
 * bodies without a Content-Type included, is base64-encoded, as HTTP APIs do.
 */
export function isTextMediaType(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const mt = mediaType(contentType);
  if (mt.startsWith('text/')) return true;
  if (mt === 'application/json' || mt === 'application/xml' || mt === 'application/javascript') return true;
  return mt.endsWith('+json') || mt.endsWith('+xml');
}

/**
 * Whether a Content-Type matches a list of binary media types: exact `type/subtype`,
 * `type/*` or `*\/*`, case-insensitive, parameters ignored. A missing Content-Type matches only `*\/*`.
 */
export function matchesMediaType(contentType: string | undefined, types: readonly string[]): boolean {
  if (types.length === 0) return false;
  const mt = contentType === undefined ? '' : mediaType(contentType);
  const slash = mt.indexOf('/');
  const major = slash < 0 ? mt : mt.slice(0, slash);
  for (const t of types) {
    const want = t.trim().toLowerCase();
    if (want === '*/*') return true;
    if (mt === '') continue;
    if (want === mt) return true;
    if (want.endsWith('/*') && want.slice(0, -2) === major) return true;
  }
  return false;
}

function mediaType(contentType: string): string {
  const semi = contentType.indexOf(';');
  return (semi < 0 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
}

/** undefined for an empty body. */
function encodeBody(
  body: Buffer,
  contentType: string | undefined,
  binaryMediaTypes: readonly string[] | undefined,
): { text: string; base64: boolean } | undefined {
  if (body.length === 0) return undefined;
  const binary =
    binaryMediaTypes === undefined ? !isTextMediaType(contentType) : matchesMediaType(contentType, binaryMediaTypes);
  return binary ? { text: body.toString('base64'), base64: true } : { text: body.toString('utf8'), base64: false };
}
