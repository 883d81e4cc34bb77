// Scenario "ws": closed-loop WebSocket echo throughput and latency.
// Raw uWS, the gateway ($default MOCK route and LAMBDA echo route) and a bare `ws`
// server each take the same load: C connections x N messages in flight, 64-byte JSON.

import { driveThroughput, type ThroughputSample } from "../lib/drive.ts";
import { benchPayload } from "../lib/payloads.ts";
import { waitForQuietCpu } from "../lib/proc.ts";
import { type ServerKind, SkipError, startServer } from "../lib/servers.ts";
import { fmtFixed, fmtInt, fmtMs, fmtPct, fmtRatio } from "../lib/table.ts";
import type { Check, RunContext, Scenario, ScenarioReport } from "./types.ts";

/** Targets from the issue: MOCK >= 0.60x raw uWS, LAMBDA >= 0.40x, both >= 2x ws, p99 < 5 ms. */
export const THROUGHPUT_TARGETS = {
  mockVsRaw: 0.6,
  lambdaVsRaw: 0.4,
  vsWs: 2,
  p99Ms: 5,
  /** Above this loadgen CPU share the generator may be what limits raw uWS. */
  loadgenCpuMax: 0.9,
  /** Warn when other processes used more than this many cores while measuring. */
  noiseCores: 0.15,
} as const;

const MOCK_REPLY = '{"ok":true}';

interface ThroughputTarget {
  id: string;
  label: string;
  kind: ServerKind;
  /** `action` of the 64-byte JSON payload (routes the gateway). */
  action: string;
  /** Expected reply; "echo" means the payload itself. */
  reply: "echo" | string;
  /** Minimum ratio to raw uWS, when this is a gateway route. */
  minVsRaw: number | null;
}

export const THROUGHPUT_SERVERS: readonly ThroughputTarget[] = [
  { id: "raw-uws", label: "raw uWS echo", kind: "raw-uws", action: "echo", reply: "echo", minVsRaw: null },
  {
    id: "gateway-mock",
    label: "gateway MOCK $default",
    kind: "gateway",
    action: "mock",
    reply: MOCK_REPLY,
    minVsRaw: THROUGHPUT_TARGETS.mockVsRaw,
  },
  {
    id: "gateway-lambda",
    label: "gateway LAMBDA echo",
    kind: "gateway",
    action: "echo",
    reply: "echo",
    minVsRaw: THROUGHPUT_TARGETS.lambdaVsRaw,
  },
  { id: "ws", label: "bare ws echo", kind: "ws", action: "echo", reply: "echo", minVsRaw: null },
];

interface TargetOutcome {
  target: ThroughputTarget;
  samples: ThroughputSample[];
  /** The run reported (median msgs/s across --repeat rounds). */
  chosen: ThroughputSample | null;
  skipped: string;
  error: string;
}

/**
 * Which of the --repeat runs is reported: by default the median msgs/s among the quiet
 * runs (other processes below the noise threshold), or among all runs if none was quiet;
 * "median" ignores noise; "quietest" takes the run least disturbed by other processes.
 */
function pick(samples: ThroughputSample[], how: string): ThroughputSample | null {
  if (samples.length === 0) return null;
  if (how === "quietest") return [...samples].sort((a, b) => a.otherCpu - b.otherCpu)[0] ?? null;
  let pool = samples;
  if (how !== "median") {
    const quiet = samples.filter((s) => s.otherCpu <= THROUGHPUT_TARGETS.noiseCores);
    if (quiet.length > 0) pool = quiet;
  }
  const sorted = [...pool].sort((a, b) => a.rate - b.rate);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? null;
}

