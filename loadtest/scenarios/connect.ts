// Scenario "connect": connect storm. WebSocket upgrades as fast as the server accepts them
// (loadgen --mode connect: connect, upgrade, wait for the 101 status line, close), with a window
// of --connect-concurrency attempts in flight, against:
//   raw uWS (ceiling), the gateway without authorizer (loadtest/api.yaml), the gateway with a
//   REQUEST authorizer (loadtest/api-auth.yaml) and with a JWT authorizer (loadtest/api-jwt.yaml,
//   a local JWKS), both with a warm cache (a small set of tokens, all seen during the warmup),
//   plus the REQUEST authorizer with a cold cache (a new token per connection) for reference.

import type { ConnectResult } from "../lib/connect-storm.ts";
import { materializeApi, mapAt } from "../lib/api-files.ts";
import { Histogram } from "../lib/histogram.ts";
import { startLocalIssuer, JWT_BENCH_AUDIENCE, type LocalIssuer } from "../lib/jwks.ts";
import {
  ChildLines,
  fdSoftLimit,
  jsonLineOfType,
  pinnedCommandLine,
  spawnPinned,
  stopProcessTree,
  treeCpuSeconds,
  tsNodeArgs,
} from "../lib/proc.ts";
import { machineBusySeconds, noiseNote, pickRun, quietWait, reproduceCommand } from "../lib/runs.ts";
import { type RunningServer, type ServerKind, SkipError, startServer } from "../lib/servers.ts";
import { fmtFixed, fmtInt, fmtMs, fmtPct, fmtRatio } from "../lib/table.ts";
import type { Check, RunContext, Scenario, ScenarioReport } from "./types.ts";

export const CONNECT_TARGETS = {
  /** Accepted connections/s with the authorizer cache warm (REQUEST and JWT). */
  minRateWarm: 5000,
  /** ... and at least this share of the no-authorizer figure. */
  minVsNoAuth: 0.5,
  /** Above this loadgen CPU share the generator may be what limits a row. */
  loadgenCpuMax: 0.9,
} as const;

interface ConnectTarget {
  id: string;
  label: string;
  kind: ServerKind;
  /** Relative API file, or "jwt" for the run-time copy of api-jwt.yaml. */
  api?: string | "jwt";
  /** Path template: `{t}` = one of the tokens, `{i}` = attempt index. */
  path: string;
  tokens: "none" | "request-warm" | "jwt-warm";
  /** Checked against the targets (>= 5,000/s and >= 0.5x no-auth). */
  checked: boolean;
}

export const CONNECT_SERVERS: readonly ConnectTarget[] = [
  { id: "raw-uws", label: "raw uWS", kind: "raw-uws", path: "/bench", tokens: "none", checked: false },
  { id: "gateway", label: "gateway, no authorizer", kind: "gateway", path: "/bench", tokens: "none", checked: false },
  {
    id: "gateway-request",
    label: "gateway, REQUEST authorizer (warm)",
    kind: "gateway",
    api: "loadtest/api-auth.yaml",
    path: "/bench?token={t}",
    tokens: "request-warm",
    checked: true,
  },
  {
    id: "gateway-jwt",
    label: "gateway, JWT authorizer (warm)",
    kind: "gateway",
    api: "jwt",
    path: "/bench?access_token={t}",
    tokens: "jwt-warm",
    checked: true,
  },
  {
    id: "gateway-request-cold",
    label: "gateway, REQUEST authorizer (cold)",
    kind: "gateway",
    api: "loadtest/api-auth.yaml",
    path: "/bench?token=cold-{i}",
    tokens: "none",
    checked: false,
  },
];

interface ConnectSample {
  attempted: number;
  accepted: number;
  rejected: number;
  errors: number;
  timeouts: number;
  rate: number;
  p50us: number;
  p99us: number;
  serverCpu: number;
  loadgenCpu: number;
  otherCpu: number;
  processes: number;
  lastError: string;
  statuses: Record<string, number>;
}

interface Outcome {
  target: ConnectTarget;
  samples: ConnectSample[];
  chosen: ConnectSample | null;
  skipped: string;
  error: string;
}

