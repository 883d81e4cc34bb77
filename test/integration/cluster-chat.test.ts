import { type ApiGatewayManagementApiClient, DeleteConnectionCommand, GetConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  ChatPeer,
  connectionCount,
  errorStatus,
  type GatewayCluster,
  httpStatus,
  managementClient,
  postStatus,
  registeredNode,
  startCluster,
} from '../helpers/cluster.ts';
import { type HaproxyHandle, startHaproxy } from '../helpers/haproxy.ts';
import { type RedisServerHandle, startRedisServer } from '../helpers/redis-server.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * Three gateway processes serving the example chat API (routes/chat/api.yaml, unmodified) behind
 * a real HAProxy, sharing the test's own redis-server: clients land on different nodes and
 * everything that crosses nodes (chat broadcast, @connections from the AWS SDK) works.
 */
const API_FILE = 'routes/chat/api.yaml';
const API_NAME = 'chat';
const KEYS = { accessKeyId: 'AKIACLUSTERCHAT00001', secretAccessKey: 'cluster-chat-secret-0123456789' };
const NODES = 3;

let redis: RedisServerHandle | undefined;
let cluster: GatewayCluster | undefined;
let lb: HaproxyHandle | undefined;
let sdk: ApiGatewayManagementApiClient[] = [];
const peers: ChatPeer[] = [];

function running(): { redis: RedisServerHandle; cluster: GatewayCluster; lb: HaproxyHandle } {
  if (!redis || !cluster || !lb) throw new Error('cluster not started');
  return { redis, cluster, lb };
}

beforeAll(async () => {
  redis = await startRedisServer();
  cluster = await startCluster({
    apiFile: API_FILE,
    redisUrl: redis.url,
    size: NODES,
    nodeIdPrefix: 'chat-node-',
    env: { GATEHOUSE_MANAGEMENT_KEYS: `${KEYS.accessKeyId}:${KEYS.secretAccessKey}` },
  });
  lb = await startHaproxy(cluster.nodes.map((n) => n.port));
  sdk = cluster.nodes.map((n) => managementClient(n, KEYS));
  const c = cluster;
  await waitFor(async () => (await Promise.all(c.nodes.map((n) => httpStatus(n.httpUrl('/readyz'))))).every((s) => s === 200), {
    timeoutMs: 15_000,
    message: 'every node ready',
  });
}, 60_000);

afterAll(async () => {
  for (const s of sdk) s.destroy();
  const stops = [lb?.stop(), cluster?.stop(), redis?.stop()];
  const failed = (await Promise.allSettled(stops)).filter((r) => r.status === 'rejected');
  if (failed.length > 0) throw new Error(`cleanup failed: ${failed.map((r) => String(r.reason)).join('; ')}`);
});

beforeEach(async () => {
  await running().lb.waitForUp([0, 1, 2]);
});

afterEach(async (ctx) => {
  await Promise.all(peers.splice(0).map((p) => p.close()));
  if (ctx.task.result?.state === 'fail' && cluster && lb) {
    process.stderr.write(`\n${cluster.logs()}\n===== haproxy\n${lb.output()}\n`);
  }
});

/** Joins `count` chat clients through the load balancer, one after the other; returns them with their node index. */
async function joinThroughLb(count: number, prefix: string): Promise<Array<{ peer: ChatPeer; node: number }>> {
  const { redis: r, cluster: c, lb: l } = running();
  const out: Array<{ peer: ChatPeer; node: number }> = [];
  for (let i = 0; i < count; i++) {
    const peer = await ChatPeer.join(l.wsUrl('prod'), `${prefix}${i}`);
    peers.push(peer);
    const nodeId = await waitFor(() => registeredNode(r.port, API_NAME, peer.connectionId), { message: `${peer.name} registered` });
    const node = c.nodes.findIndex((n) => n.nodeId === nodeId);
    expect(node, `${peer.name} is on a known node (${nodeId})`).toBeGreaterThanOrEqual(0);
    out.push({ peer, node });
  }
  return out;
}

function onNode<T extends { node: number }>(list: T[], node: number): T {
  const hit = list.find((x) => x.node === node);
  if (!hit) throw new Error(`no client on node ${node}: ${JSON.stringify(list.map((x) => x.node))}`);
  return hit;
}

