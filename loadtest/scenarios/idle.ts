// Scenario "idle": server memory per idle WebSocket connection.
// For raw uWS, the gateway (bench API) and bare ws: RSS of the server process tree
// before and after opening K idle connections (default 19,000).

import { holdIdleConnections, type IdleHold, type IdleSample } from "../lib/drive.ts";
import { sleep, treeRssKb } from "../lib/proc.ts";
import { type ServerKind, SkipError, startServer } from "../lib/servers.ts";
import { fmtFixed, fmtInt } from "../lib/table.ts";
import type { Check, RunContext, Scenario, ScenarioReport } from "./types.ts";

/** Target from the issue: at most 3 KB of RSS per idle connection (authorizer context included). */
export const IDLE_TARGET_KB_PER_CONN = 3;

interface IdleTarget {
  id: string;
  label: string;
  kind: ServerKind;
  /** null = reference figure only. */
  maxKbPerConn: number | null;
  /** Gateway API definition (relative to the repo root) instead of the default one. */
  gatewayApi?: string;
  /** Connection path; `{i}` becomes the connection index (unique token per connection). */
  path?: string;
}

export const IDLE_SERVERS: readonly IdleTarget[] = [
  { id: "raw-uws", label: "raw uWS", kind: "raw-uws", maxKbPerConn: null },
  { id: "gateway", label: "gateway (bench API)", kind: "gateway", maxKbPerConn: IDLE_TARGET_KB_PER_CONN },
  {
    id: "gateway-auth",
    label: "gateway + REQUEST authorizer",
    kind: "gateway",
    maxKbPerConn: IDLE_TARGET_KB_PER_CONN,
    gatewayApi: "loadtest/api-auth.yaml",
    path: "/bench?token=tok-{i}",
  },
  { id: "ws", label: "bare ws", kind: "ws", maxKbPerConn: null },
];

interface IdleOutcome {
  target: IdleTarget;
  rssBeforeKb: number;
  rssMidKb: number;
  rssAfterKb: number;
  kbPerConn: number;
  kbMarginal: number;
  after: IdleSample | null;
  skipped: string;
  error: string;
}

function mergeSamples(samples: IdleSample[], requested: number, openMs: number): IdleSample {
  return {
    requested,
    open: samples.reduce((s, x) => s + x.open, 0),
    failed: samples.reduce((s, x) => s + x.failed, 0),
    closedAfterOpen: samples.reduce((s, x) => s + x.closedAfterOpen, 0),
    openMs: Math.round(openMs),
    processes: samples.reduce((s, x) => s + x.processes, 0),
    lastError: samples.map((x) => x.lastError).find((e) => e !== "") ?? "",
  };
}

