// Scenario "http": HTTP requests/s and latency with wrk (-t1 -c100 --latency, pinned to the
// loadgen CPU), side by side in one run:
//   raw uWS HTTP (ceiling), the gateway's MOCK, LAMBDA (payload 2.0) and HTTP_PROXY routes
//   (loadtest/api-http.yaml), Fastify answering the same JSON, Fastify + @fastify/http-proxy.
// Both proxies forward to the same backend: raw uWS HTTP (servers/raw-uws-http.ts) pinned to the
// loadgen CPU, so the proxy under test keeps its core to itself (see README "http").

import { request } from "node:http";
import { mapAt, materializeApi } from "../lib/api-files.ts";
import { treeCpuSeconds, tsNodeArgs } from "../lib/proc.ts";
import { machineBusySeconds, noiseNote, pickRun, quietWait, reproduceCommand } from "../lib/runs.ts";
import { type RunningServer, SkipError, startCustomServer, startServer } from "../lib/servers.ts";
import { fmtFixed, fmtInt, fmtMs, fmtPct, fmtRatio } from "../lib/table.ts";
import { runWrk, type WrkOptions, type WrkResult, wrkBinary, wrkCommandLine } from "../lib/wrk.ts";
import type { Check, RunContext, Scenario, ScenarioReport } from "./types.ts";

export const HTTP_TARGETS = {
  mockVsRaw: 0.5,
  mockVsFastify: 1.3,
  lambdaVsFastify: 1.0,
  proxyVsFastifyProxy: 1.5,
  /** Above this CPU share wrk itself may be what limits the raw uWS figure. */
  wrkCpuMax: 0.9,
} as const;

const EXPECTED_BODY = '{"ok":true}';

type HttpServerKind = "raw-uws-http" | "gateway" | "fastify-mock" | "fastify-proxy";

interface HttpTarget {
  id: string;
  label: string;
  kind: HttpServerKind;
  path: string;
  /** Uses the proxy backend. */
  proxied: boolean;
}

export const HTTP_SERVERS: readonly HttpTarget[] = [
  { id: "raw-uws", label: "raw uWS HTTP", kind: "raw-uws-http", path: "/bench/mock", proxied: false },
  { id: "gateway-mock", label: "gateway MOCK", kind: "gateway", path: "/bench/mock", proxied: false },
  { id: "gateway-lambda", label: "gateway LAMBDA (2.0)", kind: "gateway", path: "/bench/lambda", proxied: false },
  { id: "gateway-proxy", label: "gateway HTTP_PROXY", kind: "gateway", path: "/bench/proxy", proxied: true },
  { id: "fastify", label: "Fastify mock", kind: "fastify-mock", path: "/bench/mock", proxied: false },
  { id: "fastify-proxy", label: "Fastify @fastify/http-proxy", kind: "fastify-proxy", path: "/bench/proxy", proxied: true },
];

interface HttpSample extends WrkResult {
  serverCpu: number;
  backendCpu: number;
  otherCpu: number;
  bytesPerResponse: number;
  command: string;
}

interface Outcome {
  target: HttpTarget;
  samples: HttpSample[];
  chosen: HttpSample | null;
  skipped: string;
  error: string;
}

/** One GET; resolves status and body (for the correctness check before each run). */
function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method: "GET", timeout: 5000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on("error", reject);
    req.end();
  });
}

async function startHttpTarget(
  ctx: RunContext,
  target: HttpTarget,
  tag: string,
  gatewayApi: string,
  backendUrl: string,
): Promise<RunningServer> {
  const env = ctx.serverEnv;
  switch (target.kind) {
    case "gateway":
      return startServer("gateway", env, tag, { gatewayApi });
    case "raw-uws-http":
      return startCustomServer(
        {
          name: "raw-uws-http",
          cmd: process.execPath,
          args: tsNodeArgs("loadtest/servers/raw-uws-http.ts", ["--port", "{port}"]),
          cpus: env.cpus,
          ready: "tcp",
        },
        env,
      );
    case "fastify-mock":
      return startCustomServer(
        {
          name: "fastify-mock",
          cmd: process.execPath,
          args: tsNodeArgs("loadtest/servers/fastify-mock.ts", ["--port", "{port}"]),
          cpus: env.cpus,
          ready: "http:/healthz",
        },
        env,
      );
    case "fastify-proxy":
      return startCustomServer(
        {
          name: "fastify-proxy",
          cmd: process.execPath,
          args: tsNodeArgs("loadtest/servers/fastify-proxy.ts", ["--port", "{port}", "--upstream", backendUrl]),
          cpus: env.cpus,
          ready: "http:/healthz",
        },
        env,
      );
  }
}

