import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type {
  ClusterState,
  CommandOutcome,
  ConnectionRecord,
  NodeCommand,
} from '../../server/cluster/cluster-state.ts';
import { waitFor } from '../helpers/wait.ts';

/**
 * The ClusterState contract (see the doc comment in server/cluster/cluster-state.ts), run
 * against every implementation. `a` and `b` are two nodes sharing one state; a single-node
 * implementation passes the same object twice, and every test is written so that it means
 * something in both cases (write on `a`, read on `b`).
 */
export interface ClusterStatePair {
  a: ClusterState;
  b: ClusterState;
  cleanup(): Promise<void>;
}

let seq = 0;
const uid = (tag: string) => `${tag}-${process.pid}-${++seq}-${Math.random().toString(36).slice(2, 8)}`;

function record(owner: ClusterState, overrides: Partial<ConnectionRecord> = {}): ConnectionRecord {
  const now = Date.now();
  return {
    connectionId: uid('conn'),
    nodeId: owner.nodeId,
    stage: 'prod',
    connectedAt: now,
    lastActiveAt: now,
    sourceIp: '203.0.113.7',
    userAgent: 'contract-test/1.0',
    ...overrides,
  };
}

const text = (data: Uint8Array | string) => (typeof data === 'string' ? `str:${data}` : Buffer.from(data).toString('utf8'));
const post = (connectionId: string, body: string, binary = false): NodeCommand => ({
  kind: 'post',
  connectionId,
  data: new TextEncoder().encode(body),
  binary,
});
const byId = (x: { connectionId: string }, y: { connectionId: string }) => x.connectionId.localeCompare(y.connectionId);

