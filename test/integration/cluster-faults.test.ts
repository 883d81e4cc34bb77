import { setTimeout as delay } from 'node:timers/promises';
import { type ApiGatewayManagementApiClient, GetConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ChatPeer,
  errorStatus,
  type GatewayCluster,
  httpStatus,
  managementClient,
  type PostResult,
  postStatus,
  registeredNode,
  registryKey,
  rejoin,
  startCluster,
} from '../helpers/cluster.ts';
import { type HaproxyHandle, startHaproxy } from '../helpers/haproxy.ts';
import { command as redisCommand, type RedisServerHandle, startRedisServer } from '../helpers/redis-server.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * Faults in a three-node deployment behind HAProxy: a node killed with -9, Redis restarted under
 * traffic, a node drained with SIGTERM. The API is the chat example with a $disconnect that
 * announces `{left}` to the other members (test/fixtures/cluster-api), so a draining node's
 * $disconnect is observable from clients on other nodes.
 */
const API_FILE = 'test/fixtures/cluster-api/api.yaml';
const API_NAME = 'chat-cluster';
const KEYS = { accessKeyId: 'AKIACLUSTERFAULT0001', secretAccessKey: 'cluster-fault-secret-0123456789' };
const NODES = 3;
const HEARTBEAT_MS = 1000;
const NODE_TTL_MS = 3000;
const DRAIN_BOUND_MS = 15_000;

let redis: RedisServerHandle | undefined;
let cluster: GatewayCluster | undefined;
let lb: HaproxyHandle | undefined;
let sdk: ApiGatewayManagementApiClient[] = [];
const peers: ChatPeer[] = [];

function running(): { redis: RedisServerHandle; cluster: GatewayCluster; lb: HaproxyHandle } {
  if (!redis || !cluster || !lb) throw new Error('cluster not started');
  return { redis, cluster, lb };
}

async function allReadyz(expected: number, timeoutMs = 15_000): Promise<void> {
  const { cluster: c } = running();
  await waitFor(async () => (await Promise.all(c.nodes.map((n) => httpStatus(n.httpUrl('/readyz'))))).every((s) => s === expected), {
    timeoutMs,
    message: `/readyz ${expected} on every node`,
  });
}

beforeAll(async () => {
  redis = await startRedisServer();
  cluster = await startCluster({
    apiFile: API_FILE,
    redisUrl: redis.url,
    size: NODES,
    nodeIdPrefix: 'fault-node-',
    env: {
      GATEHOUSE_MANAGEMENT_KEYS: `${KEYS.accessKeyId}:${KEYS.secretAccessKey}`,
      GATEHOUSE_HEARTBEAT_MS: String(HEARTBEAT_MS),
      GATEHOUSE_NODE_TTL_MS: String(NODE_TTL_MS),
    },
  });
  lb = await startHaproxy(cluster.nodes.map((n) => n.port));
  sdk = cluster.nodes.map((n) => managementClient(n, KEYS));
  await allReadyz(200);
}, 60_000);

afterAll(async () => {
  for (const s of sdk) s.destroy();
  const stops = [lb?.stop(), cluster?.stop(), redis?.stop()];
  const failed = (await Promise.allSettled(stops)).filter((r) => r.status === 'rejected');
  if (failed.length > 0) throw new Error(`cleanup failed: ${failed.map((r) => String(r.reason)).join('; ')}`);
});

/** Every test starts from the full cluster: nodes a previous test stopped are started again. */
beforeEach(async () => {
  const { cluster: c, lb: l } = running();
  await Promise.all(c.nodes.filter((n) => !n.running).map((n) => c.restart(n.index)));
  await l.waitForUp([0, 1, 2]);
  await allReadyz(200);
}, 40_000);

afterEach(async (ctx) => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
  if (ctx.task.result?.state === 'fail' && cluster && lb) {
    process.stderr.write(`\n${cluster.logs()}\n===== haproxy\n${lb.output()}\n`);
  }
});

interface Placed {
  peer: ChatPeer;
  node: number;
}

async function nodeOf(peer: ChatPeer): Promise<number> {
  const { redis: r, cluster: c } = running();
  const nodeId = await waitFor(() => registeredNode(r.port, API_NAME, peer.connectionId), { message: `${peer.name} registered` });
  const node = c.nodes.findIndex((n) => n.nodeId === nodeId);
  if (node < 0) throw new Error(`${peer.name} is registered on an unknown node ${nodeId}`);
  return node;
}

