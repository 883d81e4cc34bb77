/**
 * Identity sources (reference section 4.2): where an authorizer's identity values come from.
 * All the AWS spellings are accepted for every API kind, so a definition can be moved between
 * WebSocket and REST routes unchanged:
 *   route.request.header.X | method.request.header.X | $request.header.X      (case-insensitive)
 *   route.request.querystring.X | method.request.querystring.X | $request.querystring.X
 *   stageVariables.X | $stageVariables.X
 *   context.X | $context.X                                                    (dotted path)
 */
export type IdentitySource =
  | { kind: 'header'; name: string; spec: string }
  | { kind: 'query'; name: string; spec: string }
  | { kind: 'stage'; name: string; spec: string }
  | { kind: 'context'; path: string[]; spec: string };

export class IdentitySourceError extends Error {}

export function parseIdentitySource(spec: string): IdentitySource {
  const s = spec.trim();
  let m = /^(?:route\.request|method\.request|\$request)\.header\.([!#$%&'*+\-.^_`|~0-9A-Za-z]+)$/.exec(s);
  if (m) return { kind: 'header', name: m[1]!.toLowerCase(), spec };
  m = /^(?:route\.request|method\.request|\$request)\.querystring\.(.+)$/.exec(s);
  if (m) return { kind: 'query', name: m[1]!, spec };
  m = /^\$?stageVariables\.([A-Za-z0-9_]+)$/.exec(s);
  if (m) return { kind: 'stage', name: m[1]!, spec };
  m = /^\$?context\.([A-Za-z0-9_.]+)$/.exec(s);
  if (m) return { kind: 'context', path: m[1]!.split('.'), spec };
  throw new IdentitySourceError(
    `unsupported identity source "${spec}" (use route.request.header.X, route.request.querystring.X, stageVariables.X or context.X)`,
  );
}

export interface IdentityInput {
  headers: ReadonlyArray<[string, string]>;
  query: Readonly<Record<string, string>> | undefined;
  stageVariables: Readonly<Record<string, string>> | undefined;
  context: Readonly<Record<string, unknown>>;
}

/** The value of one source, or undefined when missing or empty (AWS: 401 without invoking). */
export function identityValue(src: IdentitySource, input: IdentityInput): string | undefined {
  let v: unknown;
  switch (src.kind) {
    case 'header': {
      const parts: string[] = [];
      for (const [k, val] of input.headers) if (k === src.name) parts.push(val);
      v = parts.length ? parts.join(',') : undefined;
      break;
    }
    case 'query':
      v = input.query?.[src.name];
      break;
    case 'stage':
      v = input.stageVariables?.[src.name];
      break;
    case 'context': {
      let cur: unknown = input.context;
      for (const seg of src.path) cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[seg] : undefined;
      v = cur;
      break;
    }
  }
  if (v === undefined || v === null) return undefined;
  const s = typeof v === 'string' ? v : String(v);
  return s.trim() === '' ? undefined : s;
}