export function describeClusterState(name: string, factory: () => Promise<ClusterStatePair>): void {
  describe(`ClusterState contract: ${name}`, () => {
    let env: ClusterStatePair | undefined;
    let a: ClusterState;
    let b: ClusterState;

    beforeEach(async () => {
      env = await factory();
      a = env.a;
      b = env.b;
    });

    afterEach(async () => {
      await env?.cleanup();
      env = undefined;
    });

    it('is ready after start and names its node', () => {
      expect(a.isReady()).toBe(true);
      expect(b.isReady()).toBe(true);
      expect(a.nodeId).toBeTruthy();
      expect(typeof a.kind).toBe('string');
      if (a !== b) expect(a.nodeId).not.toBe(b.nodeId);
    });

    describe('connection registry', () => {
      it('returns a connection registered on one node from any node', async () => {
        const rec = record(a, { authorizer: { principalId: 'user-1', scopes: ['chat'], n: 3 } });
        await a.registerConnection(rec);
        expect(await b.getConnection(rec.connectionId)).toEqual(rec);
        expect(await a.getConnection(rec.connectionId)).toEqual(rec);
      });

      it('returns undefined for an unknown connection', async () => {
        expect(await b.getConnection(uid('never-registered'))).toBeUndefined();
      });

      it('does not share the stored record with the caller', async () => {
        const rec = record(a);
        await a.registerConnection(rec);
        rec.stage = 'mutated-after-register';
        const got = await b.getConnection(rec.connectionId);
        expect(got?.stage).toBe('prod');
      });

      it('re-registering the same id replaces the record', async () => {
        const rec = record(a);
        await a.registerConnection(rec);
        const moved = { ...rec, stage: 'dev', userAgent: 'second/2.0', lastActiveAt: rec.lastActiveAt + 10 };
        await a.registerConnection(moved);
        expect(await b.getConnection(rec.connectionId)).toEqual(moved);
        expect((await b.listConnections('prod')).map((r) => r.connectionId)).not.toContain(rec.connectionId);
        expect((await b.listConnections('dev')).map((r) => r.connectionId)).toContain(rec.connectionId);
      });

      it('unregister removes the connection everywhere; unknown ids are a no-op', async () => {
        const rec = record(a);
        await a.registerConnection(rec);
        await a.unregisterConnection(rec.connectionId);
        expect(await b.getConnection(rec.connectionId)).toBeUndefined();
        expect(await a.getConnection(rec.connectionId)).toBeUndefined();
        expect((await b.listConnections('prod')).map((r) => r.connectionId)).not.toContain(rec.connectionId);
        await a.unregisterConnection(rec.connectionId);
        await b.unregisterConnection(uid('never-registered'));
      });

      it('listConnections returns every connection of a stage, cluster-wide', async () => {
        const stage = uid('stage');
        const other = uid('stage');
        const a1 = record(a, { stage });
        const a2 = record(a, { stage });
        const a3 = record(a, { stage: other });
        const b1 = record(b, { stage });
        await Promise.all([a.registerConnection(a1), a.registerConnection(a2), a.registerConnection(a3)]);
        await b.registerConnection(b1);
        const expected = [a1, a2, b1].sort(byId);
        expect((await a.listConnections(stage)).sort(byId)).toEqual(expected);
        expect((await b.listConnections(stage)).sort(byId)).toEqual(expected);
        expect(await b.listConnections(other)).toEqual([a3]);
        expect(await a.listConnections(uid('empty-stage'))).toEqual([]);
        // The owners-only listing names the same connections, each with its node.
        const owners = (x: ConnectionRecord[]) => x.map((r) => ({ connectionId: r.connectionId, nodeId: r.nodeId })).sort(byId);
        expect((await a.listConnectionOwners(stage)).sort(byId)).toEqual(owners(expected));
        expect((await b.listConnectionOwners(stage)).sort(byId)).toEqual(owners(expected));
        expect(await b.listConnectionOwners(other)).toEqual(owners([a3]));
        expect(await a.listConnectionOwners(uid('empty-stage'))).toEqual([]);
      });

      it('touchConnections only moves lastActiveAt forward and ignores unknown ids', async () => {
        const rec = record(a, { lastActiveAt: 1_000 });
        await a.registerConnection(rec);
        await a.touchConnections([
          { connectionId: rec.connectionId, lastActiveAt: 5_000 },
          { connectionId: uid('unknown'), lastActiveAt: 9_000 },
        ]);
        expect((await b.getConnection(rec.connectionId))?.lastActiveAt).toBe(5_000);
        await a.touchConnections([{ connectionId: rec.connectionId, lastActiveAt: 3_000 }]);
        expect((await b.getConnection(rec.connectionId))?.lastActiveAt).toBe(5_000);
        expect((await b.listConnections('prod')).find((r) => r.connectionId === rec.connectionId)?.lastActiveAt).toBe(5_000);
        await a.touchConnections([]);
      });

      it('touchConnections handles large batches', async () => {
        const stage = uid('stage');
        const recs = Array.from({ length: 1200 }, () => record(a, { stage, lastActiveAt: 1 }));
        await Promise.all(recs.map((r) => a.registerConnection(r)));
        await a.touchConnections(recs.map((r, i) => ({ connectionId: r.connectionId, lastActiveAt: 100 + i })));
        const listed = await b.listConnections(stage);
        expect(listed).toHaveLength(recs.length);
        const byConn = new Map(listed.map((r) => [r.connectionId, r.lastActiveAt]));
        expect(recs.map((r) => byConn.get(r.connectionId))).toEqual(recs.map((_, i) => 100 + i));
      });
    });

    describe('cache', () => {
      it('stores JSON values readable from any node and overwrites them', async () => {
        const key = uid('cache');
        const value = { principalId: 'u', context: { n: 1, ok: true, list: [1, 'two'] } };
        await a.cacheSet(key, value, 60_000);
        expect(await b.cacheGet(key)).toEqual(value);
        await a.cacheSet(key, 'second', 60_000);
        expect(await b.cacheGet<string>(key)).toBe('second');
        expect(await b.cacheGet(uid('missing'))).toBeUndefined();
      });

      it('never returns an entry past its TTL', async () => {
        const key = uid('cache');
        await a.cacheSet(key, { v: 1 }, 50);
        await waitFor(async () => (await b.cacheGet(key)) === undefined, {
          timeoutMs: 5_000,
          message: 'cache entry expires',
        });
        expect(await a.cacheGet(key)).toBeUndefined();
      });

      it('stores nothing for a non-positive TTL', async () => {
        const key = uid('cache');
        await a.cacheSet(key, 'x', 0);
        expect(await b.cacheGet(key)).toBeUndefined();
      });
    });

    describe('commands between nodes', () => {
      it('sendToNode to its own node runs its handler', async () => {
        const rec = record(a);
        const seen: NodeCommand[] = [];
        a.onCommand((cmd) => {
          seen.push(cmd);
          return cmd.kind === 'describe' ? { status: 'ok', record: rec } : { status: 'ok' };
        });
        expect(await a.sendToNode(a.nodeId, post(rec.connectionId, 'hello'))).toEqual({ status: 'ok' });
        expect(await a.sendToNode(a.nodeId, { kind: 'describe', connectionId: rec.connectionId })).toEqual({
          status: 'ok',
          record: rec,
        });
        expect(seen.map((c) => c.kind)).toEqual(['post', 'describe']);
      });

      it('delivers 100 posts to the owning node only, in order', async () => {
        const connectionId = uid('conn');
        const onB: string[] = [];
        const onA: string[] = [];
        b.onCommand((cmd) => {
          if (cmd.kind === 'post') onB.push(`${text(cmd.data)}:${cmd.binary}`);
          return { status: 'ok' };
        });
        if (a !== b) {
          a.onCommand((cmd) => {
            if (cmd.kind === 'post') onA.push(text(cmd.data));
            return { status: 'ok' };
          });
        }
        const outcomes = await Promise.all(
          Array.from({ length: 100 }, (_, i) => a.sendToNode(b.nodeId, post(connectionId, `m${i}`, i % 2 === 1))),
        );
        expect(outcomes.every((o) => o.status === 'ok')).toBe(true);
        expect(onB).toEqual(Array.from({ length: 100 }, (_, i) => `m${i}:${i % 2 === 1}`));
        expect(onA).toEqual([]);
      });

      it('keeps per-connection order when the handler is asynchronous', async () => {
        const conns = [uid('conn'), uid('conn')];
        const started: Record<string, string[]> = {};
        b.onCommand(async (cmd) => {
          if (cmd.kind !== 'post') return { status: 'gone' };
          const list = started[cmd.connectionId] ?? [];
          started[cmd.connectionId] = list;
          list.push(text(cmd.data));
          await new Promise<void>((resolve) => setTimeout(resolve, Math.floor(Math.random() * 3)));
          return { status: 'ok' };
        });
        const sends: Array<Promise<CommandOutcome>> = [];
        for (let i = 0; i < 30; i++) for (const c of conns) sends.push(a.sendToNode(b.nodeId, post(c, String(i))));
        const outcomes = await Promise.all(sends);
        expect(outcomes.every((o) => o.status === 'ok')).toBe(true);
        for (const c of conns) expect(started[c]).toEqual(Array.from({ length: 30 }, (_, i) => String(i)));
      });

      it("returns the owner's outcome to the sender", async () => {
        const rec = record(b);
        b.onCommand((cmd): CommandOutcome => {
          if (cmd.kind === 'describe') return { status: 'ok', record: rec };
          if (cmd.kind === 'delete') return { status: 'gone' };
          if (text(cmd.data) === 'big') return { status: 'too_large' };
          if (text(cmd.data) === 'fast') return { status: 'throttled' };
          return { status: 'ok' };
        });
        const to = b.nodeId;
        expect(await a.sendToNode(to, { kind: 'describe', connectionId: rec.connectionId })).toEqual({
          status: 'ok',
          record: rec,
        });
        expect(await a.sendToNode(to, { kind: 'delete', connectionId: rec.connectionId })).toEqual({ status: 'gone' });
        expect(await a.sendToNode(to, post(rec.connectionId, 'big'))).toEqual({ status: 'too_large' });
        expect(await a.sendToNode(to, post(rec.connectionId, 'fast'))).toEqual({ status: 'throttled' });
        expect(await a.sendToNode(to, post(rec.connectionId, 'fine'))).toEqual({ status: 'ok' });
      });

      it('delivers binary payloads unchanged', async () => {
        const payload = Uint8Array.from({ length: 256 }, (_, i) => i);
        let got: Uint8Array | string | undefined;
        b.onCommand((cmd) => {
          if (cmd.kind === 'post') got = cmd.data;
          return { status: 'ok' };
        });
        await a.sendToNode(b.nodeId, { kind: 'post', connectionId: uid('conn'), data: payload, binary: true });
        expect(got).toBeInstanceOf(Uint8Array);
        expect(Array.from(got as Uint8Array)).toEqual(Array.from(payload));
      });

      it('delivers string payloads as strings (in-process posts), including non-ASCII text', async () => {
        const payload = 'héllo ✓ 😀 "quoted"';
        let got: Uint8Array | string | undefined;
        b.onCommand((cmd) => {
          if (cmd.kind === 'post') got = cmd.data;
          return { status: 'ok' };
        });
        await a.sendToNode(b.nodeId, { kind: 'post', connectionId: uid('conn'), data: payload, binary: false });
        expect(got).toBe(payload);
      });

      it('answers gone when the node has no handler', async () => {
        expect(await a.sendToNode(b.nodeId, post(uid('conn'), 'x'))).toEqual({ status: 'gone' });
      });

      it('answers gone quickly for an unknown node', async () => {
        const started = Date.now();
        expect(await a.sendToNode(uid('no-such-node'), post(uid('conn'), 'x'))).toEqual({ status: 'gone' });
        expect(Date.now() - started).toBeLessThan(3_000);
      });

      it('refuses a second command handler', () => {
        a.onCommand(() => ({ status: 'ok' }));
        expect(() => a.onCommand(() => ({ status: 'ok' }))).toThrow();
      });
    });
  });
}
