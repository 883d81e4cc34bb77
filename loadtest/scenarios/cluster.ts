// Scenario "cluster": the gateway as several nodes sharing one Redis.
//   posts:   a redis-server and 3 nodes (A, B, C) with --redis; --cluster-connections clients on
//            node C; @connections POSTs at a fixed rate (open loop, the driver's raw keep-alive HTTP client),
//            first to node C itself (single node), then to node A (cross-node: A -> Redis -> C).
//            End-to-end latency (POST sent -> message at the client) and POST response latency.
//   fanout:  chat fan-out (`broadcast` route: listConnections + postToConnection) with clients
//            on all 3 nodes, vs the same clients on one node (Redis mode, and a plain node).
//   redis:   the ws scenario's MOCK and LAMBDA throughput on one node started with --redis,
//            as a share of the same node without Redis.
// Nodes run on the server CPUs; redis-server and the drivers on the loadgen CPUs.

import { randomBytes } from "node:crypto";
import type { FanoutResult, PostResult } from "../cluster-driver.ts";
import { driveThroughput, type ThroughputSample } from "../lib/drive.ts";
import { benchPayload } from "../lib/payloads.ts";
import { ChildLines, jsonLineOfType, pinnedCommandLine, spawnPinned, stopProcessTree, treeCpuSeconds, tsNodeArgs } from "../lib/proc.ts";
import { type RunningRedis, startRedis } from "../lib/redis.ts";
import { machineBusySeconds, NOISE_CORES, noiseNote, pickRun, quietWait, reproduceCommand } from "../lib/runs.ts";
import { type RunningServer, SkipError, startCustomServer, startServer } from "../lib/servers.ts";
import { fmtFixed, fmtInt, fmtMs, fmtPct, fmtRatio } from "../lib/table.ts";
import type { Check, RunContext, Scenario, ScenarioReport } from "./types.ts";

export const CLUSTER_TARGETS = {
  /** @connections POSTs per second, open loop. */
  postRate: 5000,
  /** Cross-node p99 (POST -> delivery, and the POST's own response). */
  p99Ms: 5,
  /** Achieved rate must be at least this share of the target rate. */
  minRateShare: 0.98,
  /** Redis-mode throughput as a share of the no-Redis figure. */
  redisKeep: 0.7,
} as const;

const API = "loadtest/api-cluster.yaml";
const THROUGHPUT_API = "loadtest/api.yaml";
const PARTS = ["posts", "fanout", "redis"] as const;

/** Garbage collection in one node over the measured window, from its own /metrics (prom-client's gc metrics). */
interface NodeGc {
  majors: number;
  majorMs: number;
  minors: number;
  minorMs: number;
}

interface GcCounters {
  majorCount: number;
  majorSeconds: number;
  minorCount: number;
  minorSeconds: number;
}

/** Reads nodejs_gc_duration_seconds_{count,sum} by kind; null when the node does not answer. */
async function gcCounters(port: number): Promise<GcCounters | null> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) })).text();
    const read = (series: "count" | "sum", kind: string): number => {
      const m = new RegExp(`^nodejs_gc_duration_seconds_${series}\\{[^}]*kind="${kind}"[^}]*\\} ([0-9.e+-]+)$`, "m").exec(text);
      return m ? Number(m[1]) : 0;
    };
    return { majorCount: read("count", "major"), majorSeconds: read("sum", "major"), minorCount: read("count", "minor"), minorSeconds: read("sum", "minor") };
  } catch {
    return null;
  }
}

interface Usage {
  /** GC in the node the driver sends to (the POST target), when it is a gateway node. */
  gc?: NodeGc | undefined;
  nodesCpu: number;
  redisCpu: number;
  driverCpu: number;
  otherCpu: number;
}

interface PostSample extends PostResult, Usage {}
interface FanoutSample extends FanoutResult, Usage {}
interface Series<T> {
  samples: T[];
  error: string;
}

