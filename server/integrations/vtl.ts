import { Compile, parse } from 'velocityjs';

/**
 * API Gateway mapping templates (reference section 7) on top of velocityjs: `$input`, `$context`,
 * `$stageVariables`, `$util`, with AWS's limits. Compile once per template at route-load time
 * (`compileTemplate`), render per request (`render`); a Template holds no per-render state.
 *
 * Behaviour worth knowing:
 * - A reference that is null or undefined renders as '' (as API Gateway shows missing
 *   `$context` fields), not as its own text as plain Velocity would.
 * - `$input.json(p)` is the JSON text of the JSONPath result (so a string comes out quoted) and
 *   '' when nothing matches; `$input.path(p)` is the value itself (objects render Java-style,
 *   `{a=1, b=[1, 2]}`). An empty body counts as `{}`. A body that is not JSON makes either
 *   call throw `VtlError` with code `GW_ERR_VTL_BODY_NOT_JSON` (API Gateway answers 400
 *   "Could not parse request body into json" there).
 * - `$input.params('x')` looks in path, then query string, then headers (exact name first, then
 *   case-insensitively) and is '' when absent.
 * - `#foreach` runs at most `maxForeachIterations` (1000, AWS's quota) times: longer lists are
 *   truncated, as Velocity's `directive.foreach.maxloops` does. Beyond AWS, a render throws
 *   once all loops together exceed `maxTotalIterations`, and a range literal `[a..b]` larger
 *   than `maxRangeSize` throws, so request data cannot make a template loop for long.
 * - velocityjs's `#eval` / `.eval()` are refused (they would run template code built at runtime).
 * - Writes to `$context` (e.g. `#set($context.responseOverride.status = 400)`) land in the
 *   `context` object the caller passed, which is how overrides get back to the caller.
 * - Every failure while rendering is thrown as `VtlError`; the caller answers 500 (except
 *   `GW_ERR_VTL_BODY_NOT_JSON`, see above).
 */

type Ast = ReturnType<typeof parse>[number];

export interface VtlParams {
  path: Readonly<Record<string, string>>;
  querystring: Readonly<Record<string, string>>;
  header: Readonly<Record<string, string>>;
}

export interface VtlRenderContext {
  /** raw payload as a string */
  body: string;
  params: VtlParams;
  /** `$context`: the REST/WebSocket context variables (requestId, identity, authorizer, ...) */
  context: Record<string, unknown>;
  stageVariables: Readonly<Record<string, string>>;
}

export interface VtlLimits {
  /** iterations of one `#foreach`; further items are skipped (AWS: 1000) */
  maxForeachIterations: number;
  /** iterations of all loops of one render together; exceeding it throws */
  maxTotalIterations: number;
  /** elements of one `[a..b]` range literal; exceeding it throws */
  maxRangeSize: number;
  /** template source size in bytes (AWS: 300 KB) */
  maxTemplateBytes: number;
}

export const DEFAULT_VTL_LIMITS: Readonly<VtlLimits> = Object.freeze({
  maxForeachIterations: 1000,
  maxTotalIterations: 100_000,
  maxRangeSize: 10_000,
  maxTemplateBytes: 300 * 1024, // 300 KB
});

export type VtlErrorCode = 'GW_ERR_VTL_SYNTAX' | 'GW_ERR_VTL_RENDER' | 'GW_ERR_VTL_BODY_NOT_JSON' | 'GW_ERR_VTL_LIMIT';

export class VtlError extends Error {
  readonly code: VtlErrorCode;
  /** the message as created (velocityjs appends template positions to `message` in flight) */
  readonly detail: string;
  constructor(code: VtlErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'VtlError';
    this.code = code;
    this.detail = message;
  }
}

/** Name of the loop guard in the render context; ':' keeps templates from ever naming it. */
const GUARD = 'gatehouse:loop-guard';

export class Template {
  readonly source: string;
  readonly limits: Readonly<VtlLimits>;
  readonly #asts: Ast[];
  /** double-quoted strings velocityjs re-parses while rendering, rewritten like the template */
  readonly #dynamic = new Map<string, Ast[]>();