async function track(peer: ChatPeer): Promise<Placed> {
  peers.push(peer);
  return { peer, node: await nodeOf(peer) };
}

/** Joins 2 clients per node through the load balancer (roundrobin) and checks the spread. */
async function joinSpread(prefix: string): Promise<Placed[]> {
  const { lb: l } = running();
  const out: Placed[] = [];
  for (let i = 0; i < 2 * NODES; i++) out.push(await track(await ChatPeer.join(l.wsUrl('prod'), `${prefix}${i}`)));
  expect([0, 1, 2].map((n) => out.filter((p) => p.node === n).length)).toEqual([2, 2, 2]);
  return out;
}

/** Everyone says one line; each must receive every other line exactly once. */
async function chatRound(group: ChatPeer[], tag: string): Promise<void> {
  const before = new Map(group.map((p) => [p, p.chat().length]));
  for (const p of group) p.say(`${tag} from ${p.name}`);
  const fresh = (p: ChatPeer) => p.chat().slice(before.get(p) ?? 0);
  await Promise.all(
    group.map((p) =>
      waitFor(() => fresh(p).filter((m) => m.message.startsWith(tag)).length >= group.length - 1, {
        message: `${p.name} got the ${tag} round (has ${JSON.stringify(fresh(p))})`,
      }),
    ),
  );
  // Absence cannot be awaited: give duplicates a short, bounded chance before counting.
  await delay(300);
  for (const p of group) {
    const got = fresh(p).filter((m) => m.message.startsWith(tag));
    const expected = group.filter((o) => o !== p).map((o) => ({ from: o.name, message: `${tag} from ${o.name}` }));
    expect(got.length, `${p.name}: each ${tag} message once`).toBe(expected.length);
    expect(got).toEqual(expect.arrayContaining(expected));
  }
}

async function getStatus(client: ApiGatewayManagementApiClient, connectionId: string): Promise<PostResult> {
  try {
    const out = await client.send(new GetConnectionCommand({ ConnectionId: connectionId }));
    return { status: out.$metadata.httpStatusCode ?? 0 };
  } catch (err) {
    return errorStatus(err);
  }
}

async function redisExists(key: string): Promise<boolean> {
  return (await redisCommand(running().redis.port, ['EXISTS', key])) === '1';
}

async function redisIsMember(key: string, member: string): Promise<boolean> {
  return (await redisCommand(running().redis.port, ['SISMEMBER', key, member])) === '1';
}

