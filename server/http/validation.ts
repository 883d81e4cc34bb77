import type { ErrorObject, Options, ValidateFunction } from 'ajv';
import { Ajv2020 } from 'ajv/dist/2020.js';
import ajvDraft04Module from 'ajv-draft-04';
import ajvFormatsModule from 'ajv-formats';
import { headerValue } from './request.ts';

/**
 * REST request validation (reference 6.6), compiled once at start-up: required parameters must be
 * present and non-blank (400 `BAD_REQUEST_PARAMETERS`), then the body must be JSON matching the
 * method's model (400 `BAD_REQUEST_BODY`). Client-facing messages are exactly AWS's; the detail
 * (`$context.error.validationErrorString`) is for logs only.
 *
 * Models are JSON Schema draft 4 (what API Gateway uses) through `ajv-draft-04`; a model whose
 * `$schema` names 2020-12 is compiled by Ajv's 2020 draft instead. Unknown keywords (`example`,
 * `discriminator`, ...) are ignored as on AWS, `default` is never applied, types are never coerced.
 */

// Both packages are CommonJS with `exports.default` (TS sees the namespace under NodeNext).
const AjvDraft04 = ajvDraft04Module.default;
const addFormats = ajvFormatsModule.default;

export type ModelValidator = (value: unknown) => { ok: true } | { ok: false; errors: string };

/** A model that cannot be compiled (invalid schema, unsupported `$schema`, unresolved `$ref`). */
export class ModelCompileError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ModelCompileError';
  }
}

const AJV_OPTIONS: Options = {
  strict: false, // AWS models carry keywords Ajv does not know (example, discriminator, ...)
  allErrors: false, // first error only: bounded work on hostile input, and it is only logged
  useDefaults: false,
  coerceTypes: false,
  removeAdditional: false,
  logger: false,
};

/** OpenAPI / AWS formats that validate nothing (AWS ignores them too). */
const NO_OP_FORMATS = ['int32', 'int64', 'float', 'double', 'decimal', 'byte', 'binary', 'password'];

type AjvInstance = InstanceType<typeof AjvDraft04> | Ajv2020;
let draft04: AjvInstance | undefined;
let draft2020: AjvInstance | undefined;

/** One shared instance per draft: creating one costs ~10 ms, compiling a model well under 1 ms. */
function instanceFor(draft: 4 | 2020): AjvInstance {
  if (draft === 4) {
    if (!draft04) draft04 = newInstance(4);
    return draft04;
  }
  if (!draft2020) draft2020 = newInstance(2020);
  return draft2020;
}

function newInstance(draft: 4 | 2020): AjvInstance {
  return withFormats(draft === 4 ? new AjvDraft04(AJV_OPTIONS) : new Ajv2020(AJV_OPTIONS));
}

function withFormats<A extends AjvInstance>(ajv: A): A {
  // 'fast' formats: simple regular expressions, nothing a hostile body can make slow.
  addFormats(ajv, { mode: 'fast' });
  for (const f of NO_OP_FORMATS) ajv.addFormat(f, true);
  return ajv;
}

const DRAFT_04_ID = /^https?:\/\/json-schema\.org\/draft-04\/schema#?$/;
const DRAFT_2020_ID = /^https?:\/\/json-schema\.org\/draft\/2020-12\/schema#?$/;

function draftOf(schema: object): 4 | 2020 | undefined {
  const declared = (schema as { $schema?: unknown }).$schema;
  if (declared === undefined) return undefined;
  if (typeof declared !== 'string') throw new ModelCompileError('$schema must be a string');
  if (DRAFT_04_ID.test(declared)) return 4;
  if (DRAFT_2020_ID.test(declared)) return 2020;
  throw new ModelCompileError(
    `unsupported $schema ${JSON.stringify(declared)}: use http://json-schema.org/draft-04/schema# (the default) or https://json-schema.org/draft/2020-12/schema`,
  );
}

