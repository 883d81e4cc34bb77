import { describe, expect, it } from 'vitest';
import { compileSelectionExpression, SelectionExpressionError } from '../../server/websocket/selection-expression.ts';

const body = { service: 'chat', action: 'join', items: ['item1', 'item2'], nested: { a: { b: 'deep' } }, n: 3, t: true };

describe('route selection expressions (AWS examples)', () => {
  it.each([
    ['$request.body.action', 'join'],
    ['${request.body.action}', 'join'],
    ['${request.body.service}/${request.body.action}', 'chat/join'],
    ['${request.body.action}-${request.body.invalidPath}', 'join-'],
    ['action', 'action'],
    ['\\$default', '$default'],
    ['$request.body.items', '[item1, item2]'],
    ['$request.body.nested.a.b', 'deep'],
    ['$request.body.n', '3'],
    ['$request.body.t', 'true'],
    ['$request.body.missing.deeper', ''],
  ])('%s → %s', (expr, expected) => {
    expect(compileSelectionExpression(expr).evaluate(body)).toBe(expected);
  });

  it('is case-sensitive', () => {
    expect(compileSelectionExpression('$request.body.Action').evaluate(body)).toBe('');
  });

  it('gives "" against non-objects', () => {
    const e = compileSelectionExpression('$request.body.action');
    expect(e.evaluate('string')).toBe('');
    expect(e.evaluate(null)).toBe('');
    expect(e.evaluate([1])).toBe('');
  });

  it('marks static expressions as not reading the body', () => {
    expect(compileSelectionExpression('static').usesBody).toBe(false);
    expect(compileSelectionExpression('$request.body.action').usesBody).toBe(true);
  });

  it.each(['$request.header.x', '${request.body.action', '$', '$request.body.'])('rejects %s', (expr) => {
    expect(() => compileSelectionExpression(expr)).toThrow(SelectionExpressionError);
  });
});
