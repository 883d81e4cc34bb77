import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { ApiGatewayManagementApiClient, PostToConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { command as redisCommand } from './redis-server.ts';
import { waitFor } from './wait.ts';
import { type CloseInfo, connect, type TestClient } from './ws-client.ts';

/**
 * Gateway nodes as real child processes (`node scripts/gatehouse.mjs serve ...`), one per
 * port, sharing one Redis: what a multi-node deployment runs. Each node keeps the tail of its
 * output for failure messages; `kill` sends a signal and waits for the exit, `restart` starts a
 * stopped node again on the same port with the same node id.
 */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ClusterNode {
  readonly index: number;
  readonly nodeId: string;
  readonly port: number;
  /** True between a successful start and the process's exit. */
  readonly running: boolean;
  wsUrl(stage: string, query?: string): string;
  httpUrl(p: string): string;
  /** Last lines of the node's stdout and stderr (across restarts). */
  logs(): string;
}

export interface GatewayCluster {
  readonly nodes: readonly ClusterNode[];
  node(index: number): ClusterNode;
  /** Sends `signal` and resolves when the process has exited (rejects after timeoutMs, default 20 s). */
  kill(index: number, signal?: NodeJS.Signals, timeoutMs?: number): Promise<ExitInfo>;
  /** Starts an exited node again, same port and node id. */
  restart(index: number): Promise<void>;
  /** Every node's log tail, labelled: for failure messages. */
  logs(): string;
  /** SIGKILLs whatever still runs. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  apiFile: string;
  redisUrl: string;
  size?: number;
  /** Node ids are `${nodeIdPrefix}${index}`; default `node-`. */
  nodeIdPrefix?: string;
  /** Extra environment for every node (management keys, heartbeat/TTL, ...). */
  env?: Record<string, string>;
}

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const CLI = path.join(ROOT, 'scripts', 'gatehouse.mjs');
const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 30_000;
const LOG_TAIL_CHARS = 6000;
const LISTENING = /WebSocket {2}ws:\/\/[^:]+:(\d+)\//;

/**
 * A free port below the kernel's ephemeral range. A node's port must outlive the node: restart()
 * binds it again while the dead process's connections are still in TIME_WAIT, which Linux refuses
 * for a port that was auto-assigned (`--port 0`), and a port in the ephemeral range can meanwhile
 * be handed out as the source port of an outgoing connection.
 */
async function freeFixedPort(exclude: readonly number[]): Promise<number> {
  let low = 32_768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  // An unusual range (starting low) leaves no room below it: fall back to a fixed band.
  const [from, to] = low > 20_000 ? [low - 12_000, low] : [40_000, 50_000];
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = from + Math.floor(Math.random() * (to - from));
    if (exclude.includes(port)) continue;
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port in ${from}-${to - 1}`);
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolve(false);
      else reject(err);
    });
    srv.listen(port, HOST, () => srv.close(() => resolve(true)));
  });
}

class NodeProcess implements ClusterNode {
  port = 0;
  running = false;
  private child: ChildProcess | undefined;
  private exitInfo: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null });
  private tail = '';

  constructor(
    readonly index: number,
    readonly nodeId: string,
    private readonly opts: ClusterOptions,
  ) {}

  wsUrl(stage: string, query = ''): string {
    return `ws://${HOST}:${this.port}/${stage}${query}`;
  }

  httpUrl(p: string): string {
    return `http://${HOST}:${this.port}${p}`;
  }

  logs(): string {
    return this.tail;
  }

  get exited(): Promise<ExitInfo> {
    return this.exitInfo;
  }

  /** Starts the process on `this.port` (0 = any free port) and waits for its WebSocket URL. */
  async start(): Promise<void> {
    if (this.running) throw new Error(`node ${this.index} is already running`);
    const args = [CLI, 'serve', this.opts.apiFile, '--port', String(this.port), '--host', HOST, '--node-id', this.nodeId, '--redis', this.opts.redisUrl];
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      // GATEHOUSE_TEST_LOG=1 (as for in-process gateways) makes the nodes log everything.
      env: { ...process.env, GATEHOUSE_LOG_LEVEL: process.env.GATEHOUSE_TEST_LOG === '1' ? 'debug' : 'warn', ...this.opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    this.append(`--- start ${this.nodeId} (pid ${child.pid ?? '?'})\n`);
    const killOnExit = () => child.kill('SIGKILL');
    process.once('exit', killOnExit);
    this.exitInfo = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        process.removeListener('exit', killOnExit);
        this.running = false;
        this.append(`--- exit ${this.nodeId}: code ${code} signal ${signal}\n`);
        resolve({ code, signal });
      });
      child.once('error', (err) => {
        process.removeListener('exit', killOnExit);
        this.running = false;
        this.append(`--- spawn error: ${err.message}\n`);
        resolve({ code: null, signal: null });
      });
    });
    let stdout = '';
    const listening = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node ${this.nodeId} did not listen within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS);
      child.stdout?.on('data', (d: Buffer) => {
        this.append(d.toString());
        stdout += d.toString();
        const m = LISTENING.exec(stdout);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      void this.exitInfo.then((e) => {
        clearTimeout(timer);
        reject(new Error(`node ${this.nodeId} exited before listening (code ${e.code}, signal ${e.signal})`));
      });
    });
    child.stderr?.on('data', (d: Buffer) => this.append(d.toString()));
    try {
      this.port = await listening;
    } catch (err) {
      await this.kill('SIGKILL', 5000).catch((killErr: unknown) => this.append(`--- kill failed: ${String(killErr)}\n`));
      throw new Error(`${(err as Error).message}\n${this.tail}`, { cause: err });
    }
    this.running = true;
  }

  async kill(signal: NodeJS.Signals, timeoutMs: number): Promise<ExitInfo> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return this.exitInfo;
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`node ${this.nodeId} did not exit within ${timeoutMs} ms of ${signal}\n${this.tail}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exitInfo, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private append(text: string): void {
    this.tail = (this.tail + text).slice(-LOG_TAIL_CHARS);
  }
}

export async function startCluster(opts: ClusterOptions): Promise<GatewayCluster> {
  const size = opts.size ?? 3;
  const prefix = opts.nodeIdPrefix ?? 'node-';
  const nodes = Array.from({ length: size }, (_, i) => new NodeProcess(i, `${prefix}${i}`, opts));
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.kill('SIGKILL', 10_000)));
  };
  const startOnFixedPort = async (n: NodeProcess) => {
    for (let attempt = 0; ; attempt++) {
      n.port = await freeFixedPort(nodes.filter((o) => o !== n).map((o) => o.port));
      try {
        await n.start();
        return;
      } catch (err) {
        // Most likely the port was taken between probing and binding: try another.
        if (attempt >= 4) throw err;
      }
    }
  };
  const results = await Promise.allSettled(nodes.map((n) => startOnFixedPort(n)));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  const at = (index: number): NodeProcess => {
    const n = nodes[index];
    if (!n) throw new Error(`no cluster node ${index}`);
    return n;
  };
  return {
    nodes,
    node: at,
    kill: (index, signal = 'SIGKILL', timeoutMs = 20_000) => at(index).kill(signal, timeoutMs),
    async restart(index) {
      const n = at(index);
      if (n.running) throw new Error(`node ${index} is still running; kill it first`);
      await n.exited;
      await n.start();
    },
    logs: () => nodes.map((n) => `===== ${n.nodeId} (port ${n.port})\n${n.logs()}`).join('\n'),
    stop,
  };
}

// ---- chat clients, management and registry probes for the multi-node tests -----------------

/** A parsed frame received by a ChatPeer (non-JSON text is kept as `{ raw }`). */
export type Frame = Record<string, unknown>;

export interface WhoAmI {
  name: string;
  connectionId: string;
}

/**
 * A chat client: records every frame it receives (independently of TestClient's queue) so that
 * a test can wait for a frame matching a predicate without losing the others, and count frames
 * of one kind to check exactly-once delivery.
 */
export class ChatPeer {
  readonly frames: Frame[] = [];
  private readonly taken = new Set<Frame>();
  closeInfo: CloseInfo | undefined;
  connectionId = '';

  private constructor(
    readonly name: string,
    readonly client: TestClient,
  ) {
    client.ws.on('message', (data: Buffer) => {
      const text = data.toString('utf8');
      let frame: Frame;
      try {
        const parsed: unknown = JSON.parse(text);
        frame = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Frame) : { raw: text };
      } catch (err) {
        frame = { raw: text, parseError: String(err) };
      }
      this.frames.push(frame);
    });
    void client.closed.then((c) => {
      this.closeInfo = c;
    });
  }

  /** Connects with the chat's demo token and learns its connection id through `whoami`. */
  static async join(url: string, name: string): Promise<ChatPeer> {
    const client = await connect(`${url}?token=gatehouse-demo&name=${encodeURIComponent(name)}`);
    const peer = new ChatPeer(name, client);
    try {
      peer.connectionId = (await peer.whoami()).connectionId;
    } catch (err) {
      client.ws.terminate();
      throw err;
    }
    return peer;
  }

  get open(): boolean {
    return this.closeInfo === undefined && this.client.ws.readyState === this.client.ws.OPEN;
  }

  async whoami(timeoutMs = 5000): Promise<WhoAmI> {
    this.client.send({ action: 'whoami' });
    const f = await this.take((m) => typeof m.connectionId === 'string' && m.name === this.name && m.left === undefined, timeoutMs, 'whoami reply');
    return { name: String(f.name), connectionId: String(f.connectionId) };
  }

  say(message: string): void {
    this.client.send({ action: 'sendmessage', message });
  }

  /** Chat messages (`{from, message}`) received so far. */
  chat(): Array<{ from: string; message: string }> {
    return this.frames.filter((f) => typeof f.from === 'string' && typeof f.message === 'string').map((f) => ({ from: String(f.from), message: String(f.message) }));
  }

  /** Waits for the first frame matching `pred` not taken before, and marks it taken. */
  take(pred: (f: Frame) => boolean, timeoutMs = 5000, what = 'a matching frame'): Promise<Frame> {
    return waitFor(
      () => {
        const f = this.frames.find((x) => !this.taken.has(x) && pred(x));
        if (f) this.taken.add(f);
        return f;
      },
      { timeoutMs, intervalMs: 10, message: `${this.name}: ${what} (frames so far: ${JSON.stringify(this.frames.slice(-10))})` },
    );
  }

  /** Resolves with the close code and reason (rejects after timeoutMs). */
  async closedWithin(timeoutMs = 5000): Promise<CloseInfo> {
    return waitFor(() => this.closeInfo, { timeoutMs, intervalMs: 10, message: `${this.name} to be closed` });
  }

  async close(): Promise<void> {
    if (this.closeInfo || this.client.ws.readyState === this.client.ws.CLOSED) return;
    if (this.client.ws.readyState === this.client.ws.CONNECTING) {
      this.client.ws.terminate();
      await this.client.closed;
      return;
    }
    await this.client.close(1000, 'test done');
  }
}

/** Joins through `url` again and again until an upgrade succeeds (a node may just have died). */
export async function rejoin(url: string, name: string, timeoutMs = 10_000): Promise<ChatPeer> {
  return waitFor(() => ChatPeer.join(url, name), { timeoutMs, intervalMs: 100, message: `${name} to reconnect through ${url}` });
}

export interface ManagementCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** The AWS SDK management client against one node; no retries, so every answer is observed. */
export function managementClient(node: ClusterNode, credentials: ManagementCredentials, stage = 'prod'): ApiGatewayManagementApiClient {
  return new ApiGatewayManagementApiClient({ endpoint: node.httpUrl(`/${stage}`), region: 'us-east-1', credentials, maxAttempts: 1 });
}

export interface PostResult {
  status: number;
  error?: string;
}

/** PostToConnection, answered as an HTTP status (200 or the error's status and name). */
export async function postStatus(client: ApiGatewayManagementApiClient, connectionId: string, data: string): Promise<PostResult> {
  try {
    const out = await client.send(new PostToConnectionCommand({ ConnectionId: connectionId, Data: Buffer.from(data) }));
    return { status: out.$metadata.httpStatusCode ?? 0 };
  } catch (err) {
    return errorStatus(err);
  }
}

export function errorStatus(err: unknown): PostResult {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  if (typeof status !== 'number') throw err; // not an HTTP answer (socket error): let the test see it
  return { status, error: e.name ?? 'Error' };
}

export async function httpStatus(url: string): Promise<number> {
  const res = await fetch(url);
  await res.arrayBuffer();
  return res.status;
}

/** The node's `ConnectionCount` gauge from /metrics. */
export async function connectionCount(node: ClusterNode): Promise<number> {
  const res = await fetch(node.httpUrl('/metrics'));
  const text = await res.text();
  const m = /^ConnectionCount(?:\{[^}]*\})? (\d+)$/m.exec(text);
  if (!m) throw new Error(`no ConnectionCount in /metrics of ${node.nodeId}`);
  return Number(m[1]);
}

/** Registry keys of RedisClusterState for an API: `gatehouse:<api>:{gatehouse:<api>:}<suffix>`. */
export function registryKey(apiName: string, suffix: string): string {
  const p = `gatehouse:${apiName}:`;
  return `${p}{${p}}${suffix}`;
}

/** The node id the registry holds for a connection ('' when absent). */
export function registeredNode(redisPort: number, apiName: string, connectionId: string): Promise<string> {
  return redisCommand(redisPort, ['HGET', registryKey(apiName, `conn:${connectionId}`), 'n']);
}