/** `[/price must be >= 0]`, AWS-like (`validationErrorString` lists the problems in brackets). */
function errorsText(errors: ErrorObject[] | null | undefined): string {
  if (!errors || errors.length === 0) return '[invalid]';
  return `[${errors.map((e) => (e.instancePath ? `${e.instancePath} ${e.message ?? 'is invalid'}` : (e.message ?? 'is invalid'))).join(', ')}]`;
}

/**
 * Compiles a model (JSON schema) once. The draft comes from `opts.draft`, else from `$schema`
 * (draft-04 when absent). Throws `ModelCompileError` for an invalid schema or a `$schema` that
 * contradicts `opts.draft`.
 */
export function compileModel(schema: object, opts?: { draft?: 4 | 2020 }): ModelValidator {
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
    throw new ModelCompileError('a model must be a JSON schema object');
  }
  const declared = draftOf(schema);
  if (opts?.draft !== undefined && declared !== undefined && declared !== opts.draft) {
    throw new ModelCompileError(`the model's $schema says draft ${declared} but draft ${opts.draft} was requested`);
  }
  const draft = opts?.draft ?? declared ?? 4;
  const id = (schema as { $id?: unknown; id?: unknown })[draft === 4 ? 'id' : '$id'];
  if (typeof id === 'string' && id.includes('json-schema.org')) {
    throw new ModelCompileError(`a model must not use the id ${JSON.stringify(id)} (it names a JSON Schema meta-schema)`);
  }
  let validate: ValidateFunction;
  try {
    validate = compileOn(instanceFor(draft), schema);
  } catch (err) {
    // An id inside the model (a nested one) is still registered from an earlier compilation:
    // compile this model on an instance of its own rather than fail.
    if (!(err instanceof Error && err.message.includes('already exists'))) throw invalidModel(err);
    try {
      validate = compileOn(newInstance(draft), schema);
    } catch (again) {
      throw invalidModel(again);
    }
  }
  return (value) => {
    try {
      return validate(value) ? OK : { ok: false, errors: errorsText(validate.errors) };
    } catch (err) {
      // A recursive model ($ref '#') walking hostile, deeply nested data can exhaust the stack.
      if (err instanceof RangeError) return { ok: false, errors: '[value is nested too deeply]' };
      throw err;
    }
  };
}

const OK = Object.freeze({ ok: true as const });

/**
 * Compiles, then unregisters the schema (its cache entry, and its root id): the validate function
 * is self-contained, so nothing stays alive across definition reloads and a later model may
 * reuse the id. Registration during compilation is what lets `$ref: '#'` resolve.
 */
function compileOn(ajv: AjvInstance, schema: object): ValidateFunction {
  try {
    return ajv.compile(schema);
  } finally {
    ajv.removeSchema(schema);
  }
}

