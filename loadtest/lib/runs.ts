// Shared run bookkeeping for the scenarios: waiting for a quiet machine, choosing one of the
// --repeat runs, foreign-CPU accounting and the "reproduce with" command line.

import type { RunContext } from "../scenarios/types.ts";
import { cpuBusySeconds, shellQuote, waitForQuietCpu } from "./proc.ts";
import { fmtFixed } from "./table.ts";

/** Above this many cores used by other processes during a measurement, the run is "noisy". */
export const NOISE_CORES = 0.15;

export interface NoisySample {
  /** Cores used by processes other than the ones under test during the measured window. */
  otherCpu: number;
}

/**
 * Which of the --repeat runs is reported: `quiet-median` (default) = median by `value` of the
 * runs whose foreign CPU stayed under NOISE_CORES, or of all runs if none did; `median` = of
 * all runs; `quietest` = the run least disturbed by other processes.
 */
export function pickRun<T extends NoisySample>(samples: readonly T[], how: string, value: (s: T) => number): T | null {
  if (samples.length === 0) return null;
  if (how === "quietest") return [...samples].sort((a, b) => a.otherCpu - b.otherCpu)[0] ?? null;
  let pool: readonly T[] = samples;
  if (how !== "median") {
    const quiet = samples.filter((s) => s.otherCpu <= NOISE_CORES);
    if (quiet.length > 0) pool = quiet;
  }
  const sorted = [...pool].sort((a, b) => value(a) - value(b));
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? null;
}

/** Waits (up to --quiet-wait seconds) for other processes to go idle; logs when they do not. */
export async function quietWait(ctx: RunContext): Promise<void> {
  const ms = ctx.flags.number("quiet-wait", 20) * 1000;
  if (ms <= 0) return;
  const busy = await waitForQuietCpu(ms, NOISE_CORES);
  if (busy > NOISE_CORES) {
    ctx.log(`   machine still busy (${fmtFixed(busy, 2)} cores used by other processes), measuring anyway`);
  }
}

/** Machine-wide process CPU seconds so far (all CPUs summed), for foreign-CPU accounting. */
export function machineBusySeconds(): number {
  return cpuBusySeconds().reduce((s, x) => s + (x ?? 0), 0);
}

/** `npm run loadtest -- --scenario NAME --flag value ...` with every effective setting spelled out. */
export function reproduceCommand(ctx: RunContext, scenario: string, flags: ReadonlyArray<readonly [string, string | number]>): string {
  const parts = ["npm", "run", "loadtest", "--", "--scenario", scenario];
  for (const [name, value] of flags) parts.push(`--${name}`, String(value));
  const cpus = ctx.serverEnv.cpus;
  if (cpus !== "0") parts.push("--server-cpus", cpus);
  if (ctx.loadCpus !== "1") parts.push("--loadgen-cpus", ctx.loadCpus);
  if (ctx.serverEnv.gatewayBin !== "scripts/gatehouse.mjs") parts.push("--gateway-bin", ctx.serverEnv.gatewayBin);
  if (ctx.serverEnv.gatewayArgs.length > 0) parts.push("--gateway-args", ctx.serverEnv.gatewayArgs.join(" "));
  return parts.map(shellQuote).join(" ");
}

/** A note listing the noisy runs among the reported ones, or null when all were quiet. */
export function noiseNote<T extends NoisySample>(reported: ReadonlyArray<T | null>, what: string): string | null {
  const noisy = reported.filter((s): s is T => s !== null && s.otherCpu > NOISE_CORES);
  if (noisy.length === 0) return null;
  const worst = Math.max(...noisy.map((n) => n.otherCpu));
  return `NOISY: other processes used up to ${fmtFixed(worst, 2)} cores during ${noisy.length} reported ${what}: those figures are noisy, re-run on a quiet machine or with --repeat 3`;
}
