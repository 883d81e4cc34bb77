/**
 * Route selection expressions (reference section 1.1): `$request.body.a.b`, `${request.body.a}`
 * mixed with static text, `\$` escapes. Compiled once into a list of parts; evaluated against
 * the message parsed once. A missing path gives "", an object or array is stringified the way
 * AWS does (`[item1, item2]`).
 */
export type SelectionExpression = {
  /** True when the expression reads the message body (so non-JSON goes to $default). */
  readonly usesBody: boolean;
  /** For `$request.body.<key>` (one top-level key): the key, so the gateway can scan instead of parse. */
  readonly fastKey?: string | undefined;
  evaluate(body: unknown): string;
};

type Part = { kind: 'text'; text: string } | { kind: 'body'; path: string[] };

export class SelectionExpressionError extends Error {}

const IDENT = /^[A-Za-z0-9_\-$@]+$/;

function parseVariable(name: string, expr: string): Part {
  const prefix = 'request.body';
  if (name === prefix) return { kind: 'body', path: [] };
  if (!name.startsWith(`${prefix}.`)) {
    throw new SelectionExpressionError(`unsupported variable "$${name}" in "${expr}": only $request.body.<path> is allowed`);
  }
  const path = splitPath(name.slice(prefix.length + 1), expr);
  return { kind: 'body', path };
}

function splitPath(p: string, expr: string): string[] {
  const out: string[] = [];
  const re = /([^.[\]]+)|\[(\d+)\]|\['([^']*)'\]/g;
  let m: RegExpExecArray | null;
  let consumed = 0;
  // biome-ignore lint/suspicious/noAssignInExpressions: classic regex loop
  while ((m = re.exec(p)) !== null) {
    const seg = m[1] ?? m[2] ?? m[3] ?? '';
    if (m[1] !== undefined && !IDENT.test(seg)) throw new SelectionExpressionError(`invalid path segment "${seg}" in "${expr}"`);
    out.push(seg);
    consumed += m[0].length;
  }
  const dots = (p.match(/\.(?![^[]*\])/g) ?? []).length;
  if (out.length === 0 || consumed + dots !== p.length) throw new SelectionExpressionError(`invalid path "${p}" in "${expr}"`);
  return out;
}

export function compileSelectionExpression(expr: string): SelectionExpression {
  const parts: Part[] = [];
  let text = '';
  let i = 0;
  while (i < expr.length) {
    const c = expr[i]!;
    if (c === '\\' && expr[i + 1] === '$') {
      text += '$';
      i += 2;
      continue;
    }
    if (c === '$') {
      if (text) parts.push({ kind: 'text', text });
      text = '';
      if (expr[i + 1] === '{') {
        const end = expr.indexOf('}', i + 2);
        if (end < 0) throw new SelectionExpressionError(`unterminated "\${" in "${expr}"`);
        parts.push(parseVariable(expr.slice(i + 2, end), expr));
        i = end + 1;
      } else {
        const m = /^\$([A-Za-z0-9_.\-[\]']+)/.exec(expr.slice(i));
        if (!m) throw new SelectionExpressionError(`lone "$" in "${expr}" (escape it as \\$)`);
        parts.push(parseVariable(m[1]!, expr));
        i += m[0].length;
      }
      continue;
    }
    text += c;
    i++;
  }
  if (text) parts.push({ kind: 'text', text });
  const usesBody = parts.some((p) => p.kind === 'body');
  if (parts.length === 1 && parts[0]!.kind === 'body') {
    const path = parts[0]!.path;
    return { usesBody, fastKey: path.length === 1 ? path[0] : undefined, evaluate: (body) => stringify(lookup(body, path)) };
  }
  if (!usesBody) {
    const constant = parts.map((p) => (p.kind === 'text' ? p.text : '')).join('');
    return { usesBody, evaluate: () => constant };
  }
  return {
    usesBody,
    evaluate: (body) => {
      let s = '';
      for (const p of parts) s += p.kind === 'text' ? p.text : stringify(lookup(body, p.path));
      return s;
    },
  };
}

function lookup(value: unknown, path: readonly string[]): unknown {
  let v = value;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[seg];
  }
  return v;
}

/** AWS stringifies non-string results: arrays as `[a, b]`, objects as `{k=v}`-like text. */
export function stringify(v: unknown): string {
  if (v === undefined || v === null) return '';
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return `[${v.map(stringify).join(', ')}]`;
  if (typeof v === 'object') {
    return `{${Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${k}=${stringify(x)}`)
      .join(', ')}}`;
  }
  return String(v);
}
