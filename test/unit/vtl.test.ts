import { describe, expect, it } from 'vitest';
import {
  compileTemplate,
  escapeJavaScript,
  evaluateJsonPath,
  render,
  Template,
  type VtlRenderContext,
  VtlError,
  urlDecode,
  urlEncode,
} from '../../server/integrations/vtl.ts';

const BODY = JSON.stringify({
  name: 'Ann',
  age: 31,
  nothing: null,
  tags: ['a', 'b', 'c'],
  pet: { kind: 'dog', legs: 4 },
  'odd key': 'yes',
  items: [{ id: 1 }, { id: 2 }],
});

function ctx(overrides: Partial<VtlRenderContext> = {}): VtlRenderContext {
  return {
    body: BODY,
    params: {
      path: { id: '42', shared: 'from-path' },
      querystring: { q: 'search', shared: 'from-query', page: '2' },
      header: { 'X-Api-Key': 'k1', shared: 'from-header', Accept: '*/*' },
    },
    context: {
      requestId: 'req-1',
      stage: 'prod',
      httpMethod: 'POST',
      identity: { sourceIp: '203.0.113.9', userAgent: 'curl/8.0', cognitoIdentityId: null },
      authorizer: { principalId: 'user-1', claims: { sub: 'abc' } },
    },
    stageVariables: { backend: 'http://localhost:3000', version: 'v2' },
    ...overrides,
  };
}

const run = (src: string, c: VtlRenderContext = ctx()): string => render(compileTemplate(src), c);

function renderError(src: string, c: VtlRenderContext = ctx()): VtlError {
  try {
    run(src, c);
  } catch (err) {
    if (err instanceof VtlError) return err;
    throw new Error(`expected a VtlError, got ${String(err)}`);
  }
  throw new Error('expected the template to fail');
}

describe('$input', () => {
  it('should give the raw body', () => {
    expect(run('$input.body')).toBe(BODY);
    expect(run('[$input.body]', ctx({ body: 'not json at all' }))).toBe('[not json at all]');
  });

  it('should give JSON text from $input.json', () => {
    expect(run("$input.json('$.name')")).toBe('"Ann"');
    expect(run("$input.json('$.age')")).toBe('31');
    expect(run("$input.json('$.pet')")).toBe('{"kind":"dog","legs":4}');
    expect(run("$input.json('$.tags[1]')")).toBe('"b"');
    expect(run("$input.json('$.tags[-1]')")).toBe('"c"');
    expect(run("$input.json('$.items[1].id')")).toBe('2');
    expect(run(`$input.json("$['odd key']")`)).toBe('"yes"');
    expect(run("$input.json('$.nothing')")).toBe('null');
    expect(run("$input.json('$')")).toBe(BODY);
    expect(run('$input.json()')).toBe(BODY);
  });

  it('should render nothing from $input.json when the path does not match', () => {
    expect(run("[$input.json('$.missing')][$input.json('$.tags[9]')][$input.json('$.name.x')]")).toBe('[][][]');
  });

  it('should give values from $input.path', () => {
    expect(run("$input.path('$.name')")).toBe('Ann');
    expect(run("$input.path('$.tags').size()")).toBe('3');
    expect(run("$input.path('$.pet').kind")).toBe('dog');
    expect(run("$input.path('$.pet')")).toBe('{kind=dog, legs=4}');
    expect(run("$input.path('$.tags')")).toBe('[a, b, c]');
    expect(run("#set($p = $input.path('$'))$p.items[0].id $p.age")).toBe('1 31');
    expect(run("[$input.path('$.missing')][$input.path('$.nothing')]")).toBe('[][]');
    expect(run("#if($input.path('$.missing'))yes#{else}no#end")).toBe('no');
  });

  it('should treat an empty body as {}', () => {
    expect(run("$input.json('$')|$input.path('$').size()|[$input.json('$.a')]", ctx({ body: '  ' }))).toBe('{}|0|[]');
  });

  it('should throw GW_ERR_VTL_BODY_NOT_JSON for a body that is not JSON', () => {
    const err = renderError("$input.json('$')", ctx({ body: '{oops' }));
    expect(err.code).toBe('GW_ERR_VTL_BODY_NOT_JSON');
    expect(err.message).toMatch(/^Could not parse payload into json: /);
    expect(renderError("$input.path('$.a')", ctx({ body: 'text' })).code).toBe('GW_ERR_VTL_BODY_NOT_JSON');
  });

  it('should look parameters up in path, then query string, then headers', () => {
    expect(run("$input.params('shared')")).toBe('from-path');
    expect(run("$input.params('q') $input.params('page')")).toBe('search 2');
    expect(run("$input.params('X-Api-Key') $input.params('x-api-key')")).toBe('k1 k1');
    expect(run("[$input.params('missing')]")).toBe('[]');
    expect(run("[$input.params('constructor')][$input.params('toString')]")).toBe('[][]');
  });

  it('should give all parameters from $input.params()', () => {
    expect(run("$input.params().path.id $input.params().querystring.get('q') $input.params().header.size()")).toBe('42 search 3');
    const src = '#foreach($type in $input.params().keySet())$type:#foreach($k in $input.params().get($type).keySet())$k#if($foreach.hasNext),#end#end;#end';
    expect(run(src)).toBe('path:id,shared;querystring:q,shared,page;header:X-Api-Key,shared,Accept;');
    expect(run('$input.params()', ctx({ params: { path: { a: '1' }, querystring: {}, header: {} } }))).toBe(
      '{path={a=1}, querystring={}, header={}}',
    );
  });

  it('should not let templates change the caller parameter maps', () => {
    const c = ctx();
    run("#set($h = $input.params().header)#set($h.injected = 'x')$h.injected", c);
    expect(c.params.header).not.toHaveProperty('injected');
  });
});

