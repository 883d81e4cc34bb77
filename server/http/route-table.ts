import { pathSegments, setOwn } from './request.ts';

/**
 * HTTP route table: route keys `"METHOD /path"` (with `{param}` and a trailing greedy
 * `{name+}`) and `$default`, compiled once into a segment trie (reference 6.1).
 *
 * Selection, most specific first:
 *   1. a full (non-greedy) path match whose node has the request method,
 *   2. the same node with `ANY`,
 *      (1–2 are tried node by node, a static segment before `{param}` at each level, backtracking
 *      when a branch does not lead to a full match),
 *   3. a greedy `{proxy+}` match with the request method, then 4. with `ANY` — the greedy node
 *      with the longest matched prefix wins, a static prefix before a `{param}` prefix,
 *   5. `$default`.
 * `{proxy+}` needs at least one segment, so `/a/{proxy+}` does not match `/a`.
 *
 * `match` takes the normalised, already decoded path (`GatewayHttpRequest.path`); parameter values
 * are those decoded segments, never decoded again. Empty segments are ignored, so a trailing
 * slash matches the same route as no trailing slash. Static segments compare case-sensitively.
 */

export const HTTP_ROUTE_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'ANY'] as const;
export type HttpRouteMethod = (typeof HTTP_ROUTE_METHODS)[number];

export const DEFAULT_ROUTE_KEY = '$default';

export interface RouteMatch<T> {
  route: T;
  /** the route key as configured, e.g. `GET /items/{id}` or `$default` */
  routeKey: string;
  /** the path template (`/items/{id}`); for `$default`, the request path */
  resource: string;
  /** null when the route has no parameters */
  pathParameters: Record<string, string> | null;
}

export interface RouteNotFound {
  notFound: true;
}

export type RouteLookup<T> = RouteMatch<T> | RouteNotFound;

export type RouteSegment =
  | { kind: 'static'; value: string }
  | { kind: 'param'; name: string }
  | { kind: 'greedy'; name: string };

export type ParsedRouteKey =
  | { kind: 'default' }
  | { kind: 'route'; method: HttpRouteMethod; path: string; segments: RouteSegment[] };

/** A route key that cannot be compiled; `message` says why, for config validation output. */
export class RouteKeyError extends Error {
  readonly routeKey: string;
  constructor(routeKey: string, reason: string) {
    super(`invalid route key ${JSON.stringify(routeKey)}: ${reason}`);
    this.name = 'RouteKeyError';
    this.routeKey = routeKey;
  }
}

const METHOD_SET: ReadonlySet<string> = new Set(HTTP_ROUTE_METHODS);
/** Characters API Gateway allows in a static path segment. */
const STATIC_SEGMENT = /^[A-Za-z0-9_\-.,:]+$/;
const PARAM_SEGMENT = /^\{([A-Za-z0-9_-]+)\}$/;
const GREEDY_SEGMENT = /^\{([A-Za-z0-9_-]+)\+\}$/;

/** Parses and validates one route key; throws `RouteKeyError`. */
export function parseRouteKey(routeKey: string): ParsedRouteKey {
  if (routeKey === DEFAULT_ROUTE_KEY) return { kind: 'default' };
  const space = routeKey.indexOf(' ');
  if (space < 0) {
    throw new RouteKeyError(routeKey, 'expected "METHOD /path" (e.g. "GET /items/{id}") or "$default"');
  }
  const method = routeKey.slice(0, space);
  const path = routeKey.slice(space + 1);
  if (!METHOD_SET.has(method)) {
    const hint = METHOD_SET.has(method.toUpperCase()) ? ` (write it in upper case: ${method.toUpperCase()})` : '';
    throw new RouteKeyError(routeKey, `unknown method "${method}"${hint}; use one of ${HTTP_ROUTE_METHODS.join(', ')}`);
  }
  if (!path.startsWith('/')) throw new RouteKeyError(routeKey, 'the path must start with "/" after exactly one space');
  if (path !== '/' && path.endsWith('/')) throw new RouteKeyError(routeKey, 'the path must not end with "/"');
  const segments: RouteSegment[] = [];
  const names = new Set<string>();
  const raw = path === '/' ? [] : path.slice(1).split('/');
  raw.forEach((seg, i) => {
    if (seg === '') throw new RouteKeyError(routeKey, 'empty path segment ("//")');
    const greedy = GREEDY_SEGMENT.exec(seg);
    const param = greedy ? null : PARAM_SEGMENT.exec(seg);
    const name = greedy?.[1] ?? param?.[1];
    if (name !== undefined) {
      if (names.has(name)) throw new RouteKeyError(routeKey, `path parameter "${name}" appears twice`);
      names.add(name);
      if (greedy) {
        if (i !== raw.length - 1) {
          throw new RouteKeyError(routeKey, `greedy parameter "{${name}+}" must be the last path segment`);
        }
        segments.push({ kind: 'greedy', name });
      } else {
        segments.push({ kind: 'param', name });
      }
      return;
    }
    if (seg.includes('{') || seg.includes('}')) {
      throw new RouteKeyError(
        routeKey,
        `segment "${seg}": a parameter must be a whole segment, "{name}" or "{name+}", name of [A-Za-z0-9_-]`,
      );
    }
    if (seg === '.' || seg === '..') throw new RouteKeyError(routeKey, `segment "${seg}" is not allowed`);
    if (!STATIC_SEGMENT.test(seg)) {
      throw new RouteKeyError(routeKey, `segment "${seg}" may only contain A-Z a-z 0-9 _ - . , :`);
    }
    segments.push({ kind: 'static', value: seg });
  });
  return { kind: 'route', method: method as HttpRouteMethod, path, segments };
}

