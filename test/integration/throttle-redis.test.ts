import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisRateLimitStore } from '../../server/throttling/distributed.ts';
import { periodEnd, periodStart } from '../../server/throttling/quota.ts';

/*
 * Cluster-wide throttling against a real redis-server (started here on a free port): three
 * RedisRateLimitStore instances, each with its own client, stand for three gateway nodes.
 * The only real-time waits are the measured windows themselves.
 */

interface RedisServer {
  port: number;
  proc: ChildProcess;
  exited: Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function startRedis(port?: number): Promise<RedisServer> {
  const p = port ?? (await freePort());
  const proc = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const probe = new Redis({ port: p, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: null, retryStrategy: () => 20 });
  probe.on('error', noteError);
  try {
    const early = exited.then(() => {
      throw new Error(`redis-server on port ${p} exited during start-up`);
    });
    await Promise.race([probe.ping(), early]);
  } finally {
    probe.disconnect();
  }
  return { port: p, proc, exited };
}

async function stopRedis(server: RedisServer | undefined): Promise<void> {
  if (server === undefined || server.proc.exitCode !== null || server.proc.signalCode !== null) return;
  server.proc.kill('SIGKILL');
  await server.exited;
}

const clientErrors: unknown[] = [];
function noteError(err: unknown): void {
  clientErrors.push(err);
}

function client(port: number): Redis {
  const c = new Redis({
    port,
    host: '127.0.0.1',
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(times * 50, 200),
  });
  c.on('error', noteError);
  return c;
}

async function waitFor(
  cond: () => boolean,
  timeoutMs: number,
  what: string,
  refresh?: () => Promise<void>,
): Promise<void> {
  const t0 = performance.now();
  for (;;) {
    if (refresh !== undefined) await refresh();
    if (cond()) return;
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise<void>((resolve) => setTimeout(resolve, 5));
  }
}

function stores(clients: Redis[], prefix: string): RedisRateLimitStore[] {
  return clients.map(
    (redis, i) =>
      new RedisRateLimitStore({ redis, keyPrefix: prefix, nodeId: `node${i}`, nodeCount: () => clients.length }),
  );
}

/** Hammer one bucket from every store until `ms` of real time passed; returns per-store admissions. */
async function hammer(
  nodes: RedisRateLimitStore[],
  key: string,
  rate: number,
  burst: number,
  ms: number,
): Promise<{ admitted: number[]; calls: number; seconds: number; slowestBatchMs: number }> {
  const admitted = nodes.map(() => 0);
  let calls = 0;
  let slowestBatchMs = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    const b0 = performance.now();
    for (let i = 0; i < 50; i++) {
      for (let n = 0; n < nodes.length; n++) {
        calls++;
        if (nodes[n]?.tryTake(key, rate, burst) === 0) admitted[n] = (admitted[n] ?? 0) + 1;
      }
    }
    slowestBatchMs = Math.max(slowestBatchMs, performance.now() - b0);
    await nextTurn();
  }
  return { admitted, calls, seconds: (performance.now() - t0) / 1000, slowestBatchMs };
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

describe('RedisRateLimitStore against a real redis-server', () => {
  let server: RedisServer | undefined;
  const clients: Redis[] = [];

  beforeAll(async () => {
    server = await startRedis();
    for (let i = 0; i < 3; i++) clients.push(client(server.port));
    await Promise.all(clients.map((c) => c.ping()));
  });

  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await stopRedis(server);
  });

  it('3 nodes far above the limit admit rate x seconds + burst within 5 %', async () => {
    const nodes = stores(clients, `ghtest:${randomUUID()}:`);
    const rate = 1000;
    const burst = 2000;
    const run = await hammer(nodes, 'api', rate, burst, 3000);
    const total = sum(run.admitted);
    const expected = rate * run.seconds + burst;
    // Far above the limit: at least 10x more attempts than admissions.
    expect(run.calls).toBeGreaterThan(expected * 10);
    expect(Math.abs(total - expected) / expected, `admitted ${total}, expected ${expected.toFixed(0)}`).toBeLessThanOrEqual(
      0.05,
    );
    for (const [i, n] of nodes.entries()) {
      expect(n.stats().degraded, `node${i} degraded`).toBe(false);
      expect(n.stats().redisErrors).toBe(0);
      expect(run.admitted[i], `node${i} admitted some`).toBeGreaterThan(0);
    }
    // The common case does not pay a round trip per admitted request.
    const redisCalls = sum(nodes.map((n) => n.stats().redisCalls));
    expect(redisCalls).toBeLessThan(total);
    await Promise.all(nodes.map((n) => n.close()));
  });

  it('below the limit, leases are prefetched: nothing is refused and Redis sees a fraction of the requests', async () => {
    const nodes = stores(clients, `ghtest:${randomUUID()}:`);
    let refused = 0;
    let admitted = 0;
    for (let round = 0; round < 400; round++) {
      for (const n of nodes) {
        for (let i = 0; i < 5; i++) {
          if (n.tryTake('wide', 1_000_000, 100_000) === 0) admitted++;
          else refused++;
        }
      }
      await nextTurn();
    }
    expect(admitted).toBe(6000);
    expect(refused).toBe(0);
    expect(sum(nodes.map((n) => n.stats().redisCalls))).toBeLessThan(admitted / 4);
    await Promise.all(nodes.map((n) => n.close()));
  });

