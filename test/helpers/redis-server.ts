import { type ChildProcess, execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnTracked } from './child.ts';
import { waitFor } from './wait.ts';

/**
 * Throwaway redis-server processes for integration tests: a free port each, no persistence,
 * killed on stop() (and, as a last resort, when the test process exits).
 */
export interface RedisServerHandle {
  url: string;
  port: number;
  /** Stops the server for good. */
  stop(): Promise<void>;
  /** Stops the server (all data is lost), runs `whileDown` if given, and starts it again on the same port. */
  restart(whileDown?: () => Promise<void>): Promise<void>;
}

export interface RedisClusterHandle {
  /** Comma-separated seed list, for `RedisClusterState({ cluster: true, url })`. */
  url: string;
  ports: number[];
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 5_000;

interface RedisProcess {
  child: ChildProcess;
  output(): string;
  exited: Promise<void>;
  stop(): Promise<void>;
}

export async function startRedisServer(opts: { args?: string[] } = {}): Promise<RedisServerHandle> {
  const extra = opts.args ?? [];
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    try {
      let proc = await launch(port, extra);
      return {
        url: `redis://${HOST}:${port}`,
        port,
        stop: () => proc.stop(),
        async restart(whileDown) {
          await proc.stop();
          if (whileDown) await whileDown();
          proc = await launch(port, extra);
        },
      };
    } catch (err) {
      lastError = err; // most likely the port was taken between probing and binding: try another
    }
  }
  throw new Error('could not start redis-server', { cause: lastError });
}

/** A Redis Cluster of `masters` masters and no replicas, with every slot assigned. */
export async function startRedisCluster(opts: { masters?: number } = {}): Promise<RedisClusterHandle> {
  const masters = opts.masters ?? 3;
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-redis-cluster-'));
  const procs: RedisProcess[] = [];
  const stop = async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const ports: number[] = [];
    while (ports.length < masters) {
      // The cluster bus listens on port + 10000, so both must be free.
      const port = await freePort({ withBusPort: true, exclude: ports });
      const args = [
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        join(dir, `nodes-${port}.conf`),
        '--cluster-node-timeout',
        '5000',
        '--dir',
        dir,
      ];
      try {
        procs.push(await launch(port, args));
        ports.push(port);
      } catch (err) {
        if (!String(err).includes('Address already in use')) throw err;
      }
    }
    await run('redis-cli', [
      '--cluster',
      'create',
      ...ports.map((p) => `${HOST}:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    await waitFor(
      async () => {
        for (const port of ports) {
          const info = await command(port, ['CLUSTER', 'INFO']);
          if (!info.includes('cluster_state:ok')) return false;
        }
        return true;
      },
      { timeoutMs: START_TIMEOUT_MS, intervalMs: 100, message: 'redis cluster_state:ok on every node' },
    );
    return { url: ports.map((p) => `redis://${HOST}:${p}`).join(','), ports, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function launch(port: number, extra: string[]): Promise<RedisProcess> {
  const tracked = spawnTracked('redis-server', ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', ...extra], {
    tailChars: 4000,
    stopTimeoutMs: STOP_TIMEOUT_MS,
  });
  const out = () => tracked.output();
  const proc: RedisProcess = { child: tracked.child, output: out, exited: tracked.exited, stop: () => tracked.stop() };
  try {
    await waitFor(
      async () => {
        if (tracked.hasExited()) throw new Error(`redis-server exited: ${out()}`);
        return (await command(port, ['PING'])) === 'PONG';
      },
      { timeoutMs: START_TIMEOUT_MS, intervalMs: 50, message: `redis-server PING on port ${port}` },
    );
  } catch (err) {
    await proc.stop();
    throw new Error(`redis-server on port ${port} did not start: ${out()}`, { cause: err });
  }
  return proc;
}

/** Sends one command over a fresh socket and returns a simple/bulk/integer reply as text. */
export function command(port: number, args: string[], timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: HOST, port });
    let buf = Buffer.alloc(0);
    const finish = (err: Error | undefined, value?: string) => {
      socket.destroy();
      if (err) reject(err);
      else resolve(value ?? '');
    };
    socket.setTimeout(timeoutMs, () => finish(new Error(`redis command ${args[0]} timed out`)));
    socket.on('error', (err) => finish(err));
    socket.on('connect', () => {
      let req = `*${args.length}\r\n`;
      for (const a of args) req += `$${Buffer.byteLength(a)}\r\n${a}\r\n`;
      socket.write(req);
    });
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const eol = buf.indexOf('\r\n');
      if (eol < 0) return;
      const head = buf.subarray(1, eol).toString();
      switch (buf[0]) {
        case 0x2b: // +
        case 0x3a: // :
          finish(undefined, head);
          return;
        case 0x2d: // -
          finish(new Error(head));
          return;
        case 0x24: {
          // $
          const len = Number(head);
          if (len < 0) finish(undefined, '');
          else if (buf.length >= eol + 2 + len) finish(undefined, buf.subarray(eol + 2, eol + 2 + len).toString());
          return;
        }
        default:
          finish(new Error(`unexpected redis reply: ${buf.toString().slice(0, 80)}`));
      }
    });
  });
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: START_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr || stdout}`, { cause: err }));
      else resolve(stdout);
    });
  });
}

async function freePort(opts: { withBusPort?: boolean; exclude?: number[] } = {}): Promise<number> {
  if (!opts.withBusPort) return listenOnce(0);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 25_000);
    const clash = (p: number) => [p, p + 10_000].some((q) => Math.abs(q - port) < 2 || Math.abs(q - port - 10_000) < 2);
    if (opts.exclude?.some(clash)) continue;
    const ok = (await canListen(port)) && (await canListen(port + 10_000));
    if (ok) return port;
  }
  throw new Error('no free port pair for a redis cluster node');
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, HOST, () => {
      const addr = srv.address();
      const got = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(got));
    });
  });
}

async function canListen(port: number): Promise<boolean> {
  try {
    await listenOnce(port);
    return true;
  } catch (err) {
    if (err instanceof Error && 'code' in err && err.code === 'EADDRINUSE') return false;
    throw err;
  }
}
