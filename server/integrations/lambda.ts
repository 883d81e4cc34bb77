import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { withDeadline } from './deadlines.ts';

/** An AWS-format Lambda handler: `(event, context)` returning a value or a promise, or callback style. */
export type LambdaHandler = (event: unknown, context: LambdaContext, callback?: (err: unknown, result?: unknown) => void) => unknown;

/** Operations a handler can use in-process, without signing (same semantics as @connections). */
export interface GatehouseOps {
  postToConnection(input: { ConnectionId: string; Data: string | Uint8Array }): Promise<void>;
  getConnection(input: { ConnectionId: string }): Promise<{ ConnectedAt: Date; Identity: { SourceIp: string; UserAgent: string }; LastActiveAt: Date }>;
  deleteConnection(input: { ConnectionId: string }): Promise<void>;
  /** Connection ids of the stage, cluster-wide (beyond AWS). */
  listConnections(): Promise<string[]>;
}

/** Per-function constants of the Lambda context, computed once per handler. */
export interface FunctionInfo {
  functionName: string;
  logGroupName: string;
  invokedFunctionArn: string;
}

export function functionInfo(name: string, arnPrefix: string): FunctionInfo {
  return { functionName: name, logGroupName: `/aws/lambda/${name}`, invokedFunctionArn: `${arnPrefix}${name}` };
}

/** The Lambda `context` object (the fields handlers actually read), plus `gatehouse`. */
export class LambdaContext {
  readonly functionVersion = '$LATEST';
  readonly memoryLimitInMB = '128';
  callbackWaitsForEmptyEventLoop = true;
  readonly functionName: string;
  readonly logGroupName: string;
  readonly logStreamName = 'gatehouse';
  readonly invokedFunctionArn: string;
  constructor(
    info: FunctionInfo | string,
    readonly awsRequestId: string,
    private readonly deadline: number,
    readonly gatehouse: GatehouseOps,
    arnPrefix = '',
  ) {
    const f = typeof info === 'string' ? functionInfo(info, arnPrefix) : info;
    this.functionName = f.functionName;
    this.logGroupName = f.logGroupName;
    this.invokedFunctionArn = f.invokedFunctionArn;
  }
  getRemainingTimeInMillis(): number {
    return Math.max(0, this.deadline - Date.now());
  }
}

export interface LoadedHandler {
  name: string;
  fn: LambdaHandler;
}

const EXTENSIONS = ['', '.mjs', '.js', '.cjs', '.ts', '.mts'];

/** Resolve `file.export` (SAM form, relative to the API file) and import it once, at start-up. */
export async function loadHandler(spec: string, baseDir: string): Promise<LoadedHandler> {
  const dot = spec.lastIndexOf('.');
  const modulePath = spec.slice(0, dot);
  const exportName = spec.slice(dot + 1);
  const base = path.resolve(baseDir, modulePath);
  const file = EXTENSIONS.map((ext) => base + ext).find((f) => existsSync(f) && !f.endsWith(path.sep));
  if (!file) throw new Error(`handler module not found: ${modulePath} (looked for ${EXTENSIONS.filter(Boolean).join(', ')} next to the API file)`);
  const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  const fromDefault = mod.default && typeof mod.default === 'object' ? (mod.default as Record<string, unknown>)[exportName] : undefined;
  const fn = mod[exportName] ?? fromDefault;
  if (typeof fn !== 'function') throw new Error(`handler ${spec}: module ${path.relative(baseDir, file)} has no exported function "${exportName}"`);
  return { name: path.basename(modulePath), fn: fn as LambdaHandler };
}

/**
 * Invoke a handler with AWS semantics: sync or async return, or the legacy callback when the
 * function declares three parameters. A sync throw, a rejection or `callback(err)` all reject.
 */
export function invokeLambda(fn: LambdaHandler, event: unknown, context: LambdaContext, timeoutMs: number): Promise<unknown> {
  let result: unknown;
  if (fn.length >= 3) {
    result = new Promise((resolve, reject) => {
      const r = fn(event, context, (err, value) => (err ? reject(err) : resolve(value)));
      if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).then(resolve, reject);
    });
  } else {
    try {
      result = fn(event, context);
    } catch (err) {
      return Promise.reject(err);
    }
  }
  if (result && typeof (result as Promise<unknown>).then === 'function') return withDeadline(result as Promise<unknown>, timeoutMs);
  return Promise.resolve(result);
}
