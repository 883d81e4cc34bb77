import { describe, expect, it } from 'vitest';
import {
  ModelCompileError,
  type ValidationInput,
  compileModel,
  compileRequestValidator,
  parseRequiredParameter,
} from '../../server/http/validation.ts';

const petModel = {
  $schema: 'http://json-schema.org/draft-04/schema#',
  title: 'Pet',
  type: 'object',
  required: ['name', 'price'],
  properties: {
    name: { type: 'string', minLength: 1 },
    price: { type: 'number', minimum: 0, maximum: 100, exclusiveMaximum: true },
    tag: { type: 'string', example: 'dog' },
    email: { type: 'string', format: 'email' },
    count: { type: 'integer', format: 'int32', default: 1 },
  },
};

function input(over: Partial<ValidationInput> = {}): ValidationInput {
  return {
    body: Buffer.alloc(0),
    contentType: 'application/json',
    query: null,
    headers: [],
    pathParameters: null,
    ...over,
  };
}

const json = (v: unknown) => Buffer.from(JSON.stringify(v));

describe('compileModel', () => {
  it('should validate with draft 4 semantics by default (boolean exclusiveMaximum)', () => {
    const check = compileModel(petModel);
    expect(check({ name: 'rex', price: 5 })).toEqual({ ok: true });
    expect(check({ name: 'rex', price: 100 })).toMatchObject({ ok: false });
    const { $schema: _s, ...noSchema } = petModel;
    expect(compileModel(noSchema)({ name: 'rex', price: 100 })).toMatchObject({ ok: false });
  });

  it('should report the first problem with its path', () => {
    const r = compileModel(petModel)({ name: 'rex', price: -1 });
    expect(r).toEqual({ ok: false, errors: '[/price must be >= 0]' });
    expect(compileModel(petModel)({ price: 1 })).toEqual({ ok: false, errors: "[must have required property 'name']" });
  });

  it('should check formats and ignore OpenAPI-only ones', () => {
    const check = compileModel(petModel);
    expect(check({ name: 'a', price: 1, email: 'nope' })).toMatchObject({ ok: false });
    expect(check({ name: 'a', price: 1, email: 'a@example.com', count: 3 })).toEqual({ ok: true });
  });

  it('should neither coerce types nor apply defaults', () => {
    const check = compileModel(petModel);
    expect(check({ name: 'a', price: '1' })).toMatchObject({ ok: false });
    const value: Record<string, unknown> = { name: 'a', price: 1 };
    check(value);
    expect(value).toEqual({ name: 'a', price: 1 });
  });

  it('should use the 2020-12 draft when $schema says so (or when asked)', () => {
    const schema2020 = {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'array',
      prefixItems: [{ type: 'string' }, { type: 'integer' }],
      items: false,
    };
    const check = compileModel(schema2020);
    expect(check(['a', 1])).toEqual({ ok: true });
    expect(check(['a', 1, 2])).toMatchObject({ ok: false });
    expect(check(['a', 'b'])).toMatchObject({ ok: false });
    const numeric = compileModel({ type: 'number', exclusiveMinimum: 0 }, { draft: 2020 });
    expect(numeric(0)).toMatchObject({ ok: false });
    expect(numeric(0.5)).toEqual({ ok: true });
  });

  it('should reject invalid schemas, other drafts and contradictions at compile time', () => {
    expect(() => compileModel({ type: 'nonsense' })).toThrow(ModelCompileError);
    expect(() => compileModel({ $schema: 'http://json-schema.org/draft-07/schema#', type: 'object' })).toThrow(/unsupported \$schema/);
    expect(() => compileModel(petModel, { draft: 2020 })).toThrow(/draft 4/);
    expect(() => compileModel({ $ref: '#/definitions/missing' })).toThrow(ModelCompileError);
  });

  it('should compile two models with the same id, and local $refs', () => {
    const a = compileModel({ id: 'http://example.com/m', type: 'string' });
    const b = compileModel({ id: 'http://example.com/m', type: 'integer' });
    expect(a('x')).toEqual({ ok: true });
    expect(b('x')).toMatchObject({ ok: false });
    const withRef = compileModel({
      definitions: { item: { type: 'object', required: ['id'] } },
      type: 'array',
      items: { $ref: '#/definitions/item' },
    });
    expect(withRef([{ id: 1 }])).toEqual({ ok: true });
    expect(withRef([{}])).toMatchObject({ ok: false });
  });

  it('should compile recursive models and models repeating a nested id', () => {
    const tree = compileModel({ type: 'object', properties: { kids: { type: 'array', items: { $ref: '#' } } } });
    expect(tree({ kids: [{ kids: [] }] })).toEqual({ ok: true });
    expect(tree({ kids: [{ kids: 1 }] })).toMatchObject({ ok: false });
    const nested = () =>
      compileModel({
        type: 'object',
        properties: { a: { id: 'http://example.com/nested', type: 'string' } },
      });
    const first = nested();
    const second = nested();
    expect(first({ a: 'x' })).toEqual({ ok: true });
    expect(second({ a: 1 })).toMatchObject({ ok: false });
  });

  it('should refuse a model claiming a meta-schema id, and keep working afterwards', () => {
    expect(() => compileModel({ id: 'http://json-schema.org/draft-04/schema#', type: 'string' })).toThrow(/meta-schema/);
    expect(compileModel({ type: 'string' })('x')).toEqual({ ok: true });
  });
});

