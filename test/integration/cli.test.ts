import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { connect } from '../helpers/ws-client.ts';

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const CLI = path.join(ROOT, 'scripts', 'gatehouse.mjs');

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, cwd: ROOT });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function tmpFile(name: string, text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-cli-'));
  const f = path.join(dir, name);
  writeFileSync(f, text);
  return f;
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

describe('gatehouse validate', () => {
  it('accepts the example chat API', async () => {
    const r = await run(['validate', 'routes/chat/api.yaml']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/OK \(2 stage\(s\), 5 WebSocket route\(s\)\)/);
  });

  it('reports every error with its path and line, and exits 1', async () => {
    const f = tmpFile(
      'bad.yaml',
      [
        'name: bad',
        'stages:',
        '  prod:',
        '    variabels: {}',
        'websocket:',
        '  routeSelectionExpression: $request.body.action',
        '  routes:',
        '    send:',
        '      integration: { type: LAMBDA }',
        '    other:',
        '      integration: { type: SOAP }',
        '    $weird: {}',
        'limits:',
        '  maxFrameBytes: -1',
        '',
      ].join('\n'),
    );
    const r = await run(['validate', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('stages.prod.variabels (line 4, column');
    expect(r.stderr).toContain('websocket.routes.send.integration (line 9');
    expect(r.stderr).toContain('missing required property "handler"');
    expect(r.stderr).toContain('websocket.routes.other.integration.type');
    expect(r.stderr).toContain('invalid name "$weird"');
    expect(r.stderr).toContain('limits.maxFrameBytes (line 14');
  });

  it('reports a missing handler module and a bad selection expression', async () => {
    const f = tmpFile(
      'api.yaml',
      'name: x\nstages: { s: {} }\nwebsocket:\n  routeSelectionExpression: $request.header.x\n  routes:\n    a: { integration: { type: LAMBDA, handler: nowhere/missing.handler } }\n',
    );
    const r = await run(['validate', f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('websocket.routeSelectionExpression');
    expect(r.stderr).toContain('websocket.routes.a.integration.handler');
    expect(r.stderr).toContain('handler module not found: nowhere/missing');
  });

  it('reports YAML syntax errors with their line', async () => {
    const r = await run(['validate', tmpFile('broken.yaml', 'name: x\nstages: {\n  bad\n')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/line \d+/);
  });

  it('never half-starts: serve with a bad file exits 1 without listening', async () => {
    const r = await run(['serve', tmpFile('bad.yaml', 'name: x\nstages: {}\n'), '--port', '0']);
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain('ws://');
  });
});

describe('gatehouse serve', () => {
  it('serves the chat API, prints its URLs and drains on SIGTERM (clients get 1001)', async () => {
    const p = spawn(process.execPath, [CLI, 'serve', 'routes/chat/api.yaml', '--port', '0', '--host', '127.0.0.1', '--dev-credentials'], {
      cwd: ROOT,
      env: { ...process.env, GATEHOUSE_LOG_LEVEL: 'warn' },
    });
    children.push(p);
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      p.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /WebSocket {2}(ws:\/\/\S+\/prod)/.exec(out);
        if (m) resolve(m[1]!);
      });
      p.on('exit', () => reject(new Error(`exited early: ${out}`)));
    });
    expect(out).toMatch(/AWS_ACCESS_KEY_ID=AKIADEV\w+ AWS_SECRET_ACCESS_KEY=\S+/);
    const alice = await connect(`${url}?token=gatehouse-demo&name=alice`);
    const bob = await connect(`${url}?token=gatehouse-demo&name=bob`);
    alice.send({ action: 'sendmessage', message: 'hi' });
    expect(await bob.nextJson()).toEqual({ from: 'alice', message: 'hi', room: 'lobby' });
    bob.send({ action: 'whoami' });
    expect(await bob.nextJson()).toMatchObject({ name: 'bob', stage: 'prod', role: 'member' });
    await expect(connect(`${url}?name=eve`)).rejects.toMatchObject({ status: 401 });
    await expect(connect(`${url}?token=wrong&name=eve`)).rejects.toMatchObject({ status: 401 });
    const exited = new Promise<number | null>((resolve) => p.on('exit', resolve));
    p.kill('SIGTERM');
    expect((await alice.closed).code).toBe(1001);
    expect((await bob.closed).code).toBe(1001);
    expect(await exited).toBe(0);
  });
});