  /** Parses and checks the template; throws `VtlError` (`GW_ERR_VTL_SYNTAX` / `GW_ERR_VTL_LIMIT`). */
  constructor(source: string, limits?: Partial<VtlLimits>) {
    this.source = source;
    this.limits = Object.freeze({ ...DEFAULT_VTL_LIMITS, ...limits });
    if (Buffer.byteLength(source, 'utf8') > this.limits.maxTemplateBytes) {
      throw new VtlError('GW_ERR_VTL_LIMIT', `mapping template is larger than ${this.limits.maxTemplateBytes} bytes`);
    }
    this.#asts = parseGuarded(source);
  }

  render(ctx: VtlRenderContext): string {
    const root: Record<string, unknown> = {
      input: new VtlInput(ctx.body, ctx.params),
      context: ctx.context,
      stageVariables: { ...ctx.stageVariables },
      util: new VtlUtil(),
      [GUARD]: new LoopGuard(this.limits),
    };
    const engine = new GatewayVelocity(this.#asts, (s) => this.#parseDynamic(s));
    try {
      return engine.render(root, { eval: refuseEval }, true);
    } catch (err) {
      throw renderError(err);
    }
  }

  #parseDynamic(str: string): Ast[] {
    let asts = this.#dynamic.get(str);
    if (!asts) {
      asts = parseGuarded(str);
      this.#dynamic.set(str, asts);
    }
    return asts;
  }
}

/** Compiles a mapping template once; throws `VtlError` on a syntax error or an oversized template. */
export function compileTemplate(src: string, limits?: Partial<VtlLimits>): Template {
  return new Template(src, limits);
}

/** Renders a compiled template; throws `VtlError` on any failure. */
export function render(template: Template, ctx: VtlRenderContext): string {
  return template.render(ctx);
}

// ---------------------------------------------------------------------------------------------
// velocityjs integration

const REFUSE_EVAL_HANDLER = {
  uid: 'gatehouse: refuse eval',
  match: ({ property }: { property: string }) => property === 'eval',
  resolve: (): never => refuseEval(),
};

function refuseEval(): never {
  throw new VtlError('GW_ERR_VTL_RENDER', 'eval is not supported in mapping templates');
}

class GatewayVelocity extends Compile {
  readonly #parseDynamic: (s: string) => Ast[];

  constructor(asts: Ast[], parseDynamic: (s: string) => Ast[]) {
    super(asts, { escape: false, customMethodHandlers: [REFUSE_EVAL_HANDLER] });
    this.#parseDynamic = parseDynamic;
  }

