import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { LineCounter, parseDocument } from 'yaml';
import { parseIdentitySource } from '../auth/identity-source.ts';
import { compileCors } from '../http/cors.ts';
import { compileGatewayResponses } from '../http/gateway-responses.ts';
import { compileRouteTable, routeKeyProblem } from '../http/route-table.ts';
import { compileModel, parseRequiredParameter } from '../http/validation.ts';
import { compileTemplate } from '../integrations/vtl.ts';
import { throttlingConfig } from '../throttling/admission.ts';
import { ApiKeyConfigError } from '../throttling/api-keys.ts';
import { RequestLimiter, ThrottleConfigError } from '../throttling/limiter.ts';
import { type LoadedHandler, loadHandler } from '../integrations/lambda.ts';
import { SelectionExpressionError, compileSelectionExpression } from '../websocket/selection-expression.ts';
import { apiDefinitionSchema } from './schema.ts';
import type { ApiDefinition, IntegrationDef } from './types.ts';

export interface DefinitionProblem {
  /** dotted path in the file, e.g. `websocket.routes.sendmessage.integration.type` */
  path: string;
  /** 1-based line:column of the offending node, when known */
  line?: number | undefined;
  column?: number | undefined;
  message: string;
}

export class ApiDefinitionError extends Error {
  constructor(
    readonly file: string,
    readonly problems: DefinitionProblem[],
  ) {
    super(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n${problems.map((p) => `  ${formatProblem(p)}`).join('\n')}`);
    this.name = 'ApiDefinitionError';
  }
}

export function formatProblem(p: DefinitionProblem): string {
  const where = p.line ? ` (line ${p.line}, column ${p.column})` : '';
  return `${p.path || '(root)'}${where}: ${p.message}`;
}

export interface LoadedApi {
  file: string;
  baseDir: string;
  definition: ApiDefinition;
  /** handler spec (`file.export`) → imported function */
  handlers: Map<string, LoadedHandler>;
  /** request models by `http:<routeKey>` / `ws:<routeKey>`, loaded from files or inline */
  models: Map<string, object>;
}

const ajv = new Ajv({ allErrors: true, strict: true, strictRequired: false, discriminator: true, allowUnionTypes: true });
const validateSchema = ajv.compile(apiDefinitionSchema);

function pathOf(instancePath: string): string[] {
  return instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function describeAjvError(e: ErrorObject): { path: string[]; message: string } {
  const p = pathOf(e.instancePath);
  switch (e.keyword) {
    case 'additionalProperties': {
      const extra = String((e.params as { additionalProperty: string }).additionalProperty);
      return { path: [...p, extra], message: `unknown property "${extra}"` };
    }
    case 'required':
      return { path: p, message: `missing required property "${(e.params as { missingProperty: string }).missingProperty}"` };
    case 'enum':
      return { path: p, message: `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}` };
    case 'propertyNames':
    {
      const name = (e.params as { propertyName: string }).propertyName;
      return { path: [...p, name], message: `invalid name "${name}"` };
    }
    case 'discriminator':
      return { path: [...p, 'type'], message: p.includes('authorizers') ? 'unknown authorizer type (use REQUEST, TOKEN or JWT)' : 'unknown integration type (use LAMBDA, MOCK, HTTP_PROXY, HTTP or REDIS_STREAM)' };
    default:
      return { path: p, message: e.message ?? 'is invalid' };
  }
}

/**
 * Parse, schema-check and semantically check an API definition, and import every handler it
 * names. Every problem is collected and reported at once with its path (and line); nothing is
 * served from a file with any problem.
 */
export async function loadApiDefinition(file: string): Promise<LoadedApi> {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new ApiDefinitionError(file, [{ path: '', message: `cannot read file: ${(err as Error).message}` }]);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ApiDefinitionError(
      file,
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        return { path: '', line: pos.line, column: pos.col, message: e.message.split('\n')[0] ?? e.message };
      }),
    );
  }
  const value: unknown = doc.toJS();
  const locate = (p: string[]): { line?: number; column?: number } => {
    for (let n = p.length; n >= 0; n--) {
      const node = doc.getIn(p.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node && typeof node === 'object' && node.range) {
        const pos = lineCounter.linePos(node.range[0]);
        return { line: pos.line, column: pos.col };
      }
      if (n > 0) {
        // The key node itself (for unknown properties the value path does not exist).
        const parent = doc.getIn(p.slice(0, n - 1), true) as { items?: Array<{ key?: { value?: unknown; range?: [number, number, number] } }> } | undefined;
        const keyNode = parent?.items?.find((it) => it.key?.value === p[n - 1])?.key;
        if (keyNode?.range) {
          const pos = lineCounter.linePos(keyNode.range[0]);
          return { line: pos.line, column: pos.col };
        }
      }
    }
    return {};
  };
  const problems: DefinitionProblem[] = [];
  const add = (p: string[], message: string) => problems.push({ path: p.join('.'), message, ...locate(p) });

  if (!validateSchema(value)) {
    const seen = new Set<string>();
    for (const e of validateSchema.errors ?? []) {
      if (e.keyword === 'if' || e.keyword === 'oneOf') continue;
      // A bad property name is reported once, by the propertyNames error itself.
      if (e.schemaPath.includes('/propertyNames/')) continue;
      const d = describeAjvError(e);
      const key = `${d.path.join('.')}|${d.message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      add(d.path, d.message);
    }
    throw new ApiDefinitionError(file, problems);
  }
  const def = value as ApiDefinition;
  const baseDir = path.dirname(abs);