function invalidModel(err: unknown): ModelCompileError {
  return new ModelCompileError(`invalid model: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
}

// ---- request validators --------------------------------------------------------------------

export interface RequestValidatorDef {
  validateRequestBody?: boolean | undefined;
  validateRequestParameters?: boolean | undefined;
  /** JSON schema of the body (draft 4 by default, see `compileModel`) */
  model?: object | undefined;
  /**
   * AWS forms: `method.request.querystring.q`, `method.request.header.h`, `method.request.path.p`
   * (`multivaluequerystring` / `multivalueheader` are accepted as the same checks).
   */
  requiredParameters?: readonly string[] | undefined;
}

export interface ValidationInput {
  body: Buffer;
  contentType: string | undefined;
  /** decoded query, last value per name (`singleValueMap`) */
  query: Readonly<Record<string, string>> | null;
  headers: ReadonlyArray<readonly [string, string]>;
  pathParameters: Readonly<Record<string, string>> | null;
}

export type ValidationResult =
  | { ok: true; parsedBody?: unknown }
  | {
      ok: false;
      type: 'BAD_REQUEST_BODY' | 'BAD_REQUEST_PARAMETERS';
      /** exactly AWS's client message */
      message: string;
      /** `$context.error.validationErrorString`, for logs */
      detail: string;
    };

export type RequestValidator = (req: ValidationInput) => ValidationResult;

export type ParameterLocation = 'querystring' | 'header' | 'path';

export interface RequiredParameter {
  location: ParameterLocation;
  name: string;
}

const PARAMETER_EXPR = /^method\.request\.(querystring|multivaluequerystring|header|multivalueheader|path)\.(.+)$/;

/** Parses `method.request.<location>.<name>`; throws `ModelCompileError` for anything else. */
export function parseRequiredParameter(expr: string): RequiredParameter {
  const m = PARAMETER_EXPR.exec(expr);
  if (!m) {
    throw new ModelCompileError(
      `invalid required parameter ${JSON.stringify(expr)}: expected method.request.querystring.NAME, method.request.header.NAME or method.request.path.NAME`,
    );
  }
  const kind = m[1] as string;
  const name = m[2] as string;
  const location: ParameterLocation = kind.endsWith('querystring') ? 'querystring' : kind.endsWith('header') ? 'header' : 'path';
  return { location, name };
}

const isBlank = (v: string | undefined): boolean => v === undefined || v.trim() === '';

function parameterValue(p: RequiredParameter, req: ValidationInput): string | undefined {
  switch (p.location) {
    case 'querystring':
      return req.query && Object.hasOwn(req.query, p.name) ? req.query[p.name] : undefined;
    case 'header':
      return headerValue(req.headers, p.name);
    case 'path':
      return req.pathParameters && Object.hasOwn(req.pathParameters, p.name) ? req.pathParameters[p.name] : undefined;
  }
}

const INVALID_BODY = 'Invalid request body';
const NO_CHECKS: RequestValidator = () => OK;

/**
 * Compiles a method's validator once; throws `ModelCompileError` for a bad model or parameter
 * expression, or when body validation is on without a model.
 *
 * - Parameters are checked first (as on AWS); the message lists every missing or blank one, in
 *   the configured order, by name: `Missing required request parameters: [q1, h1]`. Query names
 *   are case-sensitive, header names are not.
 * - Body: parsed as JSON whatever the Content-Type (there is one model per method); a body that is
 *   not JSON, or does not match the model, is `Invalid request body`. An empty (or blank) body is
 *   validated as `{}`, so a model with `required` properties rejects it. The parsed body is
 *   returned in `parsedBody` (absent for an empty body) so the pipeline need not parse it again.
 */
export function compileRequestValidator(def: RequestValidatorDef): RequestValidator {
  const params =
    def.validateRequestParameters === true ? (def.requiredParameters ?? []).map(parseRequiredParameter) : [];
  let model: ModelValidator | undefined;
  if (def.validateRequestBody === true) {
    if (def.model === undefined) throw new ModelCompileError('validateRequestBody is on but the method has no model');
    model = compileModel(def.model);
  }
  if (params.length === 0 && model === undefined) return NO_CHECKS;
  const checkBody = model;

  return (req) => {
    if (params.length > 0) {
      let missing: string[] | undefined;
      for (const p of params) {
        if (!isBlank(parameterValue(p, req))) continue;
        if (missing === undefined) missing = [p.name];
        else missing.push(p.name);
      }
      if (missing) {
        const message = `Missing required request parameters: [${missing.join(', ')}]`;
        return { ok: false, type: 'BAD_REQUEST_PARAMETERS', message, detail: message };
      }
    }
    if (checkBody === undefined) return OK;
    let text = req.body.toString('utf8');
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    let parsed: unknown;
    let empty = false;
    if (text.trim() === '') {
      empty = true;
      parsed = {};
    } else {
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        const why = err instanceof SyntaxError ? err.message : String(err);
        return { ok: false, type: 'BAD_REQUEST_BODY', message: INVALID_BODY, detail: `[Invalid JSON: ${why}]` };
      }
    }
    const r = checkBody(parsed);
    if (!r.ok) return { ok: false, type: 'BAD_REQUEST_BODY', message: INVALID_BODY, detail: r.errors };
    return empty ? OK : { ok: true, parsedBody: parsed };
  };
}