/** The problem with a route key, or undefined when it is valid (for schema-style validation). */
export function routeKeyProblem(routeKey: string): string | undefined {
  try {
    parseRouteKey(routeKey);
    return undefined;
  } catch (err) {
    if (err instanceof RouteKeyError) return err.message;
    throw err;
  }
}

interface Entry<T> {
  route: T;
  routeKey: string;
  resource: string;
  /** names of the `{param}` segments, in path order */
  paramNames: readonly string[];
  /** name of the greedy parameter, for entries stored under `Node.greedy` */
  greedyName: string | undefined;
}

interface Node<T> {
  statics: Map<string, Node<T>> | undefined;
  param: Node<T> | undefined;
  /** routes ending exactly here, by method (incl. ANY) */
  methods: Map<string, Entry<T>> | undefined;
  /** routes ending with a greedy segment below this node, by method (incl. ANY) */
  greedy: Map<string, Entry<T>> | undefined;
}

const newNode = <T>(): Node<T> => ({ statics: undefined, param: undefined, methods: undefined, greedy: undefined });

interface Found<T> {
  entry: Entry<T>;
  params: string[];
  greedyValue: string | undefined;
}

export class RouteTable<T> {
  readonly #root: Node<T> = newNode<T>();
  #default: Entry<T> | undefined;
  #hasGreedy = false;
  #size = 0;
  /** shape key (`GET /a/{}/{+}`) → route key, to report conflicts */
  readonly #shapes = new Map<string, string>();
  /**
   * Paths made only of static segments (`/items/new`) → the frozen matches of their node, by
   * method (incl. ANY). Such a node is always the first full match `findExact` reaches (static
   * before `{param}` at every level), so a hit here is the answer, without splitting the path.
   */
  readonly #staticPaths = new Map<string, Map<string, RouteMatch<T>>>();

  /** Compiles all routes; throws `RouteKeyError` for an invalid or conflicting key. */
  constructor(routes: Iterable<readonly [string, T]> | Readonly<Record<string, T>>) {
    const list: Iterable<readonly [string, T]> = isIterable(routes) ? routes : Object.entries(routes);
    for (const [key, route] of list) this.#add(key, route);
  }

  get size(): number {
    return this.#size;
  }

  get hasDefaultRoute(): boolean {
    return this.#default !== undefined;
  }

  #add(routeKey: string, route: T): void {
    const parsed = parseRouteKey(routeKey);
    if (parsed.kind === 'default') {
      if (this.#default) throw new RouteKeyError(routeKey, 'defined twice');
      this.#default = { route, routeKey, resource: '', paramNames: [], greedyName: undefined };
      this.#size++;
      return;
    }
    const shape = `${parsed.method} /${parsed.segments
      .map((s) => (s.kind === 'static' ? s.value : s.kind === 'param' ? '{}' : '{+}'))
      .join('/')}`;
    const clash = this.#shapes.get(shape);
    if (clash !== undefined) {
      throw new RouteKeyError(
        routeKey,
        clash === routeKey ? 'defined twice' : `conflicts with "${clash}" (same method and path shape)`,
      );
    }
    let node = this.#root;
    const paramNames: string[] = [];
    let greedyName: string | undefined;
    for (const seg of parsed.segments) {
      if (seg.kind === 'static') {
        node.statics ??= new Map();
        let next = node.statics.get(seg.value);
        if (!next) {
          next = newNode<T>();
          node.statics.set(seg.value, next);
        }
        node = next;
      } else if (seg.kind === 'param') {
        node.param ??= newNode<T>();
        node = node.param;
        paramNames.push(seg.name);
      } else {
        greedyName = seg.name;
      }
    }
    const entry: Entry<T> = { route, routeKey, resource: parsed.path, paramNames, greedyName };
    if (greedyName !== undefined) {
      node.greedy ??= new Map();
      node.greedy.set(parsed.method, entry);
      this.#hasGreedy = true;
    } else {
      node.methods ??= new Map();
      node.methods.set(parsed.method, entry);
      if (paramNames.length === 0) {
        let byMethod = this.#staticPaths.get(parsed.path);
        if (!byMethod) {
          byMethod = new Map();
          this.#staticPaths.set(parsed.path, byMethod);
        }
        byMethod.set(parsed.method, Object.freeze({ route, routeKey, resource: parsed.path, pathParameters: null }));
      }
    }
    this.#shapes.set(shape, routeKey);
    this.#size++;
  }