function series<T>(): Series<T> {
  return { samples: [], error: "" };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Runs cluster-driver.ts pinned; samples the nodes' and Redis's CPU over its measured window. */
async function runDriver<T extends PostResult | FanoutResult>(
  ctx: RunContext,
  args: readonly string[],
  env: Record<string, string>,
  resultType: T["type"],
  nodes: readonly RunningServer[],
  redis: RunningRedis | null,
  timeoutMs: number,
  gcPort?: number,
): Promise<T & Usage> {
  const argv = tsNodeArgs("loadtest/cluster-driver.ts", args);
  ctx.log(`   driver: ${pinnedCommandLine("node", argv, ctx.loadCpus)}`);
  const child = spawnPinned(process.execPath, argv, { cpus: ctx.loadCpus, cwd: ctx.root, env: { ...process.env, ...env } });
  const lines = new ChildLines(child, "  [driver] ");
  const pids = [...new Set(nodes.map((n) => n.pid))];
  const nodesCpu = () => pids.reduce((s, pid) => s + treeCpuSeconds(pid), 0);
  try {
    await lines.waitForLine(jsonLineOfType("measure-start"), timeoutMs, "driver measure-start");
    const g0 = gcPort !== undefined ? await gcCounters(gcPort) : null;
    const n0 = nodesCpu();
    const r0 = redis !== null ? treeCpuSeconds(redis.pid) : 0;
    const b0 = machineBusySeconds();
    const t0 = performance.now();
    await lines.waitForLine(jsonLineOfType("measure-end"), timeoutMs, "driver measure-end");
    const wall = (performance.now() - t0) / 1000;
    const nodesUsed = (nodesCpu() - n0) / wall;
    const redisUsed = redis !== null ? (treeCpuSeconds(redis.pid) - r0) / wall : 0;
    const busy = (machineBusySeconds() - b0) / wall;
    const g1 = g0 !== null && gcPort !== undefined ? await gcCounters(gcPort) : null;
    const gc =
      g0 !== null && g1 !== null
        ? {
            majors: g1.majorCount - g0.majorCount,
            majorMs: (g1.majorSeconds - g0.majorSeconds) * 1000,
            minors: g1.minorCount - g0.minorCount,
            minorMs: (g1.minorSeconds - g0.minorSeconds) * 1000,
          }
        : undefined;
    const result = JSON.parse(await lines.waitForLine(jsonLineOfType(resultType), 30_000, `driver ${resultType}`)) as T;
    return {
      ...result,
      gc,
      nodesCpu: nodesUsed,
      redisCpu: redisUsed,
      driverCpu: result.loadgenCpu,
      otherCpu: Math.max(0, busy - nodesUsed - redisUsed - result.loadgenCpu),
    };
  } finally {
    await stopProcessTree(lines, 2000);
  }
}

interface Settings {
  rate: number;
  warmupSec: number;
  durationSec: number;
  connections: number;
  perNode: number;
  senders: number;
  parts: Set<string>;
  redisCpus: string;
  /** taskset CPU list per node A, B, C. */
  nodeCpus: [string, string, string];
  repeat: number;
  how: string;
}

function nodeCpuLists(raw: string | undefined, fallback: string): [string, string, string] {
  if (raw === undefined) return [fallback, fallback, fallback];
  const parts = raw.split("/");
  if (parts.length !== 3 || parts.some((p) => p.trim() === "")) throw new Error(`--node-cpus expects A/B/C (three CPU lists), got ${JSON.stringify(raw)}`);
  return [parts[0]!.trim(), parts[1]!.trim(), parts[2]!.trim()];
}

export const clusterScenario: Scenario = {
  name: "cluster",
  description: "3 nodes + Redis: cross-node @connections POST latency at 5,000/s, chat fan-out, Redis-mode ws throughput",
  flags: [
    ["--cluster-rate N", "@connections POSTs per second, open loop (default 5000)"],
    ["--cluster-duration S", "measured seconds per post/fan-out run (default 10)"],
    ["--cluster-warmup S", "unmeasured seconds first (default 2)"],
    ["--cluster-connections N", "clients on node C that the POSTs go to (default 100)"],
    ["--fanout-per-node N", "fan-out clients per node (default 20)"],
    ["--fanout-senders N", "fan-out senders, one broadcast in flight each (default 12)"],
    ["--cluster-parts LIST", "subset of posts,fanout,redis (default all)"],
    ["--redis-cpus LIST", "taskset CPU list of redis-server (default: the loadgen CPUs)"],
    ["--node-cpus A/B/C", "taskset CPU lists of nodes A, B, C, slash-separated (default: the server CPUs for all)"],
    ["--connections/--inflight/--bytes/--warmup/--duration", "the ws-throughput settings, for the Redis-mode comparison"],
    ["--repeat N / --pick MODE / --quiet-wait S", "as for the ws scenario"],
  ],

  async run(ctx: RunContext): Promise<ScenarioReport> {
    const f = ctx.flags;
    const s: Settings = {
      rate: f.number("cluster-rate", CLUSTER_TARGETS.postRate),
      warmupSec: f.number("cluster-warmup", 2),
      durationSec: f.number("cluster-duration", 10),
      connections: f.number("cluster-connections", 100),
      perNode: f.number("fanout-per-node", 20),
      senders: f.number("fanout-senders", 12),
      parts: new Set(f.list("cluster-parts", [...PARTS])),
      redisCpus: f.string("redis-cpus", ctx.loadCpus),
      nodeCpus: nodeCpuLists(f.optionalString("node-cpus"), ctx.serverEnv.cpus),
      repeat: Math.max(1, f.number("repeat", 1)),
      how: f.string("pick", "quiet-median"),
    };
    const token = `bench-${randomBytes(16).toString("hex")}`;
    const nodeEnv = { GATEHOUSE_MANAGEMENT_TOKEN: token, GATEHOUSE_LOG_LEVEL: "warn" };
    const driverTimeout = (s.warmupSec + s.durationSec) * 1000 + 60_000;
    const postFloor = series<PostSample>();
    const postLocal = series<PostSample>();
    const postCross = series<PostSample>();
    const fan3 = series<FanoutSample>();
    const fan1Redis = series<FanoutSample>();
    const fan1Plain = series<FanoutSample>();
    const tput = new Map<string, Series<ThroughputSample>>(
      ["mock", "mock-redis", "lambda", "lambda-redis"].map((k) => [k, series<ThroughputSample>()]),
    );
    const notes: string[] = [];
    let skipped = "";
    let redis: RunningRedis | null = null;

    const postArgs = (wsPort: number, postPort: number) => [
      "--mode",
      "post",
      "--ws-port",
      String(wsPort),
      "--post-port",
      String(postPort),
      "--connections",
      String(s.connections),
      "--rate",
      String(s.rate),
      "--warmup",
      String(s.warmupSec),
      "--duration",
      String(s.durationSec),
    ];
    const fanArgs = (ports: readonly number[]) => [
      "--mode",
      "fanout",
      "--ports",
      ports.join(","),
      "--per-node",
      String(s.perNode),
      "--senders",
      String(s.senders),
      "--warmup",
      String(s.warmupSec),
      "--duration",
      String(s.durationSec),
    ];
    const attempt = async <T>(label: string, into: Series<T>, fn: () => Promise<T>, describe: (x: T) => string) => {
      ctx.log(`cluster: ${label}`);
      try {
        await quietWait(ctx);
        const x = await fn();
        into.samples.push(x);
        ctx.log(`   ${describe(x)}`);
      } catch (err) {
        into.error = errorText(err);
        ctx.log(`   error: ${into.error}`);
      }
    };
    const describePost = (x: PostSample) =>
      `${fmtInt(x.rate)} posts/s, ${fmtInt(x.ok)}/${fmtInt(x.sent)} OK, ${fmtInt(x.delivered)} delivered; POST p50 ${fmtMs(x.post.p50us)} p99 ${fmtMs(x.post.p99us)} ms; delivery p50 ${fmtMs(x.e2e.p50us)} p99 ${fmtMs(x.e2e.p99us)} ms; nodes cpu ${fmtPct(x.nodesCpu)} redis ${fmtPct(x.redisCpu)} driver ${fmtPct(x.driverCpu)} other ${fmtFixed(x.otherCpu, 2)}`;
    const describeFan = (x: FanoutSample) =>
      `${fmtInt(x.deliveredRate)} msgs/s delivered (${fmtInt(x.broadcastRate)} broadcasts/s to ${x.connections}), p50 ${fmtMs(x.latency.p50us)} p99 ${fmtMs(x.latency.p99us)} ms, ${fmtInt(x.delivered)}/${fmtInt(x.expected)} arrived; nodes cpu ${fmtPct(x.nodesCpu)} redis ${fmtPct(x.redisCpu)} driver ${fmtPct(x.driverCpu)} other ${fmtFixed(x.otherCpu, 2)}`;

    try {
      redis = await startRedis({ cpus: s.redisCpus, cwd: ctx.root, logDir: ctx.serverEnv.logDir, timeoutMs: ctx.serverEnv.readyTimeoutMs });
      const redisUrl = redis.url;
      ctx.log(`cluster: redis: ${redis.command}`);

      // --- 3 nodes: posts (local, cross-node) and fan-out (3 nodes, 1 node) ---
      if (s.parts.has("posts") || s.parts.has("fanout")) {
        const nodes: RunningServer[] = [];
        let floorServer: RunningServer | null = null;
        try {
          if (s.parts.has("posts")) {
            // The driver's own floor: POSTs to a raw uWS HTTP server that answers 200 at once.
            floorServer = await startCustomServer(
              {
                name: "post-floor",
                cmd: process.execPath,
                args: tsNodeArgs("loadtest/servers/raw-uws-http.ts", ["--port", "{port}"]),
                cpus: ctx.serverEnv.cpus,
                ready: "tcp",
              },
              ctx.serverEnv,
            );
          }
          for (const [i, id] of ["a", "b", "c"].entries()) {
            const node = await startServer("gateway", ctx.serverEnv, `cluster-node-${id}`, {
              gatewayApi: API,
              extraArgs: ["--redis", redisUrl],
              env: nodeEnv,
              nodeId: `node-${id}`,
              cpus: s.nodeCpus[i]!,
            });
            nodes.push(node);
            ctx.log(`cluster: node ${id.toUpperCase()}: ${node.command} (port ${node.port})`);
          }
          const [a, b, c] = nodes as [RunningServer, RunningServer, RunningServer];
          const tokenEnv = { GATEHOUSE_MANAGEMENT_TOKEN: token };
          for (let round = 1; round <= s.repeat; round++) {
            const r = `(round ${round}/${s.repeat})`;
            if (s.parts.has("posts") && floorServer !== null) {
              const floor = floorServer;
              await attempt(
                `driver floor: POSTs to a raw uWS HTTP server that answers 200 at once ${r}`,
                postFloor,
                () =>
                  runDriver<PostResult>(
                    ctx,
                    [...postArgs(c.port, floor.port), "--expect-delivery", "0"],
                    tokenEnv,
                    "post-result",
                    [floor],
                    null,
                    driverTimeout,
                  ),
                describePost,
              );
              await attempt(
                `POSTs to node C for its own connections ${r}`,
                postLocal,
                () => runDriver<PostResult>(ctx, postArgs(c.port, c.port), tokenEnv, "post-result", nodes, redis, driverTimeout, c.port),
                describePost,
              );
              await attempt(
                `POSTs to node A for connections on node C ${r}`,
                postCross,
                () => runDriver<PostResult>(ctx, postArgs(c.port, a.port), tokenEnv, "post-result", nodes, redis, driverTimeout, a.port),
                describePost,
              );
            }
            if (s.parts.has("fanout")) {
              await attempt(
                `fan-out, clients on 3 nodes ${r}`,
                fan3,
                () => runDriver<FanoutResult>(ctx, fanArgs([a.port, b.port, c.port]), {}, "fanout-result", nodes, redis, driverTimeout),
                describeFan,
              );
              await attempt(
                `fan-out, all clients on node C (Redis mode) ${r}`,
                fan1Redis,
                () => runDriver<FanoutResult>(ctx, fanArgs([c.port, c.port, c.port]), {}, "fanout-result", nodes, redis, driverTimeout),
                describeFan,
              );
            }
          }
        } catch (err) {
          if (err instanceof SkipError) throw err;
          const message = errorText(err);
          notes.push(`cluster start: ${message.split("\n")[0]}`);
          if (postLocal.error === "") postLocal.error = message;
          if (postCross.error === "") postCross.error = message;
          if (fan3.error === "") fan3.error = message;
          if (fan1Redis.error === "") fan1Redis.error = message;
        } finally {
          await Promise.all(nodes.map((n) => n.stop()));
          await floorServer?.stop();
        }
        if (s.parts.has("fanout")) {
          for (let round = 1; round <= s.repeat; round++) {
            let node: RunningServer | null = null;
            try {
              node = await startServer("gateway", ctx.serverEnv, `cluster-plain-${round}`, { gatewayApi: API, env: nodeEnv, nodeId: "plain" });
              const only = node;
              await attempt(
                `fan-out, all clients on one node without Redis (round ${round}/${s.repeat})`,
                fan1Plain,
                () => runDriver<FanoutResult>(ctx, fanArgs([only.port, only.port, only.port]), {}, "fanout-result", [only], null, driverTimeout),
                describeFan,
              );
            } catch (err) {
              fan1Plain.error = errorText(err);
            } finally {
              await node?.stop();
            }
          }
        }
      }

      // --- one node, ws throughput with and without --redis ---
      if (s.parts.has("redis")) {
        const connections = f.number("connections", 100);
        const inflight = f.number("inflight", 10);
        const bytes = f.number("bytes", 64);
        const warmupSec = f.number("warmup", 3);
        const durationSec = f.number("duration", 10);
        for (let round = 1; round <= s.repeat; round++) {
          for (const route of ["mock", "lambda"] as const) {
            for (const withRedis of [false, true]) {
              const key = withRedis ? `${route}-redis` : route;
              const into = tput.get(key)!;
              const payload = benchPayload(route === "mock" ? "mock" : "echo", bytes);
              const expectReply = route === "mock" ? '{"ok":true}' : payload;
              ctx.log(`cluster: ws ${route.toUpperCase()} throughput, ${withRedis ? "--redis" : "no Redis"} (round ${round}/${s.repeat})`);
              let server: RunningServer | null = null;
              try {
                server = await startServer("gateway", ctx.serverEnv, `cluster-tput-${key}-${round}`, {
                  gatewayApi: THROUGHPUT_API,
                  extraArgs: withRedis ? ["--redis", redisUrl] : [],
                  nodeId: withRedis ? "bench-redis" : "bench",
                });
                if (round === 1) ctx.log(`   server: ${server.command}`);
                await quietWait(ctx);
                const sample = await driveThroughput(
                  server,
                  { connections, inflight, payload, expectReply, warmupSec, durationSec },
                  ctx.root,
                  ctx.loadCpus,
                );
                into.samples.push(sample);
                ctx.log(
                  `   ${fmtInt(sample.rate)} msgs/s  p50 ${fmtMs(sample.p50us)} ms  p99 ${fmtMs(sample.p99us)} ms  server cpu ${fmtPct(sample.serverCpu)}  other cpu ${fmtFixed(sample.otherCpu, 2)} cores`,
                );
              } catch (err) {
                into.error = errorText(err);
                ctx.log(`   error: ${into.error}`);
              } finally {
                await server?.stop();
              }
            }
          }
        }
      }
    } catch (err) {
      if (!(err instanceof SkipError)) throw err;
      skipped = err.message;
    } finally {
      await redis?.stop();
    }

    // ---------------------------------------------------------------- report
    const pickPost = (x: Series<PostSample>) => pickRun(x.samples, s.how, (p) => p.e2e.p99us);
    const pickFan = (x: Series<FanoutSample>) => pickRun(x.samples, s.how, (p) => p.deliveredRate);
    const pickTput = (k: string) => pickRun(tput.get(k)?.samples ?? [], s.how, (p) => p.rate);
    const floorRun = pickPost(postFloor);
    const local = pickPost(postLocal);
    const cross = pickPost(postCross);
    const f3 = pickFan(fan3);
    const f1r = pickFan(fan1Redis);
    const f1 = pickFan(fan1Plain);
    const checks: Check[] = [];
    const dash = (n: number) => Array.from({ length: n }, () => "-");

    const postTable: string[][] = [
      ["POSTs", "posts/s", "POST p50 ms", "POST p99 ms", "delivery p50 ms", "delivery p99 ms", "delivery max ms", "200 OK", "delivered", "nodes cpu", "redis cpu", "driver cpu", "other cpu", "POSTed node GC"],
    ];
    const postRow = (label: string, x: PostSample | null, sr: Series<PostSample>, delivers = true) => {
      if (x === null) {
        postTable.push([label, skipped ? "SKIP" : s.parts.has("posts") ? "ERROR" : "not run", ...dash(12)]);
        if (sr.error) notes.push(`${label}: ${sr.error.split("\n")[0]}`);
        return;
      }
      postTable.push([
        label,
        fmtInt(x.rate),
        fmtMs(x.post.p50us),
        fmtMs(x.post.p99us),
        delivers ? fmtMs(x.e2e.p50us) : "-",
        delivers ? fmtMs(x.e2e.p99us) : "-",
        delivers ? fmtMs(x.e2e.maxUs) : "-",
        `${fmtInt(x.ok)}/${fmtInt(x.sent)}`,
        delivers ? `${fmtInt(x.delivered)}/${fmtInt(x.sent)}` : "-",
        fmtPct(x.nodesCpu),
        fmtPct(x.redisCpu),
        fmtPct(x.driverCpu),
        fmtFixed(x.otherCpu, 2),
        x.gc === undefined ? "-" : `${x.gc.majors} major ${fmtFixed(x.gc.majorMs, 1)} ms, ${x.gc.minors} minor ${fmtFixed(x.gc.minorMs, 1)} ms`,
      ]);
      const bad = Object.entries(x.statuses).filter(([k]) => k !== "200");
      if (bad.length > 0 || x.requestErrors > 0 || x.closed > 0) {
        notes.push(
          `${label}: statuses ${bad.map(([k, v]) => `${k}: ${v}`).join(", ") || "all 200"}, ${x.requestErrors} request errors, ${x.closed} client connections closed by the server (${x.lastError})`,
        );
      }
      if (x.loopMaxMs > 5) {
        notes.push(
          `${label}: the driver's event loop stalled up to ${fmtFixed(x.loopMaxMs, 1)} ms (p99 ${fmtFixed(x.loopP99Ms, 1)} ms) and sent up to ${fmtFixed(x.maxLagMs, 1)} ms behind schedule; latencies include such stalls`,
        );
      }
    };
    postRow("driver floor: raw uWS HTTP answers 200", floorRun, postFloor, false);
    postRow("node C -> own connections (single node)", local, postLocal);
    postRow("node A -> connections on node C (cross-node)", cross, postCross);

    if (s.parts.has("posts")) {
      const failed = postCross.error !== "" && !skipped;
      const na = skipped ? null : failed ? false : null;
      checks.push({
        name: `cross-node delivery p99 < ${CLUSTER_TARGETS.p99Ms} ms at ${fmtInt(s.rate)} posts/s (POST sent -> message at client)`,
        pass: cross === null ? na : cross.e2e.p99us < CLUSTER_TARGETS.p99Ms * 1000,
        detail: cross === null ? skipped || "error" : `${fmtMs(cross.e2e.p99us)} ms`,
      });
      checks.push({
        name: `cross-node POST response p99 < ${CLUSTER_TARGETS.p99Ms} ms at ${fmtInt(s.rate)} posts/s`,
        pass: cross === null ? na : cross.post.p99us < CLUSTER_TARGETS.p99Ms * 1000,
        detail: cross === null ? skipped || "error" : `${fmtMs(cross.post.p99us)} ms`,
      });
      checks.push({
        name: `cross-node: ${fmtInt(s.rate)} posts/s achieved, every POST 200 and delivered`,
        pass:
          cross === null
            ? na
            : cross.rate >= s.rate * CLUSTER_TARGETS.minRateShare && cross.ok === cross.sent && cross.delivered === cross.sent,
        detail:
          cross === null
            ? skipped || "error"
            : `${fmtInt(cross.rate)}/s, ${fmtInt(cross.ok)} OK, ${fmtInt(cross.delivered)} delivered of ${fmtInt(cross.sent)}`,
      });
    }

    const fanTable: string[][] = [
      ["fan-out", "delivered msgs/s", "vs 1 node", "broadcasts/s", "p50 ms", "p99 ms", "arrived", "nodes cpu", "redis cpu", "driver cpu", "other cpu"],
    ];
    const fanRow = (label: string, x: FanoutSample | null, sr: Series<FanoutSample>) => {
      if (x === null) {
        fanTable.push([label, skipped ? "SKIP" : s.parts.has("fanout") ? "ERROR" : "not run", ...dash(9)]);
        if (sr.error) notes.push(`${label}: ${sr.error.split("\n")[0]}`);
        return;
      }
      fanTable.push([
        label,
        fmtInt(x.deliveredRate),
        fmtRatio(f1 === null || f1.deliveredRate === 0 ? null : x.deliveredRate / f1.deliveredRate),
        fmtInt(x.broadcastRate),
        fmtMs(x.latency.p50us),
        fmtMs(x.latency.p99us),
        `${fmtInt(x.delivered)}/${fmtInt(x.expected)}`,
        fmtPct(x.nodesCpu),
        fmtPct(x.redisCpu),
        fmtPct(x.driverCpu),
        fmtFixed(x.otherCpu, 2),
      ]);
      if (x.loopMaxMs > 20) notes.push(`${label}: the driver's event loop stalled up to ${fmtFixed(x.loopMaxMs, 1)} ms (p99 ${fmtFixed(x.loopP99Ms, 1)} ms)`);
      if (x.stalls > 0 || x.closed > 0) notes.push(`${label}: ${x.stalls} sender stalls (own broadcast not back within 2 s), ${x.closed} clients closed (${x.lastError})`);
    };
    fanRow("3 nodes + Redis (clients spread)", f3, fan3);
    fanRow("1 node, Redis mode", f1r, fan1Redis);
    fanRow("1 node, no Redis", f1, fan1Plain);
    if (s.parts.has("fanout")) {
      checks.push({
        name: "fan-out across 3 nodes: every broadcast reached every client",
        pass: f3 === null ? (fan3.error !== "" && !skipped ? false : null) : f3.delivered === f3.expected && f3.closed === 0,
        detail: f3 === null ? skipped || "error" : `${fmtInt(f3.delivered)}/${fmtInt(f3.expected)}`,
      });
    }

    const tputTable: string[][] = [["route (1 node)", "no Redis msgs/s", "--redis msgs/s", "ratio", "p99 ms no Redis", "p99 ms --redis", "other cpu (max)"]];
    for (const route of ["mock", "lambda"] as const) {
      const plain = pickTput(route);
      const red = pickTput(`${route}-redis`);
      const label = route === "mock" ? "MOCK $default" : "LAMBDA echo";
      const r = plain === null || red === null || plain.rate === 0 ? null : red.rate / plain.rate;
      tputTable.push([
        label,
        plain === null ? "-" : fmtInt(plain.rate),
        red === null ? "-" : fmtInt(red.rate),
        fmtRatio(r),
        plain === null ? "-" : fmtMs(plain.p99us),
        red === null ? "-" : fmtMs(red.p99us),
        plain === null || red === null ? "-" : fmtFixed(Math.max(plain.otherCpu, red.otherCpu), 2),
      ]);
      for (const k of [route, `${route}-redis`]) {
        const e = tput.get(k)?.error ?? "";
        if (e) notes.push(`ws ${k}: ${e.split("\n")[0]}`);
        const chosen = pickTput(k);
        if (chosen !== null && (chosen.badReplies > 0 || chosen.closed > 0)) {
          notes.push(`ws ${k}: ${chosen.badReplies} wrong first replies (${JSON.stringify(chosen.sample)}), ${chosen.closed} closed`);
        }
      }
      if (s.parts.has("redis")) {
        const failed = (tput.get(route)?.error ?? "") !== "" || (tput.get(`${route}-redis`)?.error ?? "") !== "";
        checks.push({
          name: `${label}: --redis keeps >= ${CLUSTER_TARGETS.redisKeep.toFixed(2)}x of the single-node msgs/s`,
          pass: r === null ? (failed && !skipped ? false : null) : r >= CLUSTER_TARGETS.redisKeep,
          detail: r === null ? skipped || "error" : fmtRatio(r),
        });
      }
    }

    if (skipped) notes.push(`skipped: ${skipped}`);
    const noisy = [floorRun, local, cross, f3, f1r, f1, ...["mock", "mock-redis", "lambda", "lambda-redis"].map(pickTput)];
    const noise = noiseNote(noisy, "run(s)");
    if (noise !== null) notes.push(noise);
    notes.push(
      `posts: the driver-floor row sends the same POSTs to a raw uWS HTTP server on cpu ${ctx.serverEnv.cpus} (nodes cpu = that server) and shows the latency the driver itself adds; ${s.connections} clients on node C, ${fmtInt(s.rate)} POST /bench/@connections/{id} per second round-robin over them (open loop, raw-socket HTTP client with up to 128 keep-alive connections, bearer token), ${s.warmupSec}s warmup + ${s.durationSec}s measured; delivery = POST sent -> message parsed at the client, same process and clock; POSTed node GC = garbage collections in the node the POSTs go to during the measured window (count and total pause, from its /metrics): a major GC in the window usually shows in the p99`,
    );
    notes.push(
      `fan-out: ${s.perNode} clients per node slot x 3, ${s.senders} senders with one broadcast in flight each; delivered msgs/s = messages received by all clients in the window; the 1-node rows put all ${3 * s.perNode} clients on one node`,
    );
    notes.push(
      `placement: nodes A/B/C on cpu ${s.nodeCpus.join(" / ")}, the single nodes on cpu ${ctx.serverEnv.cpus}, redis-server on cpu ${s.redisCpus}, drivers on cpu ${ctx.loadCpus}`,
    );
    notes.push(
      `redis-mode throughput: ${THROUGHPUT_API} on one node with and without --redis, the ws scenario's load (${f.number("connections", 100)} conns x ${f.number("inflight", 10)} in flight)`,
    );
    notes.push(`noise threshold: other cpu above ${NOISE_CORES} cores marks a run as noisy`);
    notes.push(
      `reproduce: ${reproduceCommand(ctx, "cluster", [
        ["cluster-rate", s.rate],
        ["cluster-warmup", s.warmupSec],
        ["cluster-duration", s.durationSec],
        ["cluster-connections", s.connections],
        ["fanout-per-node", s.perNode],
        ["fanout-senders", s.senders],
        ["cluster-parts", [...s.parts].join(",")],
        ["redis-cpus", s.redisCpus],
        ["node-cpus", s.nodeCpus.join("/")],
        ["connections", f.number("connections", 100)],
        ["inflight", f.number("inflight", 10)],
        ["warmup", f.number("warmup", 3)],
        ["duration", f.number("duration", 10)],
        ["repeat", s.repeat],
      ])}`,
    );
    return {
      title: "Cluster (3 nodes + Redis)",
      table: postTable,
      sections: [
        { title: "chat fan-out (broadcast route)", table: fanTable },
        { title: "ws throughput on one node, Redis mode vs none", table: tputTable },
      ],
      checks,
      notes,
      data: {
        settings: { ...s, parts: [...s.parts] },
        posts: { floor: postFloor.samples, local: postLocal.samples, cross: postCross.samples },
        fanout: { threeNodes: fan3.samples, oneNodeRedis: fan1Redis.samples, oneNode: fan1Plain.samples },
        throughput: Object.fromEntries([...tput].map(([k, v]) => [k, v.samples])),
      },
    };
  },
};
