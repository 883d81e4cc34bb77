import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClusterUnavailableError, type ConnectionRecord } from '../../server/cluster/cluster-state.ts';
import { RedisClusterState, type RedisClusterStateOptions } from '../../server/cluster/redis-cluster-state.ts';
import { describeClusterState } from '../contract/cluster-state.contract.ts';
import {
  type RedisClusterHandle,
  type RedisServerHandle,
  command,
  startRedisCluster,
  startRedisServer,
} from '../helpers/redis-server.ts';
import { waitFor } from '../helpers/wait.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MODULE_URL = new URL('../../server/cluster/redis-cluster-state.ts', import.meta.url).href;

interface LogLine {
  level: 'warn' | 'info';
  msg: string;
  obj: object;
}
const logs: LogLine[] = [];
const logger = {
  warn: (obj: object, msg: string) => {
    logs.push({ level: 'warn', msg, obj });
  },
  info: (obj: object, msg: string) => {
    logs.push({ level: 'info', msg, obj });
  },
};

let prefixSeq = 0;
const uniquePrefix = () => `gh-test:${process.pid}:${Date.now().toString(36)}:${++prefixSeq}:`;

/** Every state and child process a test opens, closed after each test even when it fails. */
const openStates = new Set<RedisClusterState>();
const children = new Set<ChildProcess>();

function openState(opts: RedisClusterStateOptions): RedisClusterState {
  const s = new RedisClusterState({ logger, ...opts });
  openStates.add(s);
  return s;
}

async function closeAll(): Promise<void> {
  await Promise.all([...openStates].map((s) => s.close()));
  openStates.clear();
  await Promise.all([...children].map((c) => killChild(c)));
}

function rec(nodeId: string, connectionId: string, stage = 'prod'): ConnectionRecord {
  const now = Date.now();
  return { connectionId, nodeId, stage, connectedAt: now, lastActiveAt: now, sourceIp: '127.0.0.1', userAgent: 'it' };
}

const post = (connectionId: string) => ({
  kind: 'post' as const,
  connectionId,
  data: new TextEncoder().encode('hi'),
  binary: false,
});

/**
 * A gateway node in its own process, so that it can die for real (SIGKILL): no close(), no
 * deregistration, its heartbeat simply stops.
 */