  // Semantic checks the schema cannot express.
  if (!def.websocket && !def.http) add([], 'the definition serves nothing: add a "websocket" or an "http" section');
  if (def.websocket) {
    try {
      const expr = compileSelectionExpression(def.websocket.routeSelectionExpression);
      if (!expr.usesBody && !def.websocket.routes.$default) {
        add(['websocket', 'routeSelectionExpression'], 'a static expression needs a $default route or a route with the same key');
      }
    } catch (err) {
      if (!(err instanceof SelectionExpressionError)) throw err;
      add(['websocket', 'routeSelectionExpression'], err.message);
    }
    for (const [key, route] of Object.entries(def.websocket.routes)) {
      if (!route.integration && key !== '$connect' && key !== '$disconnect') add(['websocket', 'routes', key], 'a message route needs an integration');
      if (route.routeResponse && (key === '$connect' || key === '$disconnect')) add(['websocket', 'routes', key, 'routeResponse'], `${key} cannot have a route response`);
    }
  }
  for (const [name, a] of Object.entries(def.authorizers ?? {})) {
    const sources = a.identitySource === undefined ? [] : Array.isArray(a.identitySource) ? a.identitySource : [a.identitySource];
    sources.forEach((src, i) => {
      try {
        parseIdentitySource(src);
      } catch (err) {
        add(['authorizers', name, 'identitySource', ...(Array.isArray(a.identitySource) ? [String(i)] : [])], (err as Error).message);
      }
    });
    if (a.identityValidationExpression) {
      try {
        new RegExp(a.identityValidationExpression);
      } catch (err) {
        add(['authorizers', name, 'identityValidationExpression'], `invalid regular expression: ${(err as Error).message}`);
      }
    }
  }
  for (const [key, route] of Object.entries(def.websocket?.routes ?? {})) {
    if (!route.authorizer) continue;
    const a = def.authorizers?.[route.authorizer];
    if (!a) add(['websocket', 'routes', key, 'authorizer'], `unknown authorizer "${route.authorizer}" (define it under "authorizers")`);
    else if (key !== '$connect') add(['websocket', 'routes', key, 'authorizer'], 'on a WebSocket API, authorizers guard $connect only (they protect the whole connection)');
    else if (a.type === 'TOKEN') add(['websocket', 'routes', key, 'authorizer'], 'TOKEN authorizers are for REST routes; use REQUEST on $connect');
  }
  const models = new Map<string, object>();
  const loadModel = (at: string[], spec: string | Record<string, unknown>, key: string) => {
    let schema: object;
    if (typeof spec === 'string') {
      try {
        schema = JSON.parse(readFileSync(path.resolve(path.dirname(abs), spec), 'utf8')) as object;
      } catch (err) {
        add(at, `cannot load model ${spec}: ${(err as Error).message}`);
        return;
      }
    } else schema = spec;
    try {
      compileModel(schema);
      models.set(key, schema);
    } catch (err) {
      add(at, `invalid JSON Schema: ${(err as Error).message}`);
    }
  };
  for (const [key, route] of Object.entries(def.websocket?.routes ?? {})) {
    if (route.requestModel !== undefined) loadModel(['websocket', 'routes', key, 'requestModel'], route.requestModel, `ws:${key}`);
  }
  if (def.http) {
    const h = def.http;
    for (const [key, route] of Object.entries(h.routes)) {
      const at = ['http', 'routes', key];
      const problem = routeKeyProblem(key);
      if (problem) add(at, problem);
      if (route.authorizer && !def.authorizers?.[route.authorizer]) add([...at, 'authorizer'], `unknown authorizer "${route.authorizer}" (define it under "authorizers")`);
      if (route.authorizationScopes && route.authorizer && def.authorizers?.[route.authorizer]?.type !== 'JWT') {
        add([...at, 'authorizationScopes'], 'authorization scopes need a JWT authorizer');
      }
      if (route.requestModel !== undefined) loadModel([...at, 'requestModel'], route.requestModel, `http:${key}`);
      (route.requestParameters ?? []).forEach((p, i) => {
        try {
          parseRequiredParameter(p);
        } catch (err) {
          add([...at, 'requestParameters', String(i)], (err as Error).message);
        }
      });
    }
    try {
      compileRouteTable(Object.keys(h.routes).filter((k) => !routeKeyProblem(k)).map((k) => [k, k] as const));
    } catch (err) {
      add(['http', 'routes'], (err as Error).message);
    }
    if (h.cors) {
      try {
        compileCors(h.cors);
      } catch (err) {
        add(['http', 'cors'], (err as Error).message);
      }
    }
    try {
      compileGatewayResponses(h.gatewayResponses);
    } catch (err) {
      add(['http', 'gatewayResponses'], (err as Error).message);
    }
  }
  for (const [key, route] of Object.entries(def.http?.routes ?? {})) {
    for (const t of ['requestTemplates', 'responseTemplates'] as const) {
      const map = (route.integration as unknown as Record<string, unknown>)[t] as Record<string, string> | undefined;
      for (const [ct, src] of Object.entries(map ?? {})) {
        try {
          compileTemplate(src);
        } catch (err) {
          add(['http', 'routes', key, 'integration', t, ct], (err as Error).message);
        }
      }
    }
  }
  try {
    const config = throttlingConfig(def);
    if (config) new RequestLimiter({ config, env: process.env }).close().catch(() => undefined);
  } catch (err) {
    if (err instanceof ThrottleConfigError) add(err.path.split('.').filter(Boolean), err.message.slice(err.path.length + 2));
    else if (err instanceof ApiKeyConfigError) add(err.path.replace(/\[(\d+)\]/g, '.$1').split('.').filter(Boolean), err.message.slice(err.path.length + 2));
    else throw err;
  }
  const limits = def.limits;
  if (limits?.maxFrameBytes && limits.maxMessageBytes && limits.maxFrameBytes > limits.maxMessageBytes) {
    add(['limits', 'maxFrameBytes'], 'cannot exceed maxMessageBytes');
  }

  // Import every handler once, now: a missing module or export is a definition error.
  const handlers = new Map<string, LoadedHandler>();
  const integrations: Array<{ at: string[]; integration: IntegrationDef }> = [];
  for (const [key, route] of Object.entries(def.websocket?.routes ?? {})) {
    if (route.integration) integrations.push({ at: ['websocket', 'routes', key, 'integration'], integration: route.integration });
  }
  for (const [key, route] of Object.entries(def.http?.routes ?? {})) {
    integrations.push({ at: ['http', 'routes', key, 'integration'], integration: route.integration });
  }
  for (const [name, a] of Object.entries(def.authorizers ?? {})) {
    if (a.handler) integrations.push({ at: ['authorizers', name], integration: { type: 'LAMBDA', handler: a.handler } });
  }
  for (const { at, integration } of integrations) {
    if (integration.type !== 'LAMBDA' || handlers.has(integration.handler)) continue;
    try {
      handlers.set(integration.handler, await loadHandler(integration.handler, baseDir));
    } catch (err) {
      add([...at, 'handler'], (err as Error).message);
    }
  }
  if (problems.length > 0) throw new ApiDefinitionError(file, problems);
  return { file: abs, baseDir, definition: def, handlers, models };
}
