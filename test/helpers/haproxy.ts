import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnTracked } from './child.ts';
import { waitFor } from './wait.ts';

/**
 * A real HAProxy (Debian's, installed by `.ci/run` when absent) in front of gateway nodes:
 * HTTP mode with WebSocket passthrough (`timeout tunnel`), roundrobin, no stickiness, health
 * checks on `/healthz` (not `/readyz`: a node whose Redis is down still serves its local
 * connections and must stay in rotation), and connection failures redispatched to another
 * server. Runs in the foreground as a child process with a stats socket for server states.
 */
export interface HaproxyHandle {
  port: number;
  /** `ws://127.0.0.1:<port>/<stage><query>` through the load balancer. */
  wsUrl(stage: string, query?: string): string;
  /** Backend server name (`n0`, `n1`, ...) → HAProxy status (`UP`, `DOWN`, `MAINT`, `UP 1/2`, ...). */
  serverStates(): Promise<Map<string, string>>;
  /** Waits until exactly the servers with these indexes are UP and every other one is not. */
  waitForUp(indexes: readonly number[], timeoutMs?: number): Promise<void>;
  output(): string;
  stop(): Promise<void>;
}

export const HAPROXY_BIN = process.env.HAPROXY_BIN ?? '/usr/sbin/haproxy';
const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
/** Health-check interval: short, so that a dead node leaves the rotation quickly. */
const CHECK_INTER_MS = 250;

export function serverName(index: number): string {
  return `n${index}`;
}

export function haproxyConfig(opts: { frontendPort: number; backendPorts: readonly number[]; statsSocket: string }): string {
  const servers = opts.backendPorts.map((p, i) => `  server ${serverName(i)} ${HOST}:${p} check`);
  return [
    'global',
    '  nbthread 1',
    // Connection logs go to stderr, kept by the handle for failure messages.
    '  log stderr format raw local0 info',
    `  stats socket ${opts.statsSocket} mode 600 level admin`,
    '',
    'defaults',
    '  mode http',
    '  log global',
    '  option httplog',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  timeout http-request 10s',
    // After the 101, client and server are tunnelled: this timeout replaces client/server.
    '  timeout tunnel 1h',
    '  retries 3',
    // A connection refused by a node that just died is retried on another server.
    '  option redispatch 1',
    '',
    'frontend gatehouse',
    `  bind ${HOST}:${opts.frontendPort}`,
    '  default_backend gateways',
    '',
    'backend gateways',
    '  balance roundrobin',
    '  option httpchk',
    '  http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host localhost',
    '  http-check expect status 200',
    `  default-server inter ${CHECK_INTER_MS}ms fastinter ${CHECK_INTER_MS}ms downinter ${CHECK_INTER_MS}ms fall 1 rise 1`,
    ...servers,
    '',
  ].join('\n');
}

export async function startHaproxy(backendPorts: readonly number[]): Promise<HaproxyHandle> {
  if (!existsSync(HAPROXY_BIN)) throw new Error(`haproxy not found at ${HAPROXY_BIN} (.ci/run installs it)`);
  const dir = await mkdtemp(join(tmpdir(), 'gatehouse-haproxy-'));
  const statsSocket = join(dir, 'stats.sock');
  const cfgFile = join(dir, 'haproxy.cfg');
  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const port = await freePort();
      await writeFile(cfgFile, haproxyConfig({ frontendPort: port, backendPorts, statsSocket }));
      return await launch(port, cfgFile, statsSocket, backendPorts.length, dir);
    } catch (err) {
      lastError = err; // most likely the port was taken between probing and binding: try another
    }
  }
  await rm(dir, { recursive: true, force: true });
  throw new Error('could not start haproxy', { cause: lastError });
}

async function launch(port: number, cfgFile: string, statsSocket: string, servers: number, dir: string): Promise<HaproxyHandle> {
  // -db: foreground, no daemon, no master-worker. SIGTERM is a hard stop: every proxied connection closes at once.
  const proc = spawnTracked(HAPROXY_BIN, ['-db', '-f', cfgFile], { tailChars: 8000, stopTimeoutMs: STOP_TIMEOUT_MS });
  const out = () => proc.output();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await proc.stop();
    await rm(dir, { recursive: true, force: true });
  };
  const serverStates = async (): Promise<Map<string, string>> => {
    const csv = await statsCommand(statsSocket, 'show stat\n');
    const lines = csv.split('\n');
    const header = (lines[0] ?? '').replace(/^# /, '').split(',');
    const pxCol = header.indexOf('pxname');
    const svCol = header.indexOf('svname');
    const stCol = header.indexOf('status');
    const states = new Map<string, string>();
    for (const line of lines.slice(1)) {
      const cols = line.split(',');
      if (cols[pxCol] !== 'gateways') continue;
      const sv = cols[svCol];
      const st = cols[stCol];
      if (sv && st && sv !== 'BACKEND' && sv !== 'FRONTEND') states.set(sv, st);
    }
    return states;
  };
  const handle: HaproxyHandle = {
    port,
    wsUrl: (stage, query = '') => `ws://${HOST}:${port}/${stage}${query}`,
    serverStates,
    async waitForUp(indexes, timeoutMs = 10_000) {
      const want = new Set(indexes.map(serverName));
      await waitFor(
        async () => {
          const states = await serverStates();
          for (let i = 0; i < servers; i++) {
            const up = states.get(serverName(i)) === 'UP';
            if (up !== want.has(serverName(i))) return false;
          }
          return true;
        },
        { timeoutMs, intervalMs: 50, message: `haproxy servers up: exactly [${[...want].join(', ')}]` },
      );
    },
    output: out,
    stop,
  };
  try {
    await waitFor(
      async () => {
        if (proc.hasExited()) throw new Error(`haproxy exited: ${out()}`);
        // The stats socket answers once the configuration is loaded and every listener is bound.
        return (await serverStates()).size === servers;
      },
      { timeoutMs: START_TIMEOUT_MS, intervalMs: 50, message: `haproxy listening on ${port}` },
    );
  } catch (err) {
    await proc.kill();
    throw new Error(`haproxy on port ${port} did not start: ${out()}`, { cause: err });
  }
  return handle;
}

/** One command on HAProxy's stats socket; the answer is everything until it closes. */
function statsCommand(socketPath: string, cmd: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path: socketPath });
    let buf = '';
    socket.setTimeout(timeoutMs, () => {
      socket.destroy();
      reject(new Error(`haproxy stats command timed out: ${cmd.trim()}`));
    });
    socket.on('connect', () => socket.write(cmd));
    socket.on('data', (d: Buffer) => {
      buf += d.toString();
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(buf));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, HOST, () => {
      const addr = srv.address();
      const got = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(got));
    });
  });
}
