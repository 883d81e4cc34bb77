// Gatehouse benchmark orchestrator (`npm run loadtest`). See loadtest/README.md.
//
//   node --import tsx loadtest/run.ts [--scenario ws|idle|connect|http|cluster|all|a,b] [--duration 10]
//        [--warmup 3] [--connections 100] [--inflight 10] [--repeat 1] [--strict] [--json out.json]
//
// Every child process goes through lib/proc.ts spawnPinned, which tracks it: on Ctrl-C
// (SIGINT), SIGTERM, a scenario timeout or any exit, the still-running ones are stopped.

import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Flags } from "./lib/args.ts";
import { blockSpawns, fdSoftLimit, gitCommit, hasTaskset, killAllChildren, killAllChildrenNow, liveChildCount, shellQuote } from "./lib/proc.ts";
import { gatewayAvailable, type ServerEnv } from "./lib/servers.ts";
import { formatTable, verdictText } from "./lib/table.ts";
import { findScenario, SCENARIOS } from "./scenarios/index.ts";
import type { Check, RunContext, Scenario, ScenarioReport } from "./scenarios/types.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

function usage(): string {
  const lines = [
    "usage: npm run loadtest -- [flags]",
    "",
    "  --scenario NAME       ws | idle | connect | http | cluster | all, or a comma list (default all)",
    "  --server-cpus LIST    taskset CPU list for servers (default 0)",
    "  --loadgen-cpus LIST   taskset CPU list for load generators (default 1)",
    "  --gateway-bin PATH    gateway CLI (default scripts/gatehouse.mjs)",
    "  --gateway-api PATH    API definition (default loadtest/api.yaml)",
    '  --gateway-args "..."  extra gateway arguments (space separated)',
    "  --json FILE           also write the full report as JSON",
    "  --strict              exit 1 when any check FAILs",
    "  --scenario-timeout S  stop a scenario (and everything it started) after S seconds (default 1200)",
    "",
  ];
  for (const s of SCENARIOS) {
    lines.push(`scenario ${s.name}: ${s.description}`);
    for (const [flag, help] of s.flags) {
      lines.push(flag.length < 22 ? `  ${flag.padEnd(22)}${help}` : `  ${flag}\n  ${" ".repeat(22)}${help}`);
    }
    lines.push("");
  }
  return lines.join("\n");
}

function machineInfo(): Record<string, string> {
  const cpuList = cpus();
  return {
    date: new Date().toISOString(),
    cpus: `${cpuList.length} x ${cpuList[0]?.model.trim() ?? "unknown"}`,
    kernel: release(),
    node: process.version,
    commit: gitCommit(ROOT),
    "fd limit": String(fdSoftLimit()),
    taskset: hasTaskset() ? "yes" : "no (processes are NOT pinned)",
  };
}

function selectScenarios(names: readonly string[]): Scenario[] {
  if (names.includes("all")) return [...SCENARIOS];
  return names.map((name) => {
    const s = findScenario(name);
    if (s === undefined) {
      throw new Error(`unknown scenario ${JSON.stringify(name)} (known: ${SCENARIOS.map((x) => x.name).join(", ")}, all)`);
    }
    return s;
  });
}