  /** Interpolated double-quoted strings: parsed (and loop-guarded) once per distinct string. */
  protected override evalStr(str: string): string {
    return this.renderAstList(this.#parseDynamic(str), this.contextId);
  }

  /** null renders as '' (undefined already does, in silent mode). */
  protected override getReferences(ast: Ast, isVal?: boolean): string {
    const value: unknown = super.getReferences(ast, isVal);
    return (isVal === true && value === null ? '' : value) as string;
  }
}

/** A clean `VtlError` for anything thrown while rendering, with the template position when known. */
function renderError(err: unknown): VtlError {
  if (err instanceof VtlError) {
    // velocityjs glued " on $ref at L/N l:c" (or "\n at #macro L/N l:c") onto the message.
    const where = err.message.startsWith(err.detail) ? err.message.slice(err.detail.length).trim() : '';
    const message = where !== '' && !where.includes(GUARD) ? `${err.detail} (${where.replace(/\s+/g, ' ')})` : err.detail;
    return new VtlError(err.code, message, { cause: err.cause ?? err });
  }
  const raw = err instanceof Error ? err.message : String(err);
  const message = raw.replace(/(?<=\S)(on \S.* at L\/N \S+:\S+)$/s, ' ($1)');
  return new VtlError('GW_ERR_VTL_RENDER', `mapping template failed: ${message}`, { cause: err });
}

/** Runs `fn`, turning anything it throws into a `VtlError` whose message starts with `what`. */
function guarded<R>(what: string, fn: () => R): R {
  try {
    return fn();
  } catch (err) {
    if (err instanceof VtlError) throw err;
    throw new VtlError('GW_ERR_VTL_RENDER', `${what}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}

function parseGuarded(source: string): Ast[] {
  let asts: Ast[];
  try {
    asts = parse(source);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new VtlError('GW_ERR_VTL_SYNTAX', `mapping template syntax error: ${message}`, { cause: err });
  }
  return rewrite(asts) as Ast[];
}

type Node = Record<string, unknown>;

const isNode = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Routes every `#foreach` collection through `$<guard>.each(...)` and every range literal
 * `[a..b]` through `$<guard>.range(a, b)`, so both are bounded at render time.
 */
function rewrite(node: unknown): unknown {
  if (Array.isArray(node)) {
    for (let i = 0; i < node.length; i++) node[i] = rewrite(node[i]);
    return node;
  }
  if (!isNode(node)) return node;
  if (node.type === 'array' && node.isRange === true && Array.isArray(node.value)) {
    const args = (node.value as unknown[]).map((v) =>
      typeof v === 'string' || typeof v === 'number' ? { type: 'integer', value: String(v) } : rewrite(v),
    );
    return guardCall('range', args);
  }
  for (const key of Object.keys(node)) {
    if (key !== 'pos') node[key] = rewrite(node[key]);
  }
  if (node.type === 'foreach' && node.from !== undefined) node.from = guardCall('each', [node.from]);
  return node;
}

function guardCall(method: string, args: unknown[]): Node {
  return { type: 'references', id: GUARD, leader: '$', path: [{ type: 'method', id: method, args }] };
}

class LoopGuard {
  readonly #limits: Readonly<VtlLimits>;
  #total = 0;

  constructor(limits: Readonly<VtlLimits>) {
    this.#limits = limits;
  }

  each(collection: unknown): unknown {
    let items: unknown[];
    if (Array.isArray(collection)) items = collection;
    else if (isNode(collection)) items = Object.values(collection);
    else return collection; // velocityjs skips anything else
    const n = Math.min(items.length, this.#limits.maxForeachIterations);
    this.#total += n;
    if (this.#total > this.#limits.maxTotalIterations) {
      throw new VtlError(
        'GW_ERR_VTL_LIMIT',
        `mapping template exceeded ${this.#limits.maxTotalIterations} #foreach iterations in one render`,
      );
    }
    return n < items.length ? items.slice(0, n) : items;
  }

  range(from: unknown, to: unknown): number[] {
    const a = toInt(from);
    const b = toInt(to);
    if (a === undefined || b === undefined) return [];
    const size = Math.abs(b - a) + 1;
    if (size > this.#limits.maxRangeSize) {
      throw new VtlError('GW_ERR_VTL_LIMIT', `range [${a}..${b}] has more than ${this.#limits.maxRangeSize} elements`);
    }
    const out: number[] = new Array(size);
    const step = a <= b ? 1 : -1;
    for (let i = 0; i < size; i++) out[i] = a + i * step;
    return out;
  }
}

function toInt(v: unknown): number | undefined {
  const n = typeof v === 'number' ? Math.trunc(v) : typeof v === 'string' ? Number.parseInt(v, 10) : Number.NaN;
  return Number.isFinite(n) ? n : undefined;
}

// ---------------------------------------------------------------------------------------------
// $input

class VtlInput {
  readonly body: string;
  readonly #params: VtlParams;
  #parsed: { value: unknown } | undefined;
  #allParams: { path: Record<string, string>; querystring: Record<string, string>; header: Record<string, string> } | undefined;

  constructor(body: string, params: VtlParams) {
    this.body = body;
    this.#params = params;
  }

  /** JSON text of the JSONPath result; undefined (renders '') when nothing matches. */
  json(path?: unknown): string | undefined {
    const hit = evaluateJsonPath(this.#root(), jsonPathArg(path));
    return hit.found ? JSON.stringify(hit.value) : undefined;
  }

  /** The JSONPath result as a value (objects, arrays, strings, numbers, ...). */
  path(path?: unknown): unknown {
    const hit = evaluateJsonPath(this.#root(), jsonPathArg(path));
    return hit.found ? hit.value : undefined;
  }

  /** No argument: `{path, querystring, header}`; with a name: path → query string → header, or ''. */
  params(name?: unknown): unknown {
    if (name === undefined || name === null) {
      this.#allParams ??= {
        path: { ...this.#params.path },
        querystring: { ...this.#params.querystring },
        header: { ...this.#params.header },
      };
      return this.#allParams;
    }
    const key = String(name);
    const { path, querystring, header } = this.#params;
    if (Object.hasOwn(path, key)) return path[key];
    if (Object.hasOwn(querystring, key)) return querystring[key];
    if (Object.hasOwn(header, key)) return header[key];
    const lower = key.toLowerCase();
    for (const h of Object.keys(header)) if (h.toLowerCase() === lower) return header[h];
    return '';
  }

  #root(): unknown {
    if (!this.#parsed) {
      const text = this.body.trim();
      if (text === '') {
        this.#parsed = { value: {} };
      } else {
        try {
          this.#parsed = { value: JSON.parse(text) };
        } catch (err) {
          const detail = err instanceof Error ? err.message : String(err);
          throw new VtlError('GW_ERR_VTL_BODY_NOT_JSON', `Could not parse payload into json: ${detail}`, { cause: err });
        }
      }
    }
    return this.#parsed.value;
  }
}

function jsonPathArg(path: unknown): string {
  if (path === undefined || path === null) return '$';
  if (typeof path !== 'string') throw new VtlError('GW_ERR_VTL_RENDER', 'a JSONPath must be a string');
  return path;
}

// ---------------------------------------------------------------------------------------------
// JSONPath subset: $, $.a.b, $.a[0], $.a[-1], $['a'], $["a"]

type JsonPathStep = { prop: string } | { index: number };

const jsonPathCache = new Map<string, JsonPathStep[]>();
const JSON_PATH_CACHE_MAX = 1000;

export type JsonPathResult = { found: true; value: unknown } | { found: false };

/** Evaluates the JSONPath subset above; throws for anything outside it. */
export function evaluateJsonPath(root: unknown, expr: string): JsonPathResult {
  let steps = jsonPathCache.get(expr);
  if (!steps) {
    steps = compileJsonPath(expr);
    if (jsonPathCache.size < JSON_PATH_CACHE_MAX) jsonPathCache.set(expr, steps);
  }
  let cur: unknown = root;
  for (const step of steps) {
    if ('prop' in step) {
      if (!isNode(cur) || !Object.hasOwn(cur, step.prop)) return { found: false };
      cur = cur[step.prop];
    } else {
      if (!Array.isArray(cur)) return { found: false };
      const i = step.index < 0 ? cur.length + step.index : step.index;
      if (i < 0 || i >= cur.length) return { found: false };
      cur = cur[i];
    }
  }
  return { found: true, value: cur };
}

function compileJsonPath(expr: string): JsonPathStep[] {
  const s = expr.trim();
  const bad = (why: string): VtlError =>
    new VtlError('GW_ERR_VTL_RENDER', `unsupported JSONPath ${JSON.stringify(expr)}: ${why}`);
  if (!s.startsWith('$')) throw bad('it must start with "$"');
  const steps: JsonPathStep[] = [];
  let i = 1;
  while (i < s.length) {
    const c = s[i];
    if (c === '.') {
      if (s[i + 1] === '.') throw bad('deep scan ("..") is not supported');
      let j = i + 1;
      while (j < s.length && s[j] !== '.' && s[j] !== '[') j++;
      const name = s.slice(i + 1, j).trim();
      if (name === '') throw bad('empty property name');
      if (name === '*') throw bad('wildcards are not supported');
      steps.push({ prop: name });
      i = j;
    } else if (c === '[') {
      const q = s[i + 1];
      if (q === "'" || q === '"') {
        let j = i + 2;
        let name = '';
        while (j < s.length && s[j] !== q) {
          if (s[j] === '\\' && j + 1 < s.length) j++;
          name += s[j];
          j++;
        }
        if (s[j] !== q || s[j + 1] !== ']') throw bad('unterminated quoted name');
        steps.push({ prop: name });
        i = j + 2;
      } else {
        const close = s.indexOf(']', i);
        if (close < 0) throw bad('missing "]"');
        const inner = s.slice(i + 1, close).trim();
        if (!/^-?\d+$/.test(inner)) throw bad(`only integer indexes and quoted names go in [], not "${inner}"`);
        steps.push({ index: Number.parseInt(inner, 10) });
        i = close + 1;
      }
    } else {
      throw bad(`unexpected "${c}" at ${i}`);
    }
  }
  return steps;
}

// ---------------------------------------------------------------------------------------------
// $util

class VtlUtil {
  /** Java `StringEscapeUtils.escapeJavaScript`: `'` → `\'`, `/` → `\/`, non-ASCII → `\uXXXX`. */
  escapeJavaScript(value: unknown): string {
    return escapeJavaScript(toVtlString(value));
  }

  parseJson(value: unknown): unknown {
    return guarded('parseJson', () => JSON.parse(toVtlString(value)));
  }

  /** Java `URLEncoder.encode(s, "UTF-8")`: form encoding, space → '+'. */
  urlEncode(value: unknown): string {
    return guarded('urlEncode', () => urlEncode(toVtlString(value)));
  }

  /** Java `URLDecoder.decode(s, "UTF-8")`: '+' → space; a malformed escape throws. */
  urlDecode(value: unknown): string {
    return guarded('urlDecode', () => urlDecode(toVtlString(value)));
  }

  base64Encode(value: unknown): string {
    return Buffer.from(toVtlString(value), 'utf8').toString('base64');
  }

  /** Strict (Java `Base64.getDecoder()`): padding optional, anything outside the alphabet throws. */
  base64Decode(value: unknown): string {
    const s = toVtlString(value);
    if (s.length % 4 === 1 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
      throw new VtlError('GW_ERR_VTL_RENDER', 'base64Decode: input is not valid base64');
    }
    return Buffer.from(s, 'base64').toString('utf8');
  }
}

/** How a value reads as a Java string: null → '', lists `[a, b]`, maps `{k=v}`. */
export function toVtlString(value: unknown): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'string') return value;
  return javaText(value);
}

function javaText(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return `[${value.map(javaText).join(', ')}]`;
  if (isNode(value)) {
    return `{${Object.keys(value)
      .map((k) => `${k}=${javaText(value[k])}`)
      .join(', ')}}`;
  }
  return String(value);
}

const NEEDS_JS_ESCAPE = /[^\x20-\x7f]|['"\\/]/;
const CONTROL_ESCAPES: ReadonlyMap<number, string> = new Map([
  [0x08, '\\b'],
  [0x09, '\\t'],
  [0x0a, '\\n'],
  [0x0c, '\\f'],
  [0x0d, '\\r'],
]);

export function escapeJavaScript(s: string): string {
  if (!NEEDS_JS_ESCAPE.test(s)) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i);
    if (code > 0x7f) {
      out += `\\u${code.toString(16).toUpperCase().padStart(4, '0')}`;
      continue;
    }
    if (code < 0x20) {
      out += CONTROL_ESCAPES.get(code) ?? `\\u${code.toString(16).toUpperCase().padStart(4, '0')}`;
      continue;
    }
    const ch = s[i] as string;
    if (ch === "'" || ch === '"' || ch === '\\' || ch === '/') out += `\\${ch}`;
    else out += ch;
  }
  return out;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

export function urlEncode(s: string): string {
  // Java replaces unencodable (lone surrogate) characters with '?'.
  return encodeURIComponent(s.replace(LONE_SURROGATE, '?'))
    .replace(/[!'()~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

export function urlDecode(s: string): string {
  if (!s.includes('%')) return s.replaceAll('+', ' ');
  let out = '';
  let i = 0;
  while (i < s.length) {
    const ch = s[i] as string;
    if (ch === '+') {
      out += ' ';
      i++;
    } else if (ch === '%') {
      const bytes: number[] = [];
      while (i < s.length && s[i] === '%') {
        const hex = s.slice(i + 1, i + 3);
        if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new Error(`malformed escape at ${i}`);
        bytes.push(Number.parseInt(hex, 16));
        i += 3;
      }
      out += Buffer.from(bytes).toString('utf8');
    } else {
      out += ch;
      i++;
    }
  }
  return out;
}