describe('$context and $stageVariables', () => {
  it('should expose context variables, nested ones included', () => {
    expect(run('$context.requestId $context.identity.sourceIp $context.authorizer.claims.sub $context.authorizer.principalId')).toBe(
      'req-1 203.0.113.9 abc user-1',
    );
  });

  it('should render null and missing variables as empty', () => {
    expect(run('[$context.identity.cognitoIdentityId][$context.nope][$context.a.b.c][$undefinedThing]')).toBe('[][][][]');
  });

  it('should expose stage variables in every AWS spelling', () => {
    expect(run("$stageVariables.backend|$stageVariables['version']|${stageVariables['version']}|$stageVariables.get('version')")).toBe(
      'http://localhost:3000|v2|v2|v2',
    );
  });

  it('should let templates write overrides into $context for the caller', () => {
    const c = ctx();
    run('#set($context.responseOverride = {})#set($context.responseOverride.status = 400)', c);
    expect(c.context.responseOverride).toEqual({ status: 400 });
  });

  it('should not let templates change the caller stage variables', () => {
    const c = ctx();
    run("#set($stageVariables.backend = 'evil')", c);
    expect(c.stageVariables.backend).toBe('http://localhost:3000');
  });
});

describe('$util', () => {
  it('should escapeJavaScript like Java commons-lang', () => {
    expect(run('$util.escapeJavaScript("it\'s a \\"test\\" / \\\\ done")')).toBe('it\\\'s a \\"test\\" \\/ \\\\\\\\ done');
    expect(escapeJavaScript("it's")).toBe("it\\'s");
    expect(escapeJavaScript('a"b\\c/d')).toBe('a\\"b\\\\c\\/d');
    expect(escapeJavaScript('\b\t\n\f\r\u0001\u001f')).toBe('\\b\\t\\n\\f\\r\\u0001\\u001F');
    expect(escapeJavaScript('é€😀')).toBe('\\u00E9\\u20AC\\uD83D\\uDE00');
    expect(escapeJavaScript('plain ascii ~ 123')).toBe('plain ascii ~ 123');
    // the common JSON-safe idiom from the AWS docs
    expect(run("$util.escapeJavaScript($input.json('$.name')).replaceAll(\"\\\\'\",\"'\")")).toBe('\\"Ann\\"');
    expect(run('[$util.escapeJavaScript($context.nope)]')).toBe('[]');
  });

  it('should parseJson into a value', () => {
    expect(run('#set($o = $util.parseJson(\'{"a":{"b":[1,2]}}\'))$o.a.b[1] $o.a.b.size()')).toBe('2 2');
    expect(run("#set($o = $util.parseJson($input.body))$o.pet.kind")).toBe('dog');
  });

  it('should urlEncode and urlDecode like Java URLEncoder/URLDecoder', () => {
    expect(run("$util.urlEncode('a b&c=d/é~*._-!')")).toBe('a+b%26c%3Dd%2F%C3%A9%7E*._-%21');
    expect(run("$util.urlDecode('a+b%26c%3Dd%2F%C3%A9')")).toBe('a b&c=d/é');
    expect(urlEncode("()'")).toBe('%28%29%27');
    expect(urlEncode('\uD800x')).toBe('%3Fx');
    expect(urlDecode('no-escapes+here')).toBe('no-escapes here');
    expect(urlDecode('%E2%82%AC%41')).toBe('€A');
    expect(urlDecode('%FF')).toBe('\uFFFD');
  });

  it('should base64Encode and base64Decode UTF-8', () => {
    expect(run("$util.base64Encode('héllo')")).toBe('aMOpbGxv');
    expect(run("$util.base64Decode('aMOpbGxv')")).toBe('héllo');
    expect(run("$util.base64Decode('aGk')")).toBe('hi');
  });

  it('should fail on invalid input, as Java does', () => {
    expect(renderError("$util.parseJson('{nope')").message).toMatch(/^parseJson: /);
    expect(renderError("$util.urlDecode('100%')").message).toMatch(/^urlDecode: malformed escape/);
    expect(renderError("$util.urlDecode('%zz')").code).toBe('GW_ERR_VTL_RENDER');
    expect(renderError("$util.base64Decode('a*b=')").message).toMatch(/base64Decode/);
    expect(renderError("$util.base64Decode('abcde')").message).toMatch(/base64Decode/);
  });
});