  it('shares a quota across nodes: total within limit + nodes x chunk, counter in Redis expires at period end', async () => {
    const prefix = `ghtest:${randomUUID()}:`;
    const nodes = stores(clients, prefix);
    const limit = 3000; // chunk = ceil(3000 x 1 % / 3) = 10
    const end = periodEnd('DAY', Date.now());
    let admitted = 0;
    // Until every node answers "exhausted until the period ends". A refusal while a reservation
    // is in flight says "retry in a moment" instead; this loop sees many of those because it
    // spends a whole day's quota in a few ms, far faster than one chunk per round trip.
    const exhausted = new Set<number>();
    for (let round = 0; round < 100_000 && exhausted.size < nodes.length; round++) {
      for (const [i, n] of nodes.entries()) {
        const d = n.tryQuota('free:k1', limit, 'DAY');
        if (d.ok) admitted++;
        else if (d.resetAt === end) exhausted.add(i);
      }
      await nextTurn();
    }
    expect(exhausted.size).toBe(3);
    expect(admitted).toBeGreaterThanOrEqual(limit);
    expect(admitted).toBeLessThanOrEqual(limit + 3 * 10);
    const key = `${prefix}{q:free:k1}:DAY:${periodStart('DAY', Date.now())}`;
    const c = clients[0];
    if (c === undefined) throw new Error('no client');
    // Credit used during the last reservation is charged right after it: the counter catches up.
    let counter = 0;
    await waitFor(
      () => counter === admitted,
      2000,
      'the shared counter to equal the admissions',
      async () => {
        counter = Number(await c.get(key));
      },
    );
    expect(Number(await c.pexpiretime(key))).toBe(end + 3_600_000);
    await Promise.all(nodes.map((n) => n.close()));
  });

  it('gives unspent leases back on close', async () => {
    const prefix = `ghtest:${randomUUID()}:`;
    const [a] = stores(clients, prefix);
    if (a === undefined) throw new Error('no store');
    for (let i = 0; i < 20; i++) {
      a.tryTake('g', 10_000, 1000);
      await nextTurn();
    }
    await a.close();
    const c = clients[0];
    if (c === undefined) throw new Error('no client');
    const tokens = Number(await c.hget(`${prefix}{tb:g}`, 't'));
    // 20 taken out of 1000; the refill since is at most a few hundred ms x 10,000/s, capped at 1000.
    expect(tokens).toBeGreaterThanOrEqual(980);
  });
});

describe('RedisRateLimitStore when Redis goes away mid-run', () => {
  let server: RedisServer | undefined;
  const clients: Redis[] = [];

  beforeAll(async () => {
    server = await startRedis();
    for (let i = 0; i < 3; i++) clients.push(client(server.port));
    await Promise.all(clients.map((c) => c.ping()));
  });

  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await stopRedis(server);
  });

  it('never throws or blocks, admits at most the local share, and resumes leasing when Redis is back', async () => {
    const nodes = stores(clients, `ghtest:${randomUUID()}:`);
    const rate = 300;
    const burst = 300;
    const before = await hammer(nodes, 'api', rate, burst, 1000);
    expect(sum(before.admitted)).toBeGreaterThan(0);

    if (server === undefined) throw new Error('no server');
    const port = server.port;
    await stopRedis(server);
    await waitFor(() => clients.every((c) => c.status !== 'ready'), 5000, 'clients to notice the outage');
    const callsAtOutage = nodes.map((n) => n.stats().redisCalls);

    const during = await hammer(nodes, 'api', rate, burst, 1500);
    for (const [i, n] of nodes.entries()) {
      const share = (rate / 3) * during.seconds + burst / 3;
      expect(during.admitted[i], `node${i} keeps admitting`).toBeGreaterThan(share * 0.5);
      expect(during.admitted[i], `node${i} stays within its share`).toBeLessThanOrEqual(share + 1);
      expect(n.stats().degraded).toBe(true);
      expect(n.stats().redisCalls, `node${i} sends nothing while Redis is down`).toBe(callsAtOutage[i]);
    }
    // Synchronous all along: a batch of 150 calls never waited for anything (generous bound for a busy CI box).
    expect(during.slowestBatchMs).toBeLessThan(250);

    server = await startRedis(port);
    await waitFor(() => clients.every((c) => c.status === 'ready'), 10_000, 'clients to reconnect');
    const after = await hammer(nodes, 'api', rate, burst, 1200);
    for (const [i, n] of nodes.entries()) {
      expect(n.stats().degraded, `node${i} back on Redis`).toBe(false);
      expect(n.stats().redisCalls).toBeGreaterThan(callsAtOutage[i] ?? 0);
    }
    expect(sum(after.admitted)).toBeLessThanOrEqual(rate * after.seconds + burst + 50);
    await Promise.all(nodes.map((n) => n.close()));
  });
});