describe('chat across three nodes behind HAProxy', () => {
  it('spreads clients over the nodes (roundrobin, no stickiness)', async () => {
    const { cluster: c } = running();
    const joined = await joinThroughLb(6, 'spread');
    const perNode = [0, 1, 2].map((n) => joined.filter((j) => j.node === n).length);
    expect(perNode).toEqual([2, 2, 2]);
    // Each node's own gauge agrees with the shared registry.
    await waitFor(async () => (await Promise.all(c.nodes.map((n) => connectionCount(n)))).every((v) => v === 2), {
      message: 'ConnectionCount 2 on every node',
    });
  });

  it('delivers every message to every other client exactly once, whichever node each sits on', async () => {
    const joined = await joinThroughLb(6, 'talker');
    expect(new Set(joined.map((j) => j.node)).size).toBe(NODES);
    const all = joined.map((j) => j.peer);
    for (const p of all) p.say(`hello from ${p.name}`);
    await Promise.all(
      all.map((p) => waitFor(() => p.chat().length >= all.length - 1, { message: `${p.name} got ${all.length - 1} chat messages (has ${JSON.stringify(p.chat())})` })),
    );
    // Absence cannot be awaited: duplicates would arrive right behind the originals, so give
    // them a short, bounded chance before counting.
    await delay(300);
    for (const p of all) {
      const got = p.chat();
      const expected = all.filter((o) => o !== p).map((o) => ({ from: o.name, message: `hello from ${o.name}` }));
      expect(got.length, `${p.name} got each message once`).toBe(expected.length);
      expect(got).toEqual(expect.arrayContaining(expected));
      expect(p.open).toBe(true);
    }
  });

  it('management POST on one node reaches a client held by another (AWS SDK, every node pair)', async () => {
    const joined = await joinThroughLb(3, 'target');
    for (let from = 0; from < NODES; from++) {
      for (let to = 0; to < NODES; to++) {
        const target = onNode(joined, to).peer;
        const data = JSON.stringify({ via: from, to });
        expect(await postStatus(sdk[from]!, target.connectionId, data)).toEqual({ status: 200 });
        await target.take((f) => f.via === from && f.to === to, 5000, `post via node ${from}`);
      }
    }
  });

  it('a node that posted to a client on another node answers 410 once that client has left', async () => {
    const joined = await joinThroughLb(3, 'leaver');
    const target = onNode(joined, 2).peer;
    // Node 0 learns the owner on the first post and goes straight to it afterwards.
    for (let i = 0; i < 3; i++) {
      expect(await postStatus(sdk[0]!, target.connectionId, JSON.stringify({ n: i }))).toEqual({ status: 200 });
      await target.take((f) => f.n === i, 5000, `post ${i}`);
    }
    await target.close();
    await waitFor(async () => !(await registeredNode(running().redis.port, API_NAME, target.connectionId)), {
      message: 'the leaver is deregistered',
    });
    expect(await postStatus(sdk[0]!, target.connectionId, 'late')).toEqual({ status: 410, error: 'GoneException' });
    expect(await postStatus(sdk[0]!, target.connectionId, 'later')).toEqual({ status: 410, error: 'GoneException' });
    expect(await postStatus(sdk[1]!, target.connectionId, 'late')).toEqual({ status: 410, error: 'GoneException' });
  });

  it('GET and DELETE @connections work across nodes; unknown ids are 410 on every node', async () => {
    const joined = await joinThroughLb(3, 'subject');
    const onB = onNode(joined, 1).peer;
    const onC = onNode(joined, 2).peer;

    const info = await sdk[0]!.send(new GetConnectionCommand({ ConnectionId: onC.connectionId }));
    expect(info.$metadata.httpStatusCode).toBe(200);
    expect(info.ConnectedAt).toBeInstanceOf(Date);
    expect(info.Identity?.SourceIp).toBe('127.0.0.1');
    expect(info.LastActiveAt).toBeInstanceOf(Date);

    const del = await sdk[0]!.send(new DeleteConnectionCommand({ ConnectionId: onB.connectionId }));
    expect(del.$metadata.httpStatusCode).toBe(204);
    expect((await onB.closedWithin()).code).toBe(1000);
    for (const client of sdk) {
      const gone = await client.send(new GetConnectionCommand({ ConnectionId: onB.connectionId })).then(
        () => ({ status: 200 }),
        (err: unknown) => errorStatus(err),
      );
      expect(gone).toEqual({ status: 410, error: 'GoneException' });
      expect(await postStatus(client, onB.connectionId, 'late')).toEqual({ status: 410, error: 'GoneException' });
      expect(await postStatus(client, 'bm8tc3VjaC1jb25uZWN0aW9u', 'nobody')).toEqual({ status: 410, error: 'GoneException' });
    }
    expect(onC.open).toBe(true);
  });
});