  /** `method` must be upper-case; `path` is the normalised, decoded request path. */
  match(method: string, path: string): RouteLookup<T> {
    const byMethod = this.#staticPaths.get(path);
    if (byMethod !== undefined) {
      const hit = byMethod.get(method) ?? byMethod.get('ANY');
      if (hit !== undefined) return hit;
    }
    const segs = pathSegments(path);
    const params: string[] = [];
    const exact = findExact(this.#root, segs, 0, params, method);
    if (exact) return toMatch(exact);
    if (this.#hasGreedy) {
      const best: GreedyBest<T> = { found: undefined, depth: -1 };
      findGreedy(this.#root, segs, 0, params, method, best);
      if (best.found) return toMatch(best.found);
    }
    if (this.#default) {
      return { route: this.#default.route, routeKey: this.#default.routeKey, resource: path, pathParameters: null };
    }
    return NOT_FOUND;
  }
}

/** Compiles a route table; throws `RouteKeyError` for an invalid or conflicting key. */
export function compileRouteTable<T>(routes: Iterable<readonly [string, T]> | Readonly<Record<string, T>>): RouteTable<T> {
  return new RouteTable<T>(routes);
}

const NOT_FOUND: RouteNotFound = Object.freeze({ notFound: true as const });

function isIterable<T>(v: Iterable<readonly [string, T]> | Readonly<Record<string, T>>): v is Iterable<readonly [string, T]> {
  return typeof (v as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function';
}

function pick<T>(table: Map<string, Entry<T>> | undefined, method: string): Entry<T> | undefined {
  if (!table) return undefined;
  return table.get(method) ?? table.get('ANY');
}

function findExact<T>(node: Node<T>, segs: readonly string[], i: number, params: string[], method: string): Found<T> | undefined {
  if (i === segs.length) {
    const entry = pick(node.methods, method);
    return entry ? { entry, params: params.slice(), greedyValue: undefined } : undefined;
  }
  const seg = segs[i] as string;
  const child = node.statics?.get(seg);
  if (child) {
    const hit = findExact(child, segs, i + 1, params, method);
    if (hit) return hit;
  }
  if (node.param) {
    params.push(seg);
    const hit = findExact(node.param, segs, i + 1, params, method);
    params.pop();
    if (hit) return hit;
  }
  return undefined;
}

interface GreedyBest<T> {
  found: Found<T> | undefined;
  depth: number;
}

/** Visits every trie node on the request path (static before param) and keeps the deepest usable greedy route. */
function findGreedy<T>(
  node: Node<T>,
  segs: readonly string[],
  i: number,
  params: string[],
  method: string,
  best: GreedyBest<T>,
): void {
  if (i >= segs.length) return; // a greedy segment needs at least one more segment
  if (i > best.depth) {
    const entry = pick(node.greedy, method);
    if (entry) {
      best.found = { entry, params: params.slice(), greedyValue: segs.slice(i).join('/') };
      best.depth = i;
    }
  }
  const seg = segs[i] as string;
  const child = node.statics?.get(seg);
  if (child) findGreedy(child, segs, i + 1, params, method, best);
  if (node.param) {
    params.push(seg);
    findGreedy(node.param, segs, i + 1, params, method, best);
    params.pop();
  }
}

function toMatch<T>(found: Found<T>): RouteMatch<T> {
  const { entry, params, greedyValue } = found;
  let pathParameters: Record<string, string> | null = null;
  if (entry.paramNames.length > 0 || entry.greedyName !== undefined) {
    const out: Record<string, string> = {};
    for (let k = 0; k < entry.paramNames.length; k++) setOwn(out, entry.paramNames[k] as string, params[k] as string);
    if (entry.greedyName !== undefined && greedyValue !== undefined) setOwn(out, entry.greedyName, greedyValue);
    pathParameters = out;
  }
  return { route: entry.route, routeKey: entry.routeKey, resource: entry.resource, pathParameters };
}