export const wsThroughputScenario: Scenario = {
  name: "ws",
  description: "WebSocket echo throughput/latency: raw uWS vs gateway MOCK and LAMBDA routes vs bare ws",
  flags: [
    ["--connections N", "connections per server (default 100)"],
    ["--inflight N", "messages in flight per connection (default 10)"],
    ["--bytes N", "payload size in bytes (default 64)"],
    ["--warmup S", "warmup seconds before measuring (default 3)"],
    ["--duration S", "measured seconds (default 10)"],
    ["--repeat N", "rounds over all servers (interleaved); one run per server is reported (default 1)"],
    [
      "--pick MODE",
      "with --repeat: quiet-median (default: median msgs/s of the runs without foreign CPU load), median, quietest",
    ],
    ["--quiet-wait S", "before each run, wait up to S seconds for other processes to go idle (default 20; 0 = off)"],
    ["--servers LIST", `subset of ${THROUGHPUT_SERVERS.map((t) => t.id).join(",")}`],
  ],

  async run(ctx: RunContext): Promise<ScenarioReport> {
    const f = ctx.flags;
    const connections = f.number("connections", 100);
    const inflight = f.number("inflight", 10);
    const bytes = f.number("bytes", 64);
    const warmupSec = f.number("warmup", 3);
    const durationSec = f.number("duration", 10);
    const repeat = Math.max(1, f.number("repeat", 1));
    const quietWaitMs = f.number("quiet-wait", 20) * 1000;
    const wanted = new Set(f.list("servers", THROUGHPUT_SERVERS.map((t) => t.id)));
    const targets = THROUGHPUT_SERVERS.filter((t) => wanted.has(t.id));

    const outcomes = new Map<string, TargetOutcome>(
      targets.map((t) => [t.id, { target: t, samples: [], chosen: null, skipped: "", error: "" }]),
    );
    for (let round = 1; round <= repeat; round++) {
      for (const target of targets) {
        const outcome = outcomes.get(target.id)!;
        if (outcome.skipped !== "") continue;
        const payload = benchPayload(target.action, bytes);
        const expectReply = target.reply === "echo" ? payload : target.reply;
        ctx.log(`ws: ${target.label} (round ${round}/${repeat}): ${connections} conns x ${inflight} in flight`);
        let server: Awaited<ReturnType<typeof startServer>> | null = null;
        try {
          server = await startServer(target.kind, ctx.serverEnv, `${target.id}-${round}`);
          if (quietWaitMs > 0) {
            const busy = await waitForQuietCpu(quietWaitMs, THROUGHPUT_TARGETS.noiseCores);
            if (busy > THROUGHPUT_TARGETS.noiseCores) {
              ctx.log(`   machine still busy (${fmtFixed(busy, 2)} cores used by other processes), measuring anyway`);
            }
          }
          const sample = await driveThroughput(
            server,
            { connections, inflight, payload, expectReply, warmupSec, durationSec },
            ctx.root,
            ctx.loadCpus,
          );
          outcome.samples.push(sample);
          ctx.log(
            `   ${fmtInt(sample.rate)} msgs/s  p50 ${fmtMs(sample.p50us)} ms  p99 ${fmtMs(sample.p99us)} ms  server cpu ${fmtPct(sample.serverCpu)}  loadgen cpu ${fmtPct(sample.loadgenCpu)}  other cpu ${fmtFixed(sample.otherCpu, 2)} cores`,
          );
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          if (err instanceof SkipError) outcome.skipped = message;
          else outcome.error = message;
          ctx.log(`   ${err instanceof SkipError ? "skipped" : "error"}: ${message}`);
        } finally {
          await server?.stop();
        }
      }
    }
    const how = f.string("pick", "quiet-median");
    for (const o of outcomes.values()) o.chosen = pick(o.samples, how);

    const raw = outcomes.get("raw-uws")?.chosen ?? null;
    const ws = outcomes.get("ws")?.chosen ?? null;
    const ratio = (s: ThroughputSample | null, base: ThroughputSample | null) =>
      s === null || base === null || base.rate === 0 ? null : s.rate / base.rate;

    const table: string[][] = [
      [
        "server",
        "msgs/s",
        "p50 ms",
        "p99 ms",
        "vs raw uWS",
        "vs ws",
        "server cpu",
        "loadgen cpu",
        "other cpu",
        "replies",
      ],
    ];
    const checks: Check[] = [];
    const notes: string[] = [];
    for (const o of outcomes.values()) {
      const s = o.chosen;
      if (s === null) {
        table.push([o.target.label, o.skipped ? "SKIP" : "ERROR", "-", "-", "-", "-", "-", "-", "-", "-"]);
        if (o.error) notes.push(`${o.target.label}: ${o.error.split("\n")[0]}`);
        if (o.skipped) notes.push(`${o.target.label}: skipped (${o.skipped})`);
      } else {
        table.push([
          o.target.label,
          fmtInt(s.rate),
          fmtMs(s.p50us),
          fmtMs(s.p99us),
          fmtRatio(ratio(s, raw)),
          fmtRatio(ratio(s, ws)),
          fmtPct(s.serverCpu),
          fmtPct(s.loadgenCpu),
          fmtFixed(s.otherCpu, 2),
          s.badReplies === 0 && s.closed === 0 ? "ok" : `${s.badReplies} bad/${s.closed} closed`,
        ]);
      }
      if (o.target.minVsRaw === null) continue;
      const label = o.target.label;
      const skipReason = o.skipped ? `skipped: ${o.skipped}` : o.error ? "error" : "";
      const rVsRaw = ratio(s, raw);
      const rVsWs = ratio(s, ws);
      checks.push({
        name: `${label} >= ${o.target.minVsRaw.toFixed(2)}x raw uWS msgs/s`,
        pass: rVsRaw === null ? (skipReason === "error" ? false : null) : rVsRaw >= o.target.minVsRaw,
        detail: rVsRaw === null ? skipReason || "no raw uWS figure" : fmtRatio(rVsRaw),
      });
      checks.push({
        name: `${label} >= ${THROUGHPUT_TARGETS.vsWs}x bare ws msgs/s`,
        pass: rVsWs === null ? (skipReason === "error" ? false : null) : rVsWs >= THROUGHPUT_TARGETS.vsWs,
        detail: rVsWs === null ? skipReason || "no ws figure" : fmtRatio(rVsWs),
      });
      checks.push({
        name: `${label} p99 < ${THROUGHPUT_TARGETS.p99Ms} ms`,
        pass: s === null ? (skipReason === "error" ? false : null) : s.p99us < THROUGHPUT_TARGETS.p99Ms * 1000,
        detail: s === null ? skipReason : `${fmtMs(s.p99us)} ms`,
      });
      checks.push({
        name: `${label} replies are correct`,
        pass: s === null ? (skipReason === "error" ? false : null) : s.badReplies === 0 && s.closed === 0,
        detail:
          s === null
            ? skipReason
            : s.badReplies === 0 && s.closed === 0
              ? `${fmtFixed(s.replyBytesAvg, 1)} B avg reply`
              : `${s.badReplies} conns answered ${JSON.stringify(s.sample)}, ${s.closed} closed`,
      });
    }
    if (raw !== null) {
      checks.push({
        name: "load generator is not the bottleneck (raw uWS run)",
        pass: raw.loadgenCpu < THROUGHPUT_TARGETS.loadgenCpuMax,
        detail: `loadgen ${fmtPct(raw.loadgenCpu)} of a core, server ${fmtPct(raw.serverCpu)}`,
      });
    }
    const noisy = [...outcomes.values()].flatMap((o) =>
      o.chosen !== null && o.chosen.otherCpu > THROUGHPUT_TARGETS.noiseCores ? [o.chosen] : [],
    );
    if (noisy.length > 0) {
      const worst = Math.max(...noisy.map((n) => n.otherCpu));
      notes.push(
        `other processes used up to ${fmtFixed(worst, 2)} cores during ${noisy.length} reported run(s): those figures are noisy, re-run on a quiet machine or with --repeat 3`,
      );
    }
    notes.push(
      `load: ${connections} connections x ${inflight} in flight, ${bytes}-byte JSON text frames, ${warmupSec}s warmup + ${durationSec}s measured` +
        (repeat > 1 ? `, ${how} of ${repeat} rounds` : ""),
    );

    return {
      title: "WebSocket throughput (closed loop)",
      table,
      checks,
      notes,
      data: {
        connections,
        inflight,
        bytes,
        warmupSec,
        durationSec,
        repeat,
        results: [...outcomes.values()].map((o) => ({
          id: o.target.id,
          label: o.target.label,
          chosen: o.chosen,
          samples: o.samples,
          skipped: o.skipped || undefined,
          error: o.error || undefined,
        })),
      },
    };
  },
};