describe('directives and limits', () => {
  it('should support #set, #if and #foreach with $foreach.hasNext', () => {
    const src =
      '#set($items = $input.path(\'$.items\'))[#foreach($i in $items){"id":$i.id}#if($foreach.hasNext),#end#end]#if($items.size() > 1) many#end';
    expect(run(src)).toBe('[{"id":1},{"id":2}] many');
  });

  it('should iterate the values of a map', () => {
    expect(run("#foreach($v in $input.path('$.pet'))$v;#end")).toBe('dog;4;');
  });

  it('should cap #foreach at 1000 iterations', () => {
    const big = JSON.stringify({ list: Array.from({ length: 2500 }, (_, i) => i) });
    expect(run("#set($n = 0)#foreach($x in $input.path('$.list'))#set($n = $n + 1)#end$n", ctx({ body: big }))).toBe('1000');
    expect(run('#set($n = 0)#foreach($x in [1..5000])#set($n = $n + 1)#set($last = $x)#end$n $last')).toBe('1000 1000');
    expect(run('#foreach($x in [1..3])$x#end')).toBe('123');
    expect(run('#foreach($x in [3..1])$x#end')).toBe('321');
  });

  it('should honour a custom per-loop cap', () => {
    const t = compileTemplate('#foreach($x in [1..10])$x#end', { maxForeachIterations: 3 });
    expect(render(t, ctx())).toBe('123');
  });

  it('should stop renders whose loops run too long in total', () => {
    const err = renderError('#foreach($a in [1..1000])#foreach($b in [1..1000])#end#end');
    expect(err.code).toBe('GW_ERR_VTL_LIMIT');
    expect(err.message).not.toContain('gatehouse');
  });

  it('should refuse huge ranges, even inside interpolated strings', () => {
    const body = JSON.stringify({ n: 1e9 });
    expect(renderError("#foreach($i in [1..$input.path('$.n')])x#end", ctx({ body })).code).toBe('GW_ERR_VTL_LIMIT');
    expect(renderError('#set($s = "#foreach($i in [0..99999])x#end")').code).toBe('GW_ERR_VTL_LIMIT');
  });

  it('should refuse eval', () => {
    expect(renderError("#eval('#foreach($i in [1..5])x#end')").message).toMatch(/eval is not supported/);
    expect(renderError("$input.json('$')$input.eval('x')").message).toMatch(/eval is not supported/);
  });

  it('should surface template errors as VtlError', () => {
    expect(() => compileTemplate('#if($a')).toThrow(VtlError);
    try {
      compileTemplate('#foreach($i in )#end');
    } catch (err) {
      expect(err).toBeInstanceOf(VtlError);
      expect((err as VtlError).code).toBe('GW_ERR_VTL_SYNTAX');
    }
    expect(renderError("$input.json('$..deep')").message).toMatch(/unsupported JSONPath "\$\.\.deep"/);
    expect(renderError("$input.json('name')").message).toMatch(/must start with/);
    expect(renderError("$input.json('$[*]')").message).toMatch(/only integer indexes/);
    const recursive = renderError('#macro(loop)#loop()#end#loop()');
    expect(recursive.code).toBe('GW_ERR_VTL_RENDER');
  });

  it('should refuse oversized templates', () => {
    expect(() => compileTemplate('x'.repeat(300 * 1024 + 1))).toThrow(/larger than/);
    expect(() => compileTemplate('x'.repeat(10), { maxTemplateBytes: 5 })).toThrow(VtlError);
  });

  it('should render a compiled template many times with independent state', () => {
    const t = new Template('#if($seen)seen#end#set($seen = true)x#stop() after');
    expect(render(t, ctx())).toBe('x');
    expect(render(t, ctx())).toBe('x');
    const macro = compileTemplate('#macro(hi $who)hi $who#end#hi("a")');
    expect(render(macro, ctx())).toBe('hi a');
    expect(render(macro, ctx())).toBe('hi a');
    expect(t.source).toContain('#set');
  });

  it('should render the AWS passthrough-style template', () => {
    const src = `{
  "body": $input.json('$'),
  "method": "$context.httpMethod",
  "stage": "$context.stage",
  "id": "$input.params('id')",
  "backend": "$stageVariables.backend"
}`;
    expect(JSON.parse(run(src))).toEqual({
      body: JSON.parse(BODY),
      method: 'POST',
      stage: 'prod',
      id: '42',
      backend: 'http://localhost:3000',
    });
  });
});