export const httpScenario: Scenario = {
  name: "http",
  description: "HTTP req/s with wrk: raw uWS vs gateway MOCK / LAMBDA 2.0 / HTTP_PROXY vs Fastify (mock and proxy)",
  flags: [
    ["--http-connections N", "wrk connections (default 100)"],
    ["--http-threads N", "wrk threads (default 1)"],
    ["--http-duration S", "measured wrk run, seconds (default: --duration, 10)"],
    ["--http-warmup S", "unmeasured wrk run first, seconds (default: --warmup, 3)"],
    ["--http-servers LIST", `subset of ${HTTP_SERVERS.map((t) => t.id).join(",")}`],
    ["--backend-cpus LIST", "taskset CPU list of the proxy backend (default: the loadgen CPUs)"],
    ["--wrk PATH", "wrk binary (default /usr/bin/wrk)"],
    ["--repeat N / --pick MODE / --quiet-wait S", "as for the ws scenario"],
  ],

  async run(ctx: RunContext): Promise<ScenarioReport> {
    const f = ctx.flags;
    const bin = wrkBinary(f.optionalString("wrk"));
    const connections = f.number("http-connections", 100);
    const threads = f.number("http-threads", 1);
    const durationSec = f.number("http-duration", f.number("duration", 10));
    const warmupSec = f.number("http-warmup", f.number("warmup", 3));
    const backendCpus = f.string("backend-cpus", ctx.loadCpus);
    const repeat = Math.max(1, f.number("repeat", 1));
    const how = f.string("pick", "quiet-median");
    const wanted = new Set(f.list("http-servers", HTTP_SERVERS.map((t) => t.id)));
    const targets = HTTP_SERVERS.filter((t) => wanted.has(t.id));
    const outcomes = new Map<string, Outcome>(targets.map((t) => [t.id, { target: t, samples: [], chosen: null, skipped: "", error: "" }]));
    const notes: string[] = [];

    if (bin === null) {
      for (const o of outcomes.values()) o.skipped = "wrk not found (apt-get install wrk)";
    }
    let backend: RunningServer | null = null;
    try {
      if (bin !== null && targets.some((t) => t.proxied)) {
        backend = await startCustomServer(
          {
            name: "proxy-backend",
            cmd: process.execPath,
            args: tsNodeArgs("loadtest/servers/raw-uws-http.ts", ["--port", "{port}"]),
            cpus: backendCpus,
            ready: "tcp",
          },
          ctx.serverEnv,
        );
        ctx.log(`http: proxy backend: ${backend.command}`);
      }
      const backendHost = backend !== null ? `127.0.0.1:${backend.port}` : "127.0.0.1:9180";
      const gatewayApi = materializeApi(ctx.root, "loadtest/api-http.yaml", ctx.serverEnv.logDir, "http", (doc) => {
        mapAt(doc, ["stages", "bench", "variables"]).backend = backendHost;
      });
      for (let round = 1; round <= repeat; round++) {
        for (const target of targets) {
          const o = outcomes.get(target.id)!;
          if (o.skipped !== "" || bin === null) continue;
          ctx.log(`http: ${target.label} (round ${round}/${repeat})`);
          let server: RunningServer | null = null;
          try {
            server = await startHttpTarget(ctx, target, `http-${target.id}-${round}`, gatewayApi, `http://${backendHost}`);
            if (round === 1) ctx.log(`   server: ${server.command}`);
            const probe = await httpGet(server.port, target.path);
            if (probe.status !== 200 || probe.body !== EXPECTED_BODY) {
              throw new Error(`GET ${target.path} answered ${probe.status} ${JSON.stringify(probe.body.slice(0, 200))}, expected 200 ${EXPECTED_BODY}`);
            }
            const wrkOpts: WrkOptions = {
              bin,
              url: `http://127.0.0.1:${server.port}${target.path}`,
              threads,
              connections,
              durationSec,
              cpus: ctx.loadCpus,
              cwd: ctx.root,
              latency: true,
            };
            await quietWait(ctx);
            if (warmupSec > 0) await runWrk({ ...wrkOpts, durationSec: warmupSec, latency: false });
            const command = wrkCommandLine(wrkOpts);
            if (round === 1) ctx.log(`   wrk: ${command}`);
            const srv = server;
            let server0 = 0;
            let backend0 = 0;
            let busy0 = 0;
            let t0 = 0;
            const result = await runWrk(wrkOpts, () => {
              server0 = treeCpuSeconds(srv.pid);
              backend0 = backend !== null ? treeCpuSeconds(backend.pid) : 0;
              busy0 = machineBusySeconds();
              t0 = performance.now();
            });
            const wall = (performance.now() - t0) / 1000;
            const serverCpu = (treeCpuSeconds(srv.pid) - server0) / wall;
            const backendCpu = target.proxied && backend !== null ? (treeCpuSeconds(backend.pid) - backend0) / wall : 0;
            const busy = (machineBusySeconds() - busy0) / wall;
            const idleBackend = !target.proxied && backend !== null ? (treeCpuSeconds(backend.pid) - backend0) / wall : 0;
            const sample: HttpSample = {
              ...result,
              serverCpu,
              backendCpu,
              otherCpu: Math.max(0, busy - serverCpu - result.wrkCpu - backendCpu - idleBackend),
              bytesPerResponse: result.requests > 0 ? result.bytesRead / result.requests : 0,
              command,
            };
            o.samples.push(sample);
            ctx.log(
              `   ${fmtInt(sample.rate)} req/s  p50 ${fmtMs(sample.p50us)} ms  p99 ${fmtMs(sample.p99us)} ms  server cpu ${fmtPct(serverCpu)}  wrk cpu ${fmtPct(sample.wrkCpu)}` +
                (target.proxied ? `  backend cpu ${fmtPct(backendCpu)}` : "") +
                `  other cpu ${fmtFixed(sample.otherCpu, 2)} cores`,
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
      await backend?.stop();
    }
    for (const o of outcomes.values()) o.chosen = pickRun(o.samples, how, (s) => s.rate);

    const get = (id: string) => outcomes.get(id)?.chosen ?? null;
    const raw = get("raw-uws");
    const fastify = get("fastify");
    const fastifyProxy = get("fastify-proxy");
    const ratio = (s: HttpSample | null, b: HttpSample | null) => (s === null || b === null || b.rate === 0 ? null : s.rate / b.rate);

    const table: string[][] = [
      ["server", "req/s", "p50 ms", "p99 ms", "vs raw uWS", "vs Fastify", "server cpu", "wrk cpu", "backend cpu", "other cpu", "B/resp", "errors"],
    ];
    const checks: Check[] = [];
    for (const o of outcomes.values()) {
      const s = o.chosen;
      if (s === null) {
        table.push([o.target.label, o.skipped ? "SKIP" : "ERROR", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-"]);
        if (o.error) notes.push(`${o.target.label}: ${o.error.split("\n")[0]}`);
        if (o.skipped) notes.push(`${o.target.label}: skipped (${o.skipped})`);
        continue;
      }
      const errs = s.non2xx + s.socketErrors.connect + s.socketErrors.read + s.socketErrors.write + s.socketErrors.timeout;
      const peer = o.target.proxied ? fastifyProxy : fastify;
      table.push([
        o.target.label,
        fmtInt(s.rate),
        fmtMs(s.p50us),
        fmtMs(s.p99us),
        fmtRatio(ratio(s, raw)),
        fmtRatio(ratio(s, peer)),
        fmtPct(s.serverCpu),
        fmtPct(s.wrkCpu),
        o.target.proxied ? fmtPct(s.backendCpu) : "-",
        fmtFixed(s.otherCpu, 2),
        fmtFixed(s.bytesPerResponse, 0),
        String(errs),
      ]);
      if (errs > 0) {
        notes.push(
          `${o.target.label}: ${s.non2xx} non-2xx responses, socket errors connect ${s.socketErrors.connect} read ${s.socketErrors.read} write ${s.socketErrors.write} timeout ${s.socketErrors.timeout}`,
        );
      }
    }
    const check = (name: string, s: HttpSample | null, base: HttpSample | null, min: number, id: string, baseId: string) => {
      const r = ratio(s, base);
      const failedRun = outcomes.get(id)?.error !== "" || outcomes.get(baseId)?.error !== "";
      const missing = outcomes.get(id) === undefined || outcomes.get(baseId) === undefined;
      checks.push({
        name,
        pass: r === null ? (failedRun && !missing ? false : null) : r >= min,
        detail: r === null ? (missing ? "not selected" : failedRun ? "error" : "skipped") : fmtRatio(r),
      });
    };
    const mock = get("gateway-mock");
    const lambda = get("gateway-lambda");
    const proxy = get("gateway-proxy");
    check(`gateway MOCK >= ${HTTP_TARGETS.mockVsRaw.toFixed(2)}x raw uWS req/s`, mock, raw, HTTP_TARGETS.mockVsRaw, "gateway-mock", "raw-uws");
    check(`gateway MOCK >= ${HTTP_TARGETS.mockVsFastify.toFixed(2)}x Fastify req/s`, mock, fastify, HTTP_TARGETS.mockVsFastify, "gateway-mock", "fastify");
    check(
      `gateway LAMBDA (2.0) >= ${HTTP_TARGETS.lambdaVsFastify.toFixed(2)}x Fastify req/s`,
      lambda,
      fastify,
      HTTP_TARGETS.lambdaVsFastify,
      "gateway-lambda",
      "fastify",
    );
    check(
      `gateway HTTP_PROXY >= ${HTTP_TARGETS.proxyVsFastifyProxy.toFixed(2)}x Fastify proxy req/s`,
      proxy,
      fastifyProxy,
      HTTP_TARGETS.proxyVsFastifyProxy,
      "gateway-proxy",
      "fastify-proxy",
    );
    for (const o of outcomes.values()) {
      const s = o.chosen;
      if (s === null) continue;
      const errs = s.non2xx + s.socketErrors.connect + s.socketErrors.read + s.socketErrors.write + s.socketErrors.timeout;
      checks.push({
        name: `${o.target.label}: 200 ${EXPECTED_BODY}, no errors under load`,
        pass: errs === 0,
        detail: errs === 0 ? `${fmtInt(s.requests)} requests` : `${errs} errors`,
      });
    }
    if (raw !== null) {
      checks.push({
        // wrk near a full core is fine as long as the server is near a full core too: the raw
        // figure is then the server's ceiling, not wrk's.
        name: "wrk is not the bottleneck (raw uWS run: wrk below 90% of a core, or the server at 90% or more)",
        pass: raw.wrkCpu < HTTP_TARGETS.wrkCpuMax || raw.serverCpu >= HTTP_TARGETS.wrkCpuMax,
        detail: `wrk ${fmtPct(raw.wrkCpu)} of a core, server ${fmtPct(raw.serverCpu)}`,
      });
    }
    const noise = noiseNote([...outcomes.values()].map((o) => o.chosen), "run(s)");
    if (noise !== null) notes.push(noise);
    notes.push(
      `load: wrk -t${threads} -c${connections}, ${warmupSec}s unmeasured + ${durationSec}s measured per server, pinned to cpu ${ctx.loadCpus}; servers on cpu ${ctx.serverEnv.cpus}; proxy backend (raw uWS HTTP) on cpu ${backendCpus}` +
        (repeat > 1 ? `; ${how} of ${repeat} rounds` : ""),
    );
    notes.push("vs Fastify: the proxy rows are compared with the Fastify proxy, the others with Fastify mock");
    notes.push(
      `reproduce: ${reproduceCommand(ctx, "http", [
        ["http-connections", connections],
        ["http-threads", threads],
        ["http-warmup", warmupSec],
        ["http-duration", durationSec],
        ["http-servers", targets.map((t) => t.id).join(",")],
        ["backend-cpus", backendCpus],
        ["repeat", repeat],
      ])}`,
    );
    return {
      title: "HTTP (wrk, keep-alive)",
      table,
      checks,
      notes,
      data: {
        connections,
        threads,
        warmupSec,
        durationSec,
        backendCpus,
        repeat,
        results: [...outcomes.values()].map((o) => ({
          id: o.target.id,
          label: o.target.label,
          chosen: o.chosen === null ? null : { ...o.chosen, raw: undefined },
          samples: o.samples.map((s) => ({ ...s, raw: undefined })),
          skipped: o.skipped || undefined,
          error: o.error || undefined,
        })),
      },
    };
  },
};
