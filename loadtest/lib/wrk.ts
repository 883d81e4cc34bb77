// Runs wrk (pinned) and parses its report: Requests/sec, the --latency percentiles, the
// request/byte totals and the error lines. CPU of wrk is sampled from /proc while it runs.

import { accessSync, constants } from "node:fs";
import { ChildLines, pinnedCommandLine, sleep, spawnPinned, stopProcessTree, treeCpuSeconds } from "./proc.ts";

export interface WrkResult {
  requests: number;
  seconds: number;
  rate: number;
  /** Latency percentiles (microseconds) from --latency. */
  p50us: number;
  p75us: number;
  p90us: number;
  p99us: number;
  avgUs: number;
  maxUs: number;
  bytesRead: number;
  non2xx: number;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  /** wrk's own CPU over its run, as a share of one core (sampled every 100 ms). */
  wrkCpu: number;
  raw: string;
}

/** The wrk executable: `preferred` if given, else the first of /usr/bin, /usr/local/bin; null if none. */
export function wrkBinary(preferred?: string): string | null {
  const candidates = preferred !== undefined ? [preferred] : ["/usr/bin/wrk", "/usr/local/bin/wrk"];
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not there
    }
  }
  return null;
}

export interface WrkOptions {
  bin: string;
  url: string;
  threads: number;
  connections: number;
  durationSec: number;
  cpus: string;
  cwd: string;
  latency: boolean;
}

export function wrkArgs(o: WrkOptions): string[] {
  return [`-t${o.threads}`, `-c${o.connections}`, `-d${o.durationSec}s`, ...(o.latency ? ["--latency"] : []), o.url];
}

export function wrkCommandLine(o: WrkOptions): string {
  return pinnedCommandLine("wrk", wrkArgs(o), o.cpus);
}

const UNIT_US: Record<string, number> = { us: 1, ms: 1000, s: 1_000_000, m: 60_000_000 };
const UNIT_BYTES: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

function durationUs(text: string | undefined): number {
  if (text === undefined) return Number.NaN;
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  return m ? Number(m[1]) * (UNIT_US[m[2]!] ?? Number.NaN) : Number.NaN;
}

export function parseWrk(out: string): Omit<WrkResult, "wrkCpu"> {
  const num = (re: RegExp) => {
    const m = re.exec(out);
    return m ? Number(m[1]) : Number.NaN;
  };
  const pct = (p: string) => durationUs(new RegExp(`^\\s+${p}%\\s+(\\S+)\\s*$`, "m").exec(out)?.[1]);
  const lat = /^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)/m.exec(out);
  const totals = /^\s+(\d+) requests in ([\d.]+)(us|ms|s|m), ([\d.]+)(B|KB|MB|GB|TB) read/m.exec(out);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    requests: totals ? Number(totals[1]) : Number.NaN,
    seconds: totals ? durationUs(`${totals[2]}${totals[3]}`) / 1e6 : Number.NaN,
    rate: num(/^Requests\/sec:\s+([\d.]+)/m),
    p50us: pct("50"),
    p75us: pct("75"),
    p90us: pct("90"),
    p99us: pct("99"),
    avgUs: durationUs(lat?.[1]),
    maxUs: durationUs(lat?.[3]),
    bytesRead: totals ? Number(totals[4]) * (UNIT_BYTES[totals[5]!] ?? Number.NaN) : Number.NaN,
    non2xx: /Non-2xx or 3xx responses: (\d+)/.test(out) ? num(/Non-2xx or 3xx responses: (\d+)/) : 0,
    socketErrors: sock
      ? { connect: Number(sock[1]), read: Number(sock[2]), write: Number(sock[3]), timeout: Number(sock[4]) }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
    raw: out,
  };
}

/** Runs wrk to completion; `onStart` runs right after the spawn (for CPU baselines). */
export async function runWrk(o: WrkOptions, onStart?: () => void): Promise<WrkResult> {
  const child = spawnPinned(o.bin, wrkArgs(o), { cpus: o.cpus, cwd: o.cwd });
  const lines = new ChildLines(child);
  const pid = child.pid;
  if (pid === undefined) throw new Error("failed to spawn wrk");
  onStart?.();
  const t0 = performance.now();
  const cpu0 = treeCpuSeconds(pid);
  let cpuLast = cpu0;
  let tLast = t0;
  const poll = (async () => {
    while (!lines.exited) {
      const c = treeCpuSeconds(pid);
      if (!lines.exited && c >= cpuLast) {
        cpuLast = c;
        tLast = performance.now();
      }
      await sleep(100);
    }
  })();
  try {
    const code = await lines.waitForExit((o.durationSec + 30) * 1000);
    await poll;
    const out = lines.stdout.join("\n");
    if (code !== 0) throw new Error(`wrk exited with code ${code}${lines.tail()}`);
    const parsed = parseWrk(out);
    if (!Number.isFinite(parsed.rate)) throw new Error(`could not parse the wrk report:\n${out}`);
    const window = (tLast - t0) / 1000;
    return { ...parsed, wrkCpu: window > 0 ? (cpuLast - cpu0) / window : 0 };
  } finally {
    await stopProcessTree(lines, 1000);
  }
}