describe('compileModel on hostile input', () => {
  it('should reject, not throw, when a recursive model meets very deep nesting', () => {
    const tree = compileModel({ type: 'array', items: { $ref: '#' } });
    const depth = 200_000;
    const deep = JSON.parse(`${'['.repeat(depth)}${']'.repeat(depth)}`) as unknown;
    expect(tree(deep)).toEqual({ ok: false, errors: '[value is nested too deeply]' });
    expect(tree([[[]]])).toEqual({ ok: true });
  });
});

describe('parseRequiredParameter', () => {
  it.each([
    ['method.request.querystring.q', { location: 'querystring', name: 'q' }],
    ['method.request.multivaluequerystring.tags', { location: 'querystring', name: 'tags' }],
    ['method.request.header.X-Api-Version', { location: 'header', name: 'X-Api-Version' }],
    ['method.request.path.id', { location: 'path', name: 'id' }],
  ])('should parse %s', (expr, expected) => {
    expect(parseRequiredParameter(expr)).toEqual(expected);
  });

  it('should reject other forms', () => {
    expect(() => parseRequiredParameter('method.request.body.x')).toThrow(ModelCompileError);
    expect(() => parseRequiredParameter('querystring.q')).toThrow(ModelCompileError);
  });
});

describe('compileRequestValidator: parameters', () => {
  const validate = compileRequestValidator({
    validateRequestParameters: true,
    requiredParameters: ['method.request.querystring.q1', 'method.request.header.h1', 'method.request.path.id'],
  });
  const good = input({ query: { q1: 'x' }, headers: [['H1', 'v']], pathParameters: { id: '7' } });

  it('should pass when every parameter is present and non-blank (header names case-insensitive)', () => {
    expect(validate(good)).toEqual({ ok: true });
  });

  it('should list every missing or blank parameter, in configured order, with the AWS message', () => {
    const r = validate(input({ query: { q1: '   ' }, headers: [['h2', 'v']], pathParameters: { id: '7' } }));
    expect(r).toEqual({
      ok: false,
      type: 'BAD_REQUEST_PARAMETERS',
      message: 'Missing required request parameters: [q1, h1]',
      detail: 'Missing required request parameters: [q1, h1]',
    });
  });

  it('should treat query names case-sensitively and never read inherited properties', () => {
    expect(validate({ ...good, query: { Q1: 'x' } })).toMatchObject({ ok: false, message: 'Missing required request parameters: [q1]' });
    const proto = compileRequestValidator({ validateRequestParameters: true, requiredParameters: ['method.request.querystring.constructor'] });
    expect(proto(input({ query: {} }))).toMatchObject({ ok: false, message: 'Missing required request parameters: [constructor]' });
  });

  it('should skip parameter checks when validateRequestParameters is off', () => {
    const off = compileRequestValidator({ validateRequestParameters: false, requiredParameters: ['method.request.querystring.q'] });
    expect(off(input())).toEqual({ ok: true });
  });

  it('should check parameters before the body', () => {
    const both = compileRequestValidator({
      validateRequestParameters: true,
      validateRequestBody: true,
      requiredParameters: ['method.request.header.h1'],
      model: petModel,
    });
    expect(both(input({ body: Buffer.from('not json') }))).toMatchObject({ type: 'BAD_REQUEST_PARAMETERS' });
  });

  it('should reject a bad parameter expression at compile time', () => {
    expect(() => compileRequestValidator({ validateRequestParameters: true, requiredParameters: ['q'] })).toThrow(ModelCompileError);
  });
});

describe('compileRequestValidator: body', () => {
  const validate = compileRequestValidator({ validateRequestBody: true, model: petModel });

  it('should pass a matching body and hand back the parsed value', () => {
    expect(validate(input({ body: json({ name: 'rex', price: 3 }) }))).toEqual({ ok: true, parsedBody: { name: 'rex', price: 3 } });
  });

  it('should answer "Invalid request body" with the details kept for logs', () => {
    const r = validate(input({ body: json({ name: 'rex', price: 'free' }) }));
    expect(r).toEqual({ ok: false, type: 'BAD_REQUEST_BODY', message: 'Invalid request body', detail: '[/price must be number]' });
  });

  it('should treat invalid JSON as an invalid body', () => {
    const r = validate(input({ body: Buffer.from('{"name": "rex",') }));
    expect(r).toMatchObject({ ok: false, type: 'BAD_REQUEST_BODY', message: 'Invalid request body' });
    if (!r.ok) expect(r.detail).toMatch(/^\[Invalid JSON: /);
  });

  it('should validate an empty body as {} and accept a UTF-8 BOM', () => {
    expect(validate(input())).toMatchObject({ ok: false, message: 'Invalid request body' });
    const lax = compileRequestValidator({ validateRequestBody: true, model: { type: 'object' } });
    expect(lax(input({ body: Buffer.from(' \n') }))).toEqual({ ok: true });
    const bom = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), json({ name: 'a', price: 1 })]);
    expect(validate(input({ body: bom }))).toMatchObject({ ok: true });
  });

  it('should keep a __proto__ key as data', () => {
    const strict = compileRequestValidator({
      validateRequestBody: true,
      model: { type: 'object', additionalProperties: false, properties: { a: { type: 'string' } } },
    });
    expect(strict(input({ body: Buffer.from('{"__proto__":{"polluted":true}}') }))).toMatchObject({ ok: false });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('should skip body checks when validateRequestBody is off, and need a model when on', () => {
    expect(compileRequestValidator({ validateRequestBody: false, model: petModel })(input({ body: Buffer.from('x') }))).toEqual({ ok: true });
    expect(() => compileRequestValidator({ validateRequestBody: true })).toThrow(/no model/);
  });
});