export const idleScenario: Scenario = {
  name: "idle",
  description: "RSS per idle WebSocket connection (19,000 connections) for raw uWS, gateway and bare ws",
  flags: [
    ["--idle-connections N", "idle connections per server (default 19000)"],
    ["--idle-procs N", "minimum loadgen processes to spread them over (default: as the fd limit requires)"],
    ["--idle-warm N", "connections opened and closed before the baseline RSS reading (default 200)"],
    ["--idle-settle S", "seconds to wait before each RSS reading (default 3)"],
    ["--idle-servers LIST", `subset of ${IDLE_SERVERS.map((t) => t.id).join(",")}`],
  ],

  async run(ctx: RunContext): Promise<ScenarioReport> {
    const f = ctx.flags;
    const count = f.number("idle-connections", 19_000);
    const minProcs = f.number("idle-procs", 1);
    const warm = f.number("idle-warm", 200);
    const settleMs = f.number("idle-settle", 3) * 1000;
    const wanted = new Set(f.list("idle-servers", IDLE_SERVERS.map((t) => t.id)));
    const openTimeoutMs = 180_000;

    const outcomes: IdleOutcome[] = [];
    for (const target of IDLE_SERVERS.filter((t) => wanted.has(t.id))) {
      const o: IdleOutcome = {
        target,
        rssBeforeKb: 0,
        rssMidKb: 0,
        rssAfterKb: 0,
        kbPerConn: Number.NaN,
        kbMarginal: Number.NaN,
        after: null,
        skipped: "",
        error: "",
      };
      outcomes.push(o);
      ctx.log(`idle: ${target.label}: ${fmtInt(count)} idle connections`);
      let server: Awaited<ReturnType<typeof startServer>> | null = null;
      try {
        server = await startServer(
          target.kind,
          ctx.serverEnv,
          `idle-${target.id}`,
          target.gatewayApi !== undefined ? { gatewayApi: target.gatewayApi } : {},
        );
        const path = target.path ?? server.path;
        if (warm > 0) {
          // Pay one-time costs (lazy init, JIT of the upgrade path) before the baseline.
          const w = await holdIdleConnections(server, warm, 1, ctx.root, ctx.loadCpus, openTimeoutMs, {
            path,
            indexBase: 10_000_000,
          });
          await w.release();
        }
        await sleep(settleMs);
        o.rssBeforeKb = treeRssKb(server.pid);
        // Open in two halves: before->after is the figure checked against the target;
        // the second half alone gives the marginal cost, free of one-time growth
        // (V8 young generation, buffers) that makes the before reading noisy.
        const firstHalf = Math.floor(count / 2);
        const holds: IdleHold[] = [];
        try {
          const t0 = performance.now();
          holds.push(
            await holdIdleConnections(server, firstHalf, minProcs, ctx.root, ctx.loadCpus, openTimeoutMs, {
              path,
              indexBase: 0,
            }),
          );
          await sleep(settleMs);
          o.rssMidKb = treeRssKb(server.pid);
          const midOpen = (await holds[0]!.status()).open;
          holds.push(
            await holdIdleConnections(server, count - firstHalf, minProcs, ctx.root, ctx.loadCpus, openTimeoutMs, {
              path,
              indexBase: firstHalf,
            }),
          );
          const openMs = performance.now() - t0 - settleMs;
          await sleep(settleMs);
          o.rssAfterKb = treeRssKb(server.pid);
          const status = await Promise.all(holds.map((h) => h.status()));
          o.after = mergeSamples(status, count, openMs);
          o.kbMarginal = o.after.open > midOpen ? (o.rssAfterKb - o.rssMidKb) / (o.after.open - midOpen) : Number.NaN;
        } finally {
          // Stop the server first so it closes the sockets: TIME_WAIT lands on the
          // server's port, not on the load generator's ephemeral ports.
          await server.stop();
          await Promise.all(holds.map((h) => h.release()));
        }
        const held = o.after.open;
        o.kbPerConn = held > 0 ? (o.rssAfterKb - o.rssBeforeKb) / held : Number.NaN;
        ctx.log(
          `   opened ${fmtInt(held)}/${fmtInt(count)} in ${fmtFixed(o.after.openMs / 1000, 1)} s (${o.after.processes} loadgen proc), RSS ${fmtFixed(o.rssBeforeKb / 1024, 1)} -> ${fmtFixed(o.rssMidKb / 1024, 1)} -> ${fmtFixed(o.rssAfterKb / 1024, 1)} MB = ${fmtFixed(o.kbPerConn, 2)} KB/conn (marginal ${fmtFixed(o.kbMarginal, 2)})`,
        );
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (err instanceof SkipError) o.skipped = message;
        else o.error = message;
        ctx.log(`   ${err instanceof SkipError ? "skipped" : "error"}: ${message}`);
      } finally {
        await server?.stop();
      }
    }

    const table: string[][] = [
      ["server", "open", "RSS before MB", "RSS half MB", "RSS after MB", "KB/conn", "marginal KB/conn", "open time s"],
    ];
    const checks: Check[] = [];
    const notes: string[] = [];
    for (const o of outcomes) {
      const label = o.target.label;
      if (o.after === null) {
        table.push([label, o.skipped ? "SKIP" : "ERROR", "-", "-", "-", "-", "-", "-"]);
        if (o.error) notes.push(`${label}: ${o.error.split("\n")[0]}`);
        if (o.skipped) notes.push(`${label}: skipped (${o.skipped})`);
      } else {
        table.push([
          label,
          `${fmtInt(o.after.open)}/${fmtInt(count)}`,
          fmtFixed(o.rssBeforeKb / 1024, 1),
          fmtFixed(o.rssMidKb / 1024, 1),
          fmtFixed(o.rssAfterKb / 1024, 1),
          fmtFixed(o.kbPerConn, 2),
          fmtFixed(o.kbMarginal, 2),
          fmtFixed(o.after.openMs / 1000, 1),
        ]);
        if (o.after.failed > 0 || o.after.closedAfterOpen > 0) {
          notes.push(
            `${label}: ${o.after.failed} connections failed to open, ${o.after.closedAfterOpen} closed while idle (${o.after.lastError})`,
          );
        }
      }
      if (o.target.maxKbPerConn === null) continue;
      const failedRun = o.error !== "";
      checks.push({
        name: `${label} idle RSS <= ${o.target.maxKbPerConn} KB/conn`,
        pass:
          o.after === null
            ? failedRun
              ? false
              : null
            : Number.isFinite(o.kbPerConn) && o.kbPerConn <= o.target.maxKbPerConn,
        detail: o.after === null ? o.skipped || "error" : `${fmtFixed(o.kbPerConn, 2)} KB/conn`,
      });
      checks.push({
        name: `${label} holds all ${fmtInt(count)} idle connections`,
        pass:
          o.after === null
            ? failedRun
              ? false
              : null
            : o.after.open === count && o.after.closedAfterOpen === 0,
        detail:
          o.after === null
            ? o.skipped || "error"
            : `${fmtInt(o.after.open)} open, ${o.after.failed} failed, ${o.after.closedAfterOpen} closed`,
      });
    }
    notes.push(
      `RSS = VmRSS summed over the server process tree; KB/conn = (after - before) / open, the checked figure; marginal = (after - half) / second half; before is read after ${warm} warm-up connections were opened and closed; no GC is forced`,
    );
    return {
      title: `Idle connections (${fmtInt(count)})`,
      table,
      checks,
      notes,
      data: { count, warm, settleMs, results: outcomes },
    };
  },
};