interface StormSettings {
  count: number;
  warmup: number;
  concurrency: number;
  procs: number;
  close: string;
}

/** Runs the storm with `procs` pinned loadgen children sharing the attempts; merges their results. */
async function driveConnect(
  ctx: RunContext,
  server: RunningServer,
  path: string,
  tokens: readonly string[],
  s: StormSettings,
): Promise<ConnectSample> {
  const children: ChildLines[] = [];
  let base = 0;
  for (let i = 0; i < s.procs; i++) {
    const count = Math.floor(s.count / s.procs) + (i < s.count % s.procs ? 1 : 0);
    const warmup = Math.floor(s.warmup / s.procs) + (i < s.warmup % s.procs ? 1 : 0);
    const args = [
      "--mode",
      "connect",
      "--port",
      String(server.port),
      "--path",
      path,
      "--index-base",
      String(base),
      "--count",
      String(count),
      "--warmup-count",
      String(warmup),
      "--concurrency",
      String(Math.max(1, Math.round(s.concurrency / s.procs))),
      "--close",
      s.close,
    ];
    if (tokens.length > 0) args.push("--tokens", tokens.join(","));
    base += count + warmup;
    const argv = tsNodeArgs("loadtest/loadgen.ts", args);
    if (i === 0) {
      const shown = tokens.length > 0 ? argv.map((a) => (a === tokens.join(",") ? "<tokens>" : a)) : argv;
      ctx.log(`   loadgen: ${pinnedCommandLine("node", shown, ctx.loadCpus)}${s.procs > 1 ? ` (x${s.procs})` : ""}`);
    }
    children.push(new ChildLines(spawnPinned(process.execPath, argv, { cpus: ctx.loadCpus, cwd: ctx.root }), "  [connect] "));
  }
  const timeout = 30_000 + ((s.count + s.warmup) / 500) * 1000; // >= 500 upgrades/s or give up
  try {
    await Promise.all(children.map((c) => c.waitForLine(jsonLineOfType("measure-start"), timeout, "connect measure-start")));
    const server0 = treeCpuSeconds(server.pid);
    const busy0 = machineBusySeconds();
    const t0 = performance.now();
    await Promise.all(children.map((c) => c.waitForLine(jsonLineOfType("measure-end"), timeout, "connect measure-end")));
    const wall = (performance.now() - t0) / 1000;
    const server1 = treeCpuSeconds(server.pid);
    const busy1 = machineBusySeconds();
    const results = await Promise.all(
      children.map(async (c) => JSON.parse(await c.waitForLine(jsonLineOfType("connect-result"), 30_000, "connect result")) as ConnectResult),
    );
    const hist = new Histogram();
    for (const r of results) hist.merge(Histogram.fromJSON(r.histogram));
    const startedAt = Math.min(...results.map((r) => r.startedAt));
    const endedAt = Math.max(...results.map((r) => r.endedAt));
    const seconds = Math.max(1e-3, (endedAt - startedAt) / 1000);
    const accepted = results.reduce((sum, r) => sum + r.accepted, 0);
    const loadgenCpuSec = results.reduce((sum, r) => sum + r.loadgenCpu * r.seconds, 0);
    const serverCpu = (server1 - server0) / wall;
    const statuses: Record<string, number> = {};
    for (const r of results) for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
    return {
      attempted: results.reduce((sum, r) => sum + r.attempted, 0),
      accepted,
      rejected: results.reduce((sum, r) => sum + r.rejected, 0),
      errors: results.reduce((sum, r) => sum + r.errors, 0),
      timeouts: results.reduce((sum, r) => sum + r.timeouts, 0),
      rate: accepted / seconds,
      p50us: hist.percentile(50),
      p99us: hist.percentile(99),
      serverCpu,
      loadgenCpu: loadgenCpuSec / seconds,
      otherCpu: Math.max(0, (busy1 - busy0) / wall - serverCpu - loadgenCpuSec / wall),
      processes: s.procs,
      lastError: results.map((r) => r.lastError).find((e) => e !== "") ?? "",
      statuses,
    };
  } finally {
    await Promise.all(children.map((c) => stopProcessTree(c, 2000)));
  }
}