describe('node faults behind HAProxy', () => {
  it('kill -9: its clients reconnect through the LB, the registry is purged within the TTL, nobody else is disturbed', async () => {
    const { cluster: c, lb: l } = running();
    const placed = await joinSpread('k');
    const victims = placed.filter((p) => p.node === 1).map((p) => p.peer);
    const survivors = placed.filter((p) => p.node !== 1).map((p) => p.peer);
    const oldIds = victims.map((v) => v.connectionId);

    const killedAt = Date.now();
    const exit = await c.kill(1, 'SIGKILL');
    expect(exit.signal).toBe('SIGKILL');
    for (const v of victims) expect((await v.closedWithin()).code).toBe(1006);

    // Survivors are untouched: local routes and cross-node posts between live nodes still work.
    for (const s of survivors) {
      expect(s.open).toBe(true);
      expect((await s.whoami()).connectionId).toBe(s.connectionId);
    }
    const onA = placed.find((p) => p.node === 0)!.peer;
    const onC = placed.find((p) => p.node === 2)!.peer;
    expect(await postStatus(sdk[0]!, onC.connectionId, '{"ping":"a-to-c"}')).toEqual({ status: 200 });
    await onC.take((f) => f.ping === 'a-to-c');
    expect(await postStatus(sdk[2]!, onA.connectionId, '{"ping":"c-to-a"}')).toEqual({ status: 200 });
    await onA.take((f) => f.ping === 'c-to-a');

    // Posts to the dead node's connections are never 200; within the TTL they are 410.
    const answers: PostResult[] = [];
    for (const id of oldIds) {
      await waitFor(
        async () => {
          const r = await postStatus(sdk[0]!, id, 'to the dead');
          answers.push(r);
          return r.status === 410;
        },
        { timeoutMs: NODE_TTL_MS + 3 * HEARTBEAT_MS, intervalMs: 100, message: `post to ${id} of the dead node answers 410` },
      );
    }
    expect(Date.now() - killedAt).toBeLessThan(NODE_TTL_MS + 3 * HEARTBEAT_MS);
    expect(answers.filter((a) => a.status === 200)).toEqual([]);
    expect(answers.at(-1)).toEqual({ status: 410, error: 'GoneException' });
    expect(await getStatus(sdk[2]!, oldIds[0]!)).toEqual({ status: 410, error: 'GoneException' });

    // A live node's sweep purges the dead node's records from the registry.
    await waitFor(
      async () => {
        for (const id of oldIds) {
          if (await redisExists(registryKey(API_NAME, `conn:${id}`))) return false;
          if (await redisIsMember(registryKey(API_NAME, 'stage:prod'), id)) return false;
        }
        return !(await redisIsMember(registryKey(API_NAME, 'nodes'), c.node(1).nodeId));
      },
      { timeoutMs: NODE_TTL_MS + 3 * HEARTBEAT_MS, intervalMs: 100, message: 'dead node purged from the registry' },
    );

    // The victims reconnect through the load balancer and land on live nodes.
    const back: ChatPeer[] = [];
    for (const v of victims) {
      const again = await track(await rejoin(l.wsUrl('prod'), v.name));
      expect(again.node).not.toBe(1);
      back.push(again.peer);
    }
    for (const s of survivors) expect(s.open).toBe(true);
    await chatRound([...survivors, ...back], 'after-kill');
  });

  it('Redis restart mid-traffic: local traffic never stops, undeliverable posts are errors, every 200 is delivered, recovery is automatic', async () => {
    const { redis: r, cluster: c } = running();
    const placed = await joinSpread('r');
    const byNode = [0, 1, 2].map((n) => placed.filter((p) => p.node === n).map((p) => p.peer));

    // Traffic: every ~20 ms each node posts to a client on the next node (cross) and to one of its own (local).
    interface Sent {
      seq: number;
      via: number;
      target: ChatPeer;
      cross: boolean;
      result: PostResult;
      /** ms since the traffic started, and how long the answer took: for failure messages */
      at: number;
      took: number;
    }
    const t0 = Date.now();
    const phases: Record<string, number> = {};
    const sent: Sent[] = [];
    let seq = 0;
    let stopTraffic = false;
    let trafficError: unknown;
    const traffic = (async () => {
      while (!stopTraffic) {
        await Promise.all(
          [0, 1, 2].flatMap((via) =>
            [
              { target: byNode[(via + 1) % NODES]![0]!, cross: true },
              { target: byNode[via]![1]!, cross: false },
            ].map(async ({ target, cross }) => {
              const n = ++seq;
              const at = Date.now() - t0;
              const result = await postStatus(sdk[via]!, target.connectionId, JSON.stringify({ seq: n }));
              sent.push({ seq: n, via, target, cross, result, at, took: Date.now() - t0 - at });
            }),
          ),
        );
        await delay(20); // pacing, not waiting for anything
      }
    })().catch((err: unknown) => {
      trafficError = err;
    });

    try {
      await waitFor(() => sent.filter((s) => s.cross && s.result.status === 200).length >= 6, { message: 'cross-node traffic flowing' });
      let downFrom = 0;
      let downUntil = 0;
      await r.restart(async () => {
        await allReadyz(503, 10_000);
        downFrom = seq;
        phases.down = Date.now() - t0;
        // Local routes keep answering on every node.
        for (const p of placed) expect((await p.peer.whoami()).connectionId).toBe(p.peer.connectionId);
        await waitFor(() => sent.filter((s) => s.seq > downFrom && s.cross).length >= 9 && sent.filter((s) => s.seq > downFrom && !s.cross).length >= 9, {
          message: 'traffic while redis is down',
        });
        downUntil = seq;
        phases.restarting = Date.now() - t0;
        await allReadyz(503, 1000);
      });
      const restartedAt = seq;
      phases.restarted = Date.now() - t0;
      await allReadyz(200, 15_000);
      // Cross-node posts work again on every node pair without any action.
      await waitFor(() => [0, 1, 2].every((via) => sent.some((s) => s.seq > restartedAt && s.via === via && s.cross && s.result.status === 200)), {
        timeoutMs: 15_000,
        message: 'cross-node posts answered 200 again from every node',
      });
      stopTraffic = true;
      await traffic;
      expect(trafficError).toBeUndefined();

      const outage = sent.filter((s) => s.seq > downFrom && s.seq <= downUntil);
      const crossDuring = outage.filter((s) => s.cross);
      const localDuring = outage.filter((s) => !s.cross);
      expect(crossDuring.length).toBeGreaterThan(0);
      expect(crossDuring.filter((s) => s.result.status === 200)).toEqual([]);
      expect(crossDuring.every((s) => s.result.status >= 500)).toBe(true);
      expect(localDuring.length).toBeGreaterThan(0);
      expect(localDuring.filter((s) => s.result.status !== 200)).toEqual([]);

      // Every post answered 200, before, during or after the outage, reached its client.
      for (const s of sent.filter((x) => x.result.status === 200)) {
        await s.target.take((f) => f.seq === s.seq, 5000, `post #${s.seq} via node ${s.via}`);
      }
      // Nothing was answered 410 for a connection that is alive.
      const gone = sent.filter((s) => s.result.status === 410);
      expect(gone.map((s) => ({ seq: s.seq, via: s.via, cross: s.cross, at: s.at, took: s.took })), `phases ${JSON.stringify(phases)}`).toEqual([]);
      for (const p of placed) expect(p.peer.open).toBe(true);
      // The registry was rebuilt from the nodes' local copies.
      for (const p of placed) expect(await nodeOf(p.peer)).toBe(p.node);
      await chatRound(
        placed.map((p) => p.peer),
        'after-redis',
      );
    } finally {
      stopTraffic = true;
      await traffic;
    }
    expect(c.nodes.every((n) => n.running)).toBe(true);
  });

  it('SIGTERM drains: clients get 1001, their $disconnect runs, the node deregisters and exits 0 in bounded time', async () => {
    const { cluster: c, lb: l } = running();
    const placed = await joinSpread('d');
    const leaving = placed.filter((p) => p.node === 2).map((p) => p.peer);
    const staying = placed.filter((p) => p.node !== 2).map((p) => p.peer);
    const drainingId = c.node(2).nodeId;

    const started = Date.now();
    const exit = await c.kill(2, 'SIGTERM', DRAIN_BOUND_MS);
    expect(Date.now() - started).toBeLessThan(DRAIN_BOUND_MS);
    expect(exit).toEqual({ code: 0, signal: null });
    for (const p of leaving) {
      const closed = await p.closedWithin(1000);
      expect(closed.code).toBe(1001);
    }

    // Their $disconnect ran on the draining node and reached the clients on the other nodes.
    for (const s of staying) {
      for (const p of leaving) {
        const left = await s.take((f) => f.left === p.name, 5000, `${p.name} left`);
        expect(left).toMatchObject({ connectionId: p.connectionId, code: 1001 });
      }
    }

    // Deregistered: no record, no heartbeat, not in the node set; cross-node GET/POST are 410 at once.
    for (const p of leaving) {
      expect(await redisExists(registryKey(API_NAME, `conn:${p.connectionId}`))).toBe(false);
      expect(await getStatus(sdk[0]!, p.connectionId)).toEqual({ status: 410, error: 'GoneException' });
      expect(await postStatus(sdk[1]!, p.connectionId, 'bye')).toEqual({ status: 410, error: 'GoneException' });
    }
    expect(await redisExists(registryKey(API_NAME, `hb:${drainingId}`))).toBe(false);
    expect(await redisIsMember(registryKey(API_NAME, 'nodes'), drainingId)).toBe(false);

    // Nobody else noticed; new clients land on the remaining nodes.
    for (const s of staying) expect(s.open).toBe(true);
    const newcomer = await track(await rejoin(l.wsUrl('prod'), 'newcomer'));
    expect(newcomer.node).not.toBe(2);
    await chatRound([...staying, newcomer.peer], 'after-drain');
  });
});