describe('evaluateJsonPath', () => {
  const doc = { a: { b: [10, { c: 'x' }] }, 'we.ird': 1, 'q"uote': 2 };

  it('should follow the supported forms', () => {
    expect(evaluateJsonPath(doc, '$')).toEqual({ found: true, value: doc });
    expect(evaluateJsonPath(doc, '$.a.b[0]')).toEqual({ found: true, value: 10 });
    expect(evaluateJsonPath(doc, '$.a.b[1].c')).toEqual({ found: true, value: 'x' });
    expect(evaluateJsonPath(doc, "$['a']['b'][1]['c']")).toEqual({ found: true, value: 'x' });
    expect(evaluateJsonPath(doc, "$['we.ird']")).toEqual({ found: true, value: 1 });
    expect(evaluateJsonPath(doc, '$["q\\"uote"]')).toEqual({ found: true, value: 2 });
    expect(evaluateJsonPath(doc, ' $.a ')).toEqual({ found: true, value: doc.a });
  });

  it('should report no match without throwing', () => {
    expect(evaluateJsonPath(doc, '$.x')).toEqual({ found: false });
    expect(evaluateJsonPath(doc, '$.a.b[5]')).toEqual({ found: false });
    expect(evaluateJsonPath(doc, '$.a[0]')).toEqual({ found: false });
    expect(evaluateJsonPath(doc, '$.a.b.c')).toEqual({ found: false });
    expect(evaluateJsonPath(doc, '$.a.constructor')).toEqual({ found: false });
    expect(evaluateJsonPath('str', '$.length')).toEqual({ found: false });
  });

  it('should throw for syntax outside the subset', () => {
    for (const p of ['a.b', '$..a', '$.*', '$.a[', "$['a]", '$.', '$a']) {
      expect(() => evaluateJsonPath(doc, p)).toThrow(VtlError);
    }
  });
});