export const connectScenario: Scenario = {
  name: "connect",
  description: "connect storm: accepted WebSocket upgrades/s without authorizer, with REQUEST and JWT authorizers (warm cache)",
  flags: [
    ["--connect-count N", "measured upgrades per server (default 20000)"],
    ["--connect-warmup N", "unmeasured upgrades first: JIT and authorizer cache warm-up (default 2000)"],
    ["--connect-concurrency N", "upgrades in flight (default 200)"],
    ["--connect-procs N", "loadgen processes sharing the attempts, all on --loadgen-cpus (default 1)"],
    ["--connect-close fin|rst", "how the client closes after the 101 (default fin)"],
    ["--connect-tokens N", "distinct tokens in the warm-cache rows (default 16)"],
    ["--connect-servers LIST", `subset of ${CONNECT_SERVERS.map((t) => t.id).join(",")}`],
    ["--repeat N / --pick MODE / --quiet-wait S", "as for the ws scenario"],
  ],

  async run(ctx: RunContext): Promise<ScenarioReport> {
    const f = ctx.flags;
    const settings: StormSettings = {
      count: f.number("connect-count", 20_000),
      warmup: f.number("connect-warmup", 2000),
      concurrency: f.number("connect-concurrency", 200),
      procs: Math.max(1, f.number("connect-procs", 1)),
      close: f.string("connect-close", "fin"),
    };
    // Sockets in flight per process stay far below the fd limit; only absurd settings need more.
    const perProc = Math.ceil(settings.concurrency / settings.procs);
    if (perProc > fdSoftLimit() - 256) settings.procs = Math.ceil(settings.concurrency / (fdSoftLimit() - 256));
    const tokenCount = Math.max(1, f.number("connect-tokens", 16));
    const repeat = Math.max(1, f.number("repeat", 1));
    const how = f.string("pick", "quiet-median");
    const wanted = new Set(f.list("connect-servers", CONNECT_SERVERS.map((t) => t.id)));
    const targets = CONNECT_SERVERS.filter((t) => wanted.has(t.id));
    const outcomes = new Map<string, Outcome>(targets.map((t) => [t.id, { target: t, samples: [], chosen: null, skipped: "", error: "" }]));
    const notes: string[] = [];

    let issuer: LocalIssuer | null = null;
    let jwtApi = "";
    let jwtTokens: string[] = [];
    const requestTokens = Array.from({ length: tokenCount }, (_, i) => `warm-${i}`);
    try {
      if (targets.some((t) => t.api === "jwt")) {
        issuer = await startLocalIssuer();
        const iss = issuer.issuer;
        const jwksUri = issuer.jwksUri;
        jwtApi = materializeApi(ctx.root, "loadtest/api-jwt.yaml", ctx.serverEnv.logDir, "connect", (doc) => {
          const a = mapAt(doc, ["authorizers", "benchJwt"]);
          a.issuer = iss;
          a.jwksUri = jwksUri;
          a.audience = [JWT_BENCH_AUDIENCE];
        });
        jwtTokens = await Promise.all(Array.from({ length: tokenCount }, (_, i) => issuer!.sign(`bench-user-${i}`)));
      }
      for (let round = 1; round <= repeat; round++) {
        for (const target of targets) {
          const o = outcomes.get(target.id)!;
          if (o.skipped !== "") continue;
          ctx.log(
            `connect: ${target.label} (round ${round}/${repeat}): ${fmtInt(settings.warmup)} + ${fmtInt(settings.count)} upgrades, ${settings.concurrency} in flight`,
          );
          let server: RunningServer | null = null;
          try {
            const api = target.api === "jwt" ? jwtApi : target.api;
            server = await startServer(target.kind, ctx.serverEnv, `connect-${target.id}-${round}`, api !== undefined ? { gatewayApi: api } : {});
            if (round === 1) ctx.log(`   server: ${server.command}`);
            await quietWait(ctx);
            const tokens = target.tokens === "request-warm" ? requestTokens : target.tokens === "jwt-warm" ? jwtTokens : [];
            const sample = await driveConnect(ctx, server, target.path, tokens, settings);
            o.samples.push(sample);
            ctx.log(
              `   ${fmtInt(sample.rate)} accepted/s (${fmtInt(sample.accepted)}/${fmtInt(sample.attempted)})  p50 ${fmtMs(sample.p50us)} ms  p99 ${fmtMs(sample.p99us)} ms  server cpu ${fmtPct(sample.serverCpu)}  loadgen cpu ${fmtPct(sample.loadgenCpu)}  other cpu ${fmtFixed(sample.otherCpu, 2)} cores`,
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
      }
    } finally {
      if (issuer !== null) {
        notes.push(`JWT: RS256 tokens from a local JWKS (${issuer.jwksUri}), fetched ${issuer.jwksRequests()} time(s) by the gateway`);
        await issuer.stop();
      }
    }
    for (const o of outcomes.values()) o.chosen = pickRun(o.samples, how, (s) => s.rate);

    const base = outcomes.get("gateway")?.chosen ?? null;
    const raw = outcomes.get("raw-uws")?.chosen ?? null;
    const ratio = (s: ConnectSample | null, b: ConnectSample | null) => (s === null || b === null || b.rate === 0 ? null : s.rate / b.rate);
    /** Server CPU per accepted upgrade, µs: what an upgrade costs the server, whoever is the bottleneck. */
    const cpuPerUpgrade = (s: ConnectSample) => (s.rate > 0 ? (s.serverCpu / s.rate) * 1e6 : Number.NaN);
    const saturated = (s: ConnectSample | null) => s !== null && s.loadgenCpu >= CONNECT_TARGETS.loadgenCpuMax;
    /**
     * vs no-authorizer. When the generator is saturated in either run, that rate is its ceiling
     * and the rate ratio says nothing: the capacity ratio is then taken from server CPU per upgrade.
     */
    const vsBase = (s: ConnectSample | null): { value: number; byCpu: boolean } | null => {
      if (s === null || base === null) return null;
      if (saturated(s) || saturated(base)) {
        const mine = cpuPerUpgrade(s);
        const theirs = cpuPerUpgrade(base);
        return Number.isFinite(mine) && Number.isFinite(theirs) && mine > 0 ? { value: theirs / mine, byCpu: true } : null;
      }
      const r = ratio(s, base);
      return r === null ? null : { value: r, byCpu: false };
    };
    const table: string[][] = [
      ["server", "accepted/s", "vs no-auth", "vs raw uWS", "p50 ms", "p99 ms", "accepted", "failed", "server cpu", "server µs/upgrade", "loadgen cpu", "other cpu"],
    ];
    const checks: Check[] = [];
    for (const o of outcomes.values()) {
      const s = o.chosen;
      if (s === null) {
        table.push([o.target.label, o.skipped ? "SKIP" : "ERROR", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"]);
        if (o.error) notes.push(`${o.target.label}: ${o.error.split("\n")[0]}`);
        if (o.skipped) notes.push(`${o.target.label}: skipped (${o.skipped})`);
      } else {
        const failed = s.rejected + s.errors + s.timeouts;
        table.push([
          o.target.label,
          fmtInt(s.rate),
          (() => {
            const v = vsBase(s);
            return v === null ? "-" : `${fmtRatio(v.value)}${v.byCpu ? " (cpu)" : ""}`;
          })(),
          fmtRatio(ratio(s, raw)),
          fmtMs(s.p50us),
          fmtMs(s.p99us),
          `${fmtInt(s.accepted)}/${fmtInt(s.attempted)}`,
          String(failed),
          fmtPct(s.serverCpu),
          fmtFixed(cpuPerUpgrade(s), 1),
          fmtPct(s.loadgenCpu),
          fmtFixed(s.otherCpu, 2),
        ]);
        if (failed > 0) {
          const st = Object.entries(s.statuses)
            .map(([k, v]) => `${k}: ${v}`)
            .join(", ");
          notes.push(`${o.target.label}: ${failed} attempts not accepted (${st}); last: ${s.lastError}`);
        }
      }
      if (o.target.kind === "gateway") {
        checks.push({
          name: `${o.target.label}: every upgrade accepted`,
          pass: s === null ? (o.error ? false : null) : s.accepted === s.attempted,
          detail: s === null ? o.skipped || "error" : `${fmtInt(s.accepted)}/${fmtInt(s.attempted)}`,
        });
      }
      if (!o.target.checked) continue;
      const v = vsBase(s);
      checks.push({
        name: `${o.target.label} >= ${fmtInt(CONNECT_TARGETS.minRateWarm)} accepted/s`,
        pass: s === null ? (o.error ? false : null) : s.rate >= CONNECT_TARGETS.minRateWarm,
        detail: s === null ? o.skipped || "error" : `${fmtInt(s.rate)}/s`,
      });
      checks.push({
        name: `${o.target.label} >= ${CONNECT_TARGETS.minVsNoAuth.toFixed(2)}x no-authorizer rate`,
        pass: v === null ? (o.error ? false : null) : v.value >= CONNECT_TARGETS.minVsNoAuth,
        detail: v === null ? o.skipped || "no no-authorizer figure" : v.byCpu ? `${fmtRatio(v.value)} by server CPU per upgrade (generator saturated)` : fmtRatio(v.value),
      });
    }
    const gatewayRows = [...outcomes.values()].filter((o) => o.target.kind === "gateway" && o.chosen !== null);
    if (gatewayRows.length > 0) {
      const busiest = gatewayRows.reduce((a, b) => (b.chosen!.loadgenCpu > a.chosen!.loadgenCpu ? b : a));
      const bound = gatewayRows.filter((o) => saturated(o.chosen));
      // A saturated generator makes a rate its own ceiling: the rates of those rows are lower bounds
      // and their ratios come from server CPU per upgrade (the check says so instead of failing).
      checks.push({
        name: "load generator is not the bottleneck (gateway rows)",
        pass: bound.length === 0 ? true : null,
        detail:
          bound.length === 0
            ? `max loadgen ${fmtPct(busiest.chosen!.loadgenCpu)} of a core (${busiest.target.label})`
            : `saturated (>= ${fmtPct(CONNECT_TARGETS.loadgenCpuMax)}) in ${bound.map((o) => o.target.label).join(", ")}: those rates are lower bounds, their ratios are by server CPU per upgrade`,
      });
    }
    if (raw !== null) {
      notes.push(
        `raw uWS run: the load generator used ${fmtPct(raw.loadgenCpu)} of its core at ${fmtInt(raw.rate)} upgrades/s` +
          (raw.loadgenCpu >= CONNECT_TARGETS.loadgenCpuMax
            ? " (so that row is the generator's ceiling, not uWS's: over loopback the kernel's TCP handshake work lands on the connecting process's CPU)"
            : ""),
      );
    }
    const noise = noiseNote([...outcomes.values()].map((o) => o.chosen), "run(s)");
    if (noise !== null) notes.push(noise);
    notes.push(
      `load: ${fmtInt(settings.warmup)} warmup + ${fmtInt(settings.count)} measured upgrades per server, ${settings.concurrency} in flight, ${settings.procs} loadgen process(es), close after the 101 status line (${settings.close}); warm rows cycle through ${tokenCount} tokens, all seen during the warmup` +
        (repeat > 1 ? `; ${how} of ${repeat} rounds` : ""),
    );
    notes.push(
      `reproduce: ${reproduceCommand(ctx, "connect", [
        ["connect-count", settings.count],
        ["connect-warmup", settings.warmup],
        ["connect-concurrency", settings.concurrency],
        ["connect-procs", settings.procs],
        ["connect-close", settings.close],
        ["connect-tokens", tokenCount],
        ["connect-servers", targets.map((t) => t.id).join(",")],
        ["repeat", repeat],
      ])}`,
    );
    return {
      title: "Connect storm (accepted WebSocket upgrades/s)",
      table,
      checks,
      notes,
      data: {
        settings,
        tokenCount,
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