async function spawnNode(state: RedisClusterStateOptions, conns: string[]): Promise<ChildProcess> {
  const code = `
    import { RedisClusterState } from ${JSON.stringify(MODULE_URL)};
    const o = JSON.parse(process.env.GH_NODE_OPTS);
    const logger = { warn: (obj, msg) => process.stderr.write(msg + '\\n'), info: () => undefined };
    const s = new RedisClusterState({ ...o.state, logger });
    s.onCommand(() => ({ status: 'ok' }));
    await s.start();
    for (const id of o.conns) {
      const t = Date.now();
      await s.registerConnection({ connectionId: id, nodeId: o.state.nodeId, stage: 'prod', connectedAt: t, lastActiveAt: t, sourceIp: '127.0.0.1', userAgent: 'child' });
    }
    process.stdout.write('READY\\n');
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: REPO_ROOT,
    env: { ...process.env, GH_NODE_OPTS: JSON.stringify({ state, conns }) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let out = '';
  let exited = false;
  child.stdout?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.once('exit', () => {
    exited = true;
  });
  await waitFor(
    () => {
      if (exited) throw new Error(`child node exited early: ${out}`);
      return out.includes('READY');
    },
    { timeoutMs: 30_000, message: 'child node ready' },
  );
  return child;
}

async function killChild(child: ChildProcess): Promise<void> {
  children.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

describe('RedisClusterState on a standalone redis-server', () => {
  let server: RedisServerHandle;

  beforeAll(async () => {
    server = await startRedisServer();
  }, 60_000);

  afterEach(closeAll);

  afterAll(async () => {
    await closeAll();
    await server?.stop();
  });

  const make = (keyPrefix: string, nodeId: string, extra: Partial<RedisClusterStateOptions> = {}) =>
    openState({
      url: server.url,
      keyPrefix,
      nodeId,
      heartbeatIntervalMs: 200,
      nodeTtlMs: 2_000,
      commandTimeoutMs: 10_000,
      ...extra,
    });

  describeClusterState('RedisClusterState (standalone)', async () => {
    const keyPrefix = uniquePrefix();
    const a = make(keyPrefix, 'node-a');
    const b = make(keyPrefix, 'node-b');
    await Promise.all([a.start(), b.start()]);
    return { a, b, cleanup: closeAll };
  });

  it('rejects a missing key prefix or node id', () => {
    expect(() => new RedisClusterState({ url: server.url, keyPrefix: '', nodeId: 'n' })).toThrow(/keyPrefix/);
    expect(() => new RedisClusterState({ url: server.url, keyPrefix: 'p:', nodeId: '' })).toThrow(/nodeId/);
  });

  it('purges the connections of a node that was killed, within its heartbeat TTL', async () => {
    const keyPrefix = uniquePrefix();
    const ttl = 600;
    const a = make(keyPrefix, 'survivor', { heartbeatIntervalMs: 100, nodeTtlMs: ttl });
    await a.start();
    const doomed = await spawnNode(
      { url: server.url, keyPrefix, nodeId: 'doomed', heartbeatIntervalMs: 100, nodeTtlMs: ttl },
      ['d1', 'd2'],
    );
    expect((await a.getConnection('d1'))?.nodeId).toBe('doomed');
    expect(await a.sendToNode('doomed', post('d1'))).toEqual({ status: 'ok' });
    expect((await a.listConnections('prod')).map((r) => r.connectionId).sort()).toEqual(['d1', 'd2']);

    const killedAt = Date.now();
    await killChild(doomed);
    await waitFor(async () => (await a.getConnection('d1')) === undefined, {
      timeoutMs: 10_000,
      intervalMs: 20,
      message: 'd1 disappears',
    });
    const elapsed = Date.now() - killedAt;
    expect(elapsed).toBeLessThan(ttl + 1_500); // slack for a loaded 2-core machine
    expect(await a.listConnections('prod')).toEqual([]);
    expect(await a.sendToNode('doomed', post('d1'))).toEqual({ status: 'gone' });

    // ...and the sweep deletes the records themselves, not just hides them.
    const reg = `${keyPrefix}{${keyPrefix}}`;
    await waitFor(
      async () => {
        const left = await Promise.all(
          [`${reg}conn:d1`, `${reg}conn:d2`, `${reg}nodeconns:doomed`].map((k) => command(server.port, ['EXISTS', k])),
        );
        const nodes = await command(server.port, ['SISMEMBER', `${reg}nodes`, 'doomed']);
        return left.every((n) => n === '0') && nodes === '0';
      },
      { timeoutMs: 10_000, message: 'dead node records deleted' },
    );
  });

  it('a node restarted under the same id drops what its previous process registered', async () => {
    const keyPrefix = uniquePrefix();
    const observer = make(keyPrefix, 'observer', { heartbeatIntervalMs: 500, nodeTtlMs: 60_000 });
    await observer.start();
    const first = await spawnNode(
      { url: server.url, keyPrefix, nodeId: 'phoenix', heartbeatIntervalMs: 500, nodeTtlMs: 60_000 },
      ['old-1'],
    );
    expect(await observer.getConnection('old-1')).toBeDefined();
    await killChild(first);
    // The heartbeat key is still alive (TTL 60 s): only the new process can clean up.
    const reborn = make(keyPrefix, 'phoenix', { heartbeatIntervalMs: 500, nodeTtlMs: 60_000 });
    await reborn.start();
    await reborn.registerConnection(rec('phoenix', 'new-1'));
    expect(await observer.getConnection('old-1')).toBeUndefined();
    expect(await observer.getConnection('new-1')).toBeDefined();
  });

  it('survives a Redis restart: fails fast while down, then reconnects and re-registers', async () => {
    const keyPrefix = uniquePrefix();
    const a = make(keyPrefix, 'node-a', { heartbeatIntervalMs: 100, nodeTtlMs: 1_500 });
    const b = make(keyPrefix, 'node-b', { heartbeatIntervalMs: 100, nodeTtlMs: 1_500 });
    await Promise.all([a.start(), b.start()]);
    b.onCommand((cmd) => (cmd.connectionId === 'hold' ? new Promise(() => undefined) : { status: 'ok' }));
    await a.registerConnection(rec('node-a', 'a1'));
    await a.registerConnection(rec('node-a', 'a2'));
    await b.registerConnection(rec('node-b', 'b1'));
    expect(await a.sendToNode('node-b', post('b1'))).toEqual({ status: 'ok' });
    // Never answered by b; settled into a value at once so that its rejection is handled.
    const inFlight = a.sendToNode('node-b', post('hold')).then(
      (outcome) => outcome,
      (err: unknown) => err,
    );

    await server.restart(async () => {
      await waitFor(() => !a.isReady() && !b.isReady(), { timeoutMs: 10_000, message: 'nodes notice Redis is down' });
      // A request whose reply can no longer arrive fails at once, not after commandTimeoutMs.
      expect(await inFlight).toBeInstanceOf(ClusterUnavailableError);
      const t0 = Date.now();
      await expect(a.sendToNode('node-b', post('b1'))).rejects.toBeInstanceOf(ClusterUnavailableError);
      await expect(a.getConnection('b1')).rejects.toBeInstanceOf(ClusterUnavailableError);
      await expect(a.listConnections('prod')).rejects.toBeInstanceOf(ClusterUnavailableError);
      expect(Date.now() - t0).toBeLessThan(1_000); // commandTimeoutMs is 10 s: this is fail-fast, not a timeout
      // Local work goes on: own connections are known, (de)registration is queued for the resync.
      expect((await a.getConnection('a1'))?.nodeId).toBe('node-a');
      await a.registerConnection(rec('node-a', 'a3'));
      await a.unregisterConnection('a2');
      await a.touchConnections([{ connectionId: 'a1', lastActiveAt: 42 }]);
      expect(await a.cacheGet('anything')).toBeUndefined();
      await a.cacheSet('anything', 1, 1_000);
      // Still down: the node must not have recovered on its own.
      expect(a.isReady()).toBe(false);
    });

    await waitFor(() => a.isReady() && b.isReady(), { timeoutMs: 20_000, message: 'nodes reconnect' });
    // The restarted Redis is empty: everything below was re-registered by the nodes themselves.
    await waitFor(async () => (await b.getConnection('a1')) && (await b.getConnection('a3')), {
      timeoutMs: 10_000,
      message: 'a re-registers its connections',
    });
    await waitFor(async () => await a.getConnection('b1'), { timeoutMs: 10_000, message: 'b re-registers' });
    expect(await b.getConnection('a2')).toBeUndefined();
    expect((await b.listConnections('prod')).map((r) => r.connectionId).sort()).toEqual(['a1', 'a3', 'b1']);
    expect(await a.sendToNode('node-b', post('b1'))).toEqual({ status: 'ok' });
    expect(logs.some((l) => l.level === 'warn' && l.msg.includes('unavailable'))).toBe(true);
  });

  it('rejects with ClusterUnavailableError when the owner does not answer in time', async () => {
    const keyPrefix = uniquePrefix();
    const a = make(keyPrefix, 'node-a', { commandTimeoutMs: 300 });
    const b = make(keyPrefix, 'node-b');
    await Promise.all([a.start(), b.start()]);
    let release: (() => void) | undefined;
    b.onCommand(
      () =>
        new Promise((resolve) => {
          release = () => resolve({ status: 'ok' });
        }),
    );
    const t0 = Date.now();
    await expect(a.sendToNode('node-b', post('slow'))).rejects.toBeInstanceOf(ClusterUnavailableError);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    release?.();
  });

  it('answers throttled instead of queueing without bound behind a stuck handler', async () => {
    const keyPrefix = uniquePrefix();
    const a = make(keyPrefix, 'node-a');
    const b = make(keyPrefix, 'node-b');
    await Promise.all([a.start(), b.start()]);
    let open: (() => void) | undefined;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    b.onCommand(async () => {
      await gate;
      return { status: 'ok' };
    });
    // One running + 1000 queued behind it; everything after that is refused at once.
    const sends = Array.from({ length: 1005 }, () => a.sendToNode('node-b', post('stuck')));
    const refused = await Promise.all(sends.slice(1001));
    expect(refused.every((o) => o.status === 'throttled')).toBe(true);
    open?.(); // the queue drains
    const accepted = await Promise.all(sends.slice(0, 1001));
    expect(accepted.every((o) => o.status === 'ok')).toBe(true);
  });

  it('sends the commands of one event-loop turn as one publish, in call order, and answers each', async () => {
    const keyPrefix = uniquePrefix();
    const a = make(keyPrefix, 'node-a');
    const b = make(keyPrefix, 'node-b');
    await Promise.all([a.start(), b.start()]);
    const seen: string[] = [];
    b.onCommand((cmd) => {
      seen.push(cmd.kind === 'post' ? (typeof cmd.data === 'string' ? cmd.data : new TextDecoder().decode(cmd.data)) : cmd.kind);
      return { status: cmd.connectionId === 'closed' ? 'gone' : 'ok' };
    });
    const spy = new Redis(server.url);
    const published: Buffer[] = [];
    spy.on('messageBuffer', (_channel: Buffer, message: Buffer) => published.push(message));
    await spy.subscribe(`${keyPrefix}inbox:node-b`);
    try {
      const data = new TextEncoder().encode('m0');
      const sends = [a.sendToNode('node-b', { kind: 'post', connectionId: 'c', data, binary: false })];
      data.set(new TextEncoder().encode('XX')); // the caller may reuse its buffer once sendToNode returns
      for (let i = 1; i < 40; i++) {
        const connectionId = i === 7 ? 'closed' : 'c';
        sends.push(a.sendToNode('node-b', { kind: 'post', connectionId, data: new TextEncoder().encode(`m${i}`), binary: false }));
      }
      const outcomes = await Promise.all(sends);
      expect(outcomes.map((o) => o.status)).toEqual(Array.from({ length: 40 }, (_, i) => (i === 7 ? 'gone' : 'ok')));
      expect(seen).toEqual(Array.from({ length: 40 }, (_, i) => `m${i}`));
      await waitFor(() => published.length >= 1, { message: 'the spy sees the publish' });
      expect(published).toHaveLength(1); // one publish for the 40 commands
    } finally {
      spy.disconnect();
    }
  });

  it('drops undecodable and malformed bus entries, and still runs the good ones in the same batch', async () => {
    const keyPrefix = uniquePrefix();
    const a = make(keyPrefix, 'node-a');
    await a.start();
    const seen: string[] = [];
    a.onCommand((cmd) => {
      seen.push(cmd.connectionId);
      return { status: 'ok' };
    });
    const { Packr } = await import('msgpackr');
    const packr = new Packr({ useRecords: false });
    const good = { t: 'c', i: 1, f: 'elsewhere', s: 'x', c: { kind: 'delete', connectionId: 'good' } };
    const publisher = new Redis(server.url);
    try {
      const channel = `${keyPrefix}inbox:node-a`;
      await publisher.publish(channel, Buffer.from([0x92, 0x01])); // truncated: an array of 2 holding 1
      await publisher.publish(channel, packr.pack([{ t: 'c', i: 'x' }, 42, good, { t: 'c', i: 2, f: 'elsewhere', s: 'x', c: { kind: 'nope' } }]));
      await waitFor(() => seen.length >= 1, { message: 'the good command runs' });
      expect(seen).toEqual(['good']);
      expect(logs.some((l) => l.msg.includes('undecodable bus message'))).toBe(true);
      expect(logs.some((l) => l.msg.includes('malformed bus'))).toBe(true);
    } finally {
      publisher.disconnect();
    }
  });

  it('close() deregisters the node and its connections', async () => {
    const keyPrefix = uniquePrefix();
    const a = make(keyPrefix, 'node-a');
    const b = make(keyPrefix, 'node-b');
    await Promise.all([a.start(), b.start()]);
    await a.registerConnection(rec('node-a', 'c1'));
    expect(await b.getConnection('c1')).toBeDefined();
    await a.close();
    expect(a.isReady()).toBe(false);
    expect(await b.getConnection('c1')).toBeUndefined();
    expect(await b.sendToNode('node-a', post('c1'))).toEqual({ status: 'gone' });
    // Sockets closing after close() (drain) still unregister: that must not throw.
    await a.unregisterConnection('c1');
    await a.touchConnections([{ connectionId: 'c1', lastActiveAt: Date.now() }]);
    const reg = `${keyPrefix}{${keyPrefix}}`;
    expect(await command(server.port, ['EXISTS', `${reg}hb:node-a`])).toBe('0');
    expect(await command(server.port, ['EXISTS', `${reg}conn:c1`])).toBe('0');
  });
});

describe('RedisClusterState on a 3-master Redis Cluster', () => {
  let cluster: RedisClusterHandle | undefined;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  }, 120_000);

  afterEach(closeAll);

  afterAll(async () => {
    await closeAll();
    await cluster?.stop();
  });

  for (const mode of ['detected', 'classic'] as const) {
    describeClusterState(`RedisClusterState (cluster, ${mode} pub/sub)`, async () => {
      if (!cluster) throw new Error('cluster not started');
      const keyPrefix = uniquePrefix();
      const opts = {
        url: cluster.url,
        cluster: true,
        keyPrefix,
        heartbeatIntervalMs: 200,
        nodeTtlMs: 2_000,
        commandTimeoutMs: 10_000,
        ...(mode === 'classic' ? { shardedPubSub: false } : {}),
      };
      const a = openState({ ...opts, nodeId: 'node-a' });
      const b = openState({ ...opts, nodeId: 'node-b' });
      await Promise.all([a.start(), b.start()]);
      return { a, b, cleanup: closeAll };
    });
  }

  it('detects and uses sharded pub/sub (SSUBSCRIBE) on Redis 7', async () => {
    if (!cluster) throw new Error('cluster not started');
    const keyPrefix = uniquePrefix();
    const a = openState({ url: cluster.url, cluster: true, keyPrefix, nodeId: 'node-a' });
    await a.start();
    const probes = cluster.ports.map((port) => new Redis({ port, host: '127.0.0.1', lazyConnect: true }));
    try {
      const channels = await Promise.all(
        probes.map(async (p) => {
          await p.connect();
          return p.call('PUBSUB', 'SHARDCHANNELS', `${keyPrefix}*`);
        }),
      );
      expect(channels.flat()).toEqual([`${keyPrefix}inbox:node-a`]);
    } finally {
      await Promise.all(probes.map((p) => p.quit()));
    }
  });
});