async function main(): Promise<number> {
  const flags = new Flags(process.argv.slice(2));
  if (flags.has("help") || flags.has("h")) {
    process.stdout.write(usage());
    return 0;
  }
  const scenarios = selectScenarios(flags.list("scenario", ["all"]));
  const logDir = mkdtempSync(join(tmpdir(), "gatehouse-loadtest-"));
  mkdirSync(logDir, { recursive: true });
  const serverEnv: ServerEnv = {
    root: ROOT,
    cpus: flags.string("server-cpus", "0"),
    logDir,
    gatewayArgs: flags
      .string("gateway-args", "")
      .split(" ")
      .filter((a) => a !== ""),
    gatewayBin: flags.string("gateway-bin", "scripts/gatehouse.mjs"),
    gatewayApi: flags.string("gateway-api", "loadtest/api.yaml"),
    readyTimeoutMs: flags.number("ready-timeout", 30) * 1000,
  };
  const ctx: RunContext = {
    root: ROOT,
    flags,
    serverEnv,
    loadCpus: flags.string("loadgen-cpus", "1"),
    log: (message) => process.stderr.write(`${message}\n`),
  };

  const info = machineInfo();
  info.pinning = `servers on cpu ${serverEnv.cpus}, load generators on cpu ${ctx.loadCpus}`;
  info.gateway = gatewayAvailable(serverEnv)
    ? `${serverEnv.gatewayBin} serve ${serverEnv.gatewayApi}`
    : `${serverEnv.gatewayBin} not found (gateway rows SKIP)`;
  info.logs = logDir;
  info.command = ["npm", "run", "loadtest", "--", ...process.argv.slice(2)].map(shellQuote).join(" ");
  process.stdout.write("Gatehouse loadtest\n");
  for (const [k, v] of Object.entries(info)) process.stdout.write(`  ${`${k}:`.padEnd(10)} ${v}\n`);
  process.stdout.write("\n");

  const reports: Array<{ scenario: string; report: ScenarioReport }> = [];
  const allChecks: Check[] = [];
  const scenarioTimeoutMs = flags.number("scenario-timeout", 1200) * 1000;
  let stopReason = "";
  for (const scenario of scenarios) {
    let report: ScenarioReport;
    if (interrupted) stopReason = "interrupted";
    if (stopReason !== "") {
      const detail = `not run: ${stopReason}`;
      report = { title: scenario.name, table: [["error"], [detail]], checks: [{ name: `scenario ${scenario.name} completed`, pass: false, detail }], notes: [], data: null };
      reports.push({ scenario: scenario.name, report });
      allChecks.push(...report.checks);
      printReport(report);
      continue;
    }
    try {
      report = await withTimeout(scenario.run(ctx), scenarioTimeoutMs, `scenario ${scenario.name}`);
      if (liveChildCount() > 0) {
        ctx.log(`${scenario.name}: ${liveChildCount()} child process(es) still running after the scenario; stopping them`);
        await killAllChildren();
      }
    } catch (err) {
      if (err instanceof ScenarioTimeout) {
        // The scenario's code may still be running: let it start nothing more, and stop here.
        blockSpawns(err.message);
        stopReason = err.message;
      }
      await killAllChildren();
      const message = err instanceof Error ? err.message : String(err);
      report = {
        title: scenario.name,
        table: [["error"], [message]],
        checks: [{ name: `scenario ${scenario.name} completed`, pass: false, detail: message.split("\n")[0] ?? "" }],
        notes: [],
        data: null,
      };
    }
    reports.push({ scenario: scenario.name, report });
    allChecks.push(...report.checks);
    printReport(report);
  }

  const failed = allChecks.filter((c) => c.pass === false).length;
  const passed = allChecks.filter((c) => c.pass === true).length;
  const skipped = allChecks.filter((c) => c.pass === null).length;
  process.stdout.write(`Summary: ${passed} PASS, ${failed} FAIL, ${skipped} SKIP\n`);

  const jsonPath = flags.optionalString("json");
  if (jsonPath !== undefined) {
    writeFileSync(resolve(jsonPath), `${JSON.stringify({ machine: info, reports }, null, 2)}\n`);
    process.stdout.write(`JSON report: ${resolve(jsonPath)}\n`);
  }
  return flags.bool("strict") && failed > 0 ? 1 : 0;
}

function printReport(report: ScenarioReport): void {
  const out: string[] = [`== ${report.title} ==`, formatTable(report.table), ""];
  for (const section of report.sections ?? []) out.push(`-- ${section.title} --`, formatTable(section.table), "");
  if (report.checks.length > 0) {
    out.push(
      formatTable([
        ["check", "result", "measured"],
        ...report.checks.map((c) => [c.name, verdictText(c.pass), c.detail]),
      ]),
    );
    out.push("");
  }
  for (const note of report.notes) out.push(`note: ${note}`);
  process.stdout.write(`${out.join("\n")}\n\n`);
}

class ScenarioTimeout extends Error {}

/** Rejects after `ms` (the scenario's children are then stopped by the caller). */
function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ScenarioTimeout(`${what} timed out after ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

// Ctrl-C / kill: stop everything we started, then exit. "exit": last-resort SIGKILL.
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    if (interrupted) {
      killAllChildrenNow();
      process.exit(130);
    }
    interrupted = true;
    blockSpawns(`interrupted by ${signal}`);
    process.stderr.write(`\nloadtest: ${signal}, stopping ${liveChildCount()} child process(es)...\n`);
    killAllChildren(2000).finally(() => process.exit(130));
  });
}
process.on("exit", () => killAllChildrenNow());

main().then(
  (code) => {
    if (interrupted) process.stderr.write("loadtest: interrupted; the figures above are incomplete\n");
    process.exit(interrupted ? 130 : code);
  },
  (err: unknown) => {
    process.stderr.write(`loadtest: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(2);
  },
);
