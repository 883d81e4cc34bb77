// Runs loadtest/loadgen.ts as pinned child processes and gathers their reports,
// sampling the server's CPU and the machine's CPU at the measurement window edges.

import type { IdleReport, ThroughputResult } from "../loadgen.ts";
import {
  ChildLines,
  cpuBusySeconds,
  fdSoftLimit,
  jsonLineOfType,
  spawnPinned,
  stopProcessTree,
  treeCpuSeconds,
  tsNodeArgs,
} from "./proc.ts";
import type { RunningServer } from "./servers.ts";

export interface ThroughputDrive {
  connections: number;
  inflight: number;
  payload: string;
  /** Expected reply for every connection's first reply; null = do not check. */
  expectReply: string | null;
  warmupSec: number;
  durationSec: number;
}

export interface ThroughputSample extends Omit<ThroughputResult, "histogram"> {
  /** Fraction of one core the server process tree used in the measured window. */
  serverCpu: number;
  /** CPU (in cores) used on the machine by anything other than server + loadgen. */
  otherCpu: number;
}

export async function driveThroughput(
  server: RunningServer,
  drive: ThroughputDrive,
  root: string,
  loadCpus: string,
): Promise<ThroughputSample> {
  const args = [
    "--port",
    String(server.port),
    "--path",
    server.path,
    "--connections",
    String(drive.connections),
    "--inflight",
    String(drive.inflight),
    "--payload",
    drive.payload,
    "--warmup",
    String(drive.warmupSec),
    "--duration",
    String(drive.durationSec),
  ];
  if (drive.expectReply !== null) args.push("--expect", drive.expectReply);
  const child = spawnPinned(process.execPath, tsNodeArgs("loadtest/loadgen.ts", args), { cpus: loadCpus, cwd: root });
  const lines = new ChildLines(child, "  [loadgen] ");
  const timeout = (drive.warmupSec + drive.durationSec) * 1000 + 60_000;
  try {
    await lines.waitForLine(jsonLineOfType("measure-start"), timeout, "loadgen measure-start");
    const server0 = treeCpuSeconds(server.pid);
    const busy0 = cpuBusySeconds();
    const t0 = performance.now();
    await lines.waitForLine(jsonLineOfType("measure-end"), timeout, "loadgen measure-end");
    const server1 = treeCpuSeconds(server.pid);
    const busy1 = cpuBusySeconds();
    const wall = (performance.now() - t0) / 1000;
    const resultLine = await lines.waitForLine(jsonLineOfType("result"), 30_000, "loadgen result");
    const { histogram: _h, ...result } = JSON.parse(resultLine) as ThroughputResult;
    const serverCpu = (server1 - server0) / wall;
    let busy = 0;
    for (let i = 0; i < busy1.length; i++) busy += (busy1[i] ?? 0) - (busy0[i] ?? 0);
    const otherCpu = Math.max(0, busy / wall - serverCpu - result.loadgenCpu);
    return { ...result, serverCpu, otherCpu };
  } finally {
    await stopProcessTree(lines, 2000);
  }
}

export interface IdleSample {
  requested: number;
  open: number;
  failed: number;
  closedAfterOpen: number;
  openMs: number;
  processes: number;
  lastError: string;
}

/** Idle connections held by loadgen children; release() closes them. */
export interface IdleHold {
  sample: IdleSample;
  /** Asks every child for a fresh status (are the connections still open?). */
  status(): Promise<IdleSample>;
  release(): Promise<void>;
}

/** How many sockets one loadgen child may open (same RLIMIT_NOFILE as ours). */
export function socketsPerProcess(): number {
  return Math.max(100, fdSoftLimit() - 256);
}

export async function holdIdleConnections(
  server: RunningServer,
  count: number,
  processes: number,
  root: string,
  loadCpus: string,
  timeoutMs: number,
  opts: { path?: string; indexBase?: number } = {},
): Promise<IdleHold> {
  const procs = Math.max(processes, Math.ceil(count / socketsPerProcess()));
  const children: ChildLines[] = [];
  const t0 = performance.now();
  let base = opts.indexBase ?? 0;
  for (let i = 0; i < procs; i++) {
    const share = Math.floor(count / procs) + (i < count % procs ? 1 : 0);
    const args = [
      "--mode",
      "idle",
      "--port",
      String(server.port),
      "--path",
      opts.path ?? server.path,
      "--index-base",
      String(base),
      "--connections",
      String(share),
    ];
    base += share;
    const child = spawnPinned(process.execPath, tsNodeArgs("loadtest/loadgen.ts", args), {
      cpus: loadCpus,
      cwd: root,
      stdin: true,
    });
    children.push(new ChildLines(child, `  [idle ${i}] `));
  }
  const collect = async (type: IdleReport["type"], since: number[]): Promise<IdleSample> => {
    const reports: IdleReport[] = [];
    for (let i = 0; i < children.length; i++) {
      const c = children[i]!;
      const skip = since[i] ?? 0;
      const line = await c.waitForLine(jsonLineOfType(type), timeoutMs, `idle loadgen ${type}`, skip);
      reports.push(JSON.parse(line) as IdleReport);
    }
    return {
      requested: count,
      open: reports.reduce((s, r) => s + r.open, 0),
      failed: reports.reduce((s, r) => s + r.failed, 0),
      closedAfterOpen: reports.reduce((s, r) => s + r.closedAfterOpen, 0),
      openMs: Math.round(performance.now() - t0),
      processes: procs,
      lastError: reports.map((r) => r.lastError).find((e) => e !== "") ?? "",
    };
  };
  let sample: IdleSample;
  try {
    sample = await collect(
      "idle-open",
      children.map(() => 0),
    );
  } catch (err) {
    await Promise.all(children.map((c) => stopProcessTree(c, 2000)));
    throw err;
  }
  return {
    sample,
    status: async () => {
      const since = children.map((c) => c.stdout.length);
      for (const c of children) c.child.stdin?.write("status\n");
      const s = await collect("idle-status", since);
      return { ...s, openMs: sample.openMs };
    },
    release: async () => {
      for (const c of children) c.child.stdin?.end();
      await Promise.all(
        children.map(async (c) => {
          try {
            await c.waitForExit(10_000);
          } catch {
            await stopProcessTree(c, 2000);
          }
        }),
      );
    },
  };
}
