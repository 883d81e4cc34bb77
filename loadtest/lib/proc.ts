// Process helpers for the loadtest orchestrator: pinned spawning, /proc sampling
// (RSS and CPU of a whole process tree), fd budgets and line-oriented child output.

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";

let tasksetAvailable: boolean | undefined;

export function hasTaskset(): boolean {
  if (tasksetAvailable === undefined) {
    try {
      execFileSync("taskset", ["-p", String(process.pid)], { stdio: "ignore" });
      tasksetAvailable = true;
    } catch {
      tasksetAvailable = false;
    }
  }
  return tasksetAvailable;
}

export interface SpawnPinnedOptions {
  /** CPU list for `taskset -c`, e.g. "0"; empty string means "do not pin". */
  cpus: string;
  cwd: string;
  env?: NodeJS.ProcessEnv;
  /** Pipe stdin (so the child can be driven / notice the parent dying). */
  stdin?: boolean;
  /** Send stdout+stderr to this file instead of pipes (for chatty servers). */
  logFile?: string;
}

/**
 * Every child spawned through spawnPinned that has not exited yet. run.ts kills them on
 * SIGINT/SIGTERM, on a scenario timeout and at exit, so an interrupted run leaves nothing behind.
 */
const liveChildren = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  if (child.pid === undefined) return child;
  liveChildren.add(child);
  child.once("exit", () => liveChildren.delete(child));
  child.once("error", () => liveChildren.delete(child));
  return child;
}

/** Children started by this process that are still running. */
export function liveChildCount(): number {
  return liveChildren.size;
}

/**
 * Stops every child we started and is still running (and their descendants): SIGTERM,
 * then SIGKILL after `graceMs`. Safe to call more than once.
 */
export async function killAllChildren(graceMs = 2000): Promise<void> {
  const children = [...liveChildren];
  const family = children.flatMap((c) => (c.pid === undefined ? [] : descendantsOf(c.pid)));
  for (const c of children) c.kill("SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && children.some((c) => c.exitCode === null && c.signalCode === null)) {
    await sleep(50);
  }
  killAllChildrenNow(family);
}

/** Synchronous last resort (process "exit" handler): SIGKILL every live child and the given pids. */
export function killAllChildrenNow(extraPids: readonly number[] = []): void {
  for (const c of liveChildren) {
    if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  }
  for (const pid of extraPids) {
    if (isAlive(pid)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

let spawnsBlocked = "";

/** From now on spawnPinned throws: a timed-out or interrupted scenario must not start anything new. */
export function blockSpawns(reason: string): void {
  spawnsBlocked = reason;
}

/** Spawns `cmd args` under `taskset -c <cpus>` (exec'd, so the pid is the command's own). */
export function spawnPinned(cmd: string, args: readonly string[], opts: SpawnPinnedOptions): ChildProcess {
  if (spawnsBlocked !== "") throw new Error(`not starting ${cmd}: ${spawnsBlocked}`);
  const pin = opts.cpus !== "" && hasTaskset();
  const file = pin ? "taskset" : cmd;
  const argv = pin ? ["-c", opts.cpus, cmd, ...args] : [...args];
  const stdin = opts.stdin ? "pipe" : "ignore";
  if (opts.logFile !== undefined) {
    const fd = openSync(opts.logFile, "a");
    try {
      return track(spawn(file, argv, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: [stdin, fd, fd] }));
    } finally {
      closeSync(fd);
    }
  }
  return track(
    spawn(file, argv, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [stdin, "pipe", "pipe"],
    }),
  );
}

/** The command line spawnPinned runs, as a shell-pasteable string (for "reproduce" notes). */
export function pinnedCommandLine(cmd: string, args: readonly string[], cpus: string): string {
  const argv = cpus !== "" && hasTaskset() ? ["taskset", "-c", cpus, cmd, ...args] : [cmd, ...args];
  return argv.map(shellQuote).join(" ");
}

export function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_\-./:=,@%+]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}

/** Node + tsx command line for running one of our TypeScript entry points. */
export function tsNodeArgs(file: string, args: readonly string[]): string[] {
  return ["--import", "tsx", file, ...args];
}

/** Collects a child's stdout/stderr as lines and lets callers wait for a matching line. */
export class ChildLines {
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  private waiters: Array<{ test: (line: string) => boolean; resolve: (line: string) => void }> = [];
  private exitWaiters: Array<(code: number | null) => void> = [];
  exited = false;
  exitCode: number | null = null;
  readonly child: ChildProcess;

  constructor(child: ChildProcess, echoPrefix?: string) {
    this.child = child;
    let outRest = "";
    let errRest = "";
    child.stdout?.setEncoding("utf8");
    child.stderr?.setEncoding("utf8");
    child.stdout?.on("data", (chunk: string) => {
      outRest += chunk;
      let nl = outRest.indexOf("\n");
      while (nl >= 0) {
        const line = outRest.slice(0, nl).replace(/\r$/, "");
        outRest = outRest.slice(nl + 1);
        this.stdout.push(line);
        this.dispatch(line);
        nl = outRest.indexOf("\n");
      }
    });
    child.stderr?.on("data", (chunk: string) => {
      errRest += chunk;
      let nl = errRest.indexOf("\n");
      while (nl >= 0) {
        const line = errRest.slice(0, nl);
        errRest = errRest.slice(nl + 1);
        this.stderr.push(line);
        if (this.stderr.length > 200) this.stderr.shift();
        if (echoPrefix !== undefined) process.stderr.write(`${echoPrefix}${line}\n`);
        nl = errRest.indexOf("\n");
      }
    });
    child.on("exit", (code) => {
      this.exited = true;
      this.exitCode = code;
      for (const w of this.exitWaiters) w(code);
      this.exitWaiters = [];
    });
  }

  private dispatch(line: string): void {
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (w.test(line)) w.resolve(line);
      else still.push(w);
    }
    this.waiters = still;
  }

  /** Resolves with the first stdout line (already seen from index `from`, or future) that passes `test`. */
  waitForLine(test: (line: string) => boolean, timeoutMs: number, what: string, from = 0): Promise<string> {
    for (let i = from; i < this.stdout.length; i++) {
      if (test(this.stdout[i]!)) return Promise.resolve(this.stdout[i]!);
    }
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}${this.tail()}`));
      }, timeoutMs);
      const onExit = (code: number | null) => {
        cleanup();
        reject(new Error(`process exited (code ${code}) while waiting for ${what}${this.tail()}`));
      };
      const waiter = {
        test,
        resolve: (line: string) => {
          cleanup();
          resolve(line);
        },
      };
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        this.exitWaiters = this.exitWaiters.filter((w) => w !== onExit);
      };
      this.waiters.push(waiter);
      if (this.exited) onExit(this.exitCode);
      else this.exitWaiters.push(onExit);
    });
  }

  waitForExit(timeoutMs: number): Promise<number | null> {
    if (this.exited) return Promise.resolve(this.exitCode);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`process ${this.child.pid} did not exit`)), timeoutMs);
      this.exitWaiters.push((code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
  }

  tail(): string {
    const err = this.stderr.slice(-15).join("\n");
    const out = this.stdout.slice(-5).join("\n");
    const parts = [out && `\n--- stdout (tail) ---\n${out}`, err && `\n--- stderr (tail) ---\n${err}`];
    return parts.join("");
  }
}

/** Parses JSON stdout lines of the form {"type": "..."} emitted by the load generator. */
export function jsonLineOfType(type: string): (line: string) => boolean {
  return (line) => line.startsWith("{") && line.includes(`"type":"${type}"`);
}

/** SIGTERM, then SIGKILL after `graceMs`; also kills descendants it had (by pid) if they linger. */
export async function stopProcessTree(lines: ChildLines, graceMs = 3000): Promise<void> {
  const pid = lines.child.pid;
  if (pid === undefined || lines.exited) return;
  const family = descendantsOf(pid);
  lines.child.kill("SIGTERM");
  try {
    await lines.waitForExit(graceMs);
  } catch {
    lines.child.kill("SIGKILL");
    await lines.waitForExit(graceMs).catch(() => undefined);
  }
  for (const d of family) {
    if (isAlive(d)) {
      try {
        process.kill(d, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** All descendants of `pid` (children, grandchildren, ...), from /proc/<n>/stat. */
export function descendantsOf(pid: number): number[] {
  const parentOf = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readProcStat(Number(name));
    if (stat === null) continue;
    const kids = parentOf.get(stat.ppid);
    if (kids) kids.push(Number(name));
    else parentOf.set(stat.ppid, [Number(name)]);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const k of parentOf.get(p) ?? []) {
      out.push(k);
      queue.push(k);
    }
  }
  return out;
}

interface ProcStat {
  ppid: number;
  utime: number;
  stime: number;
}

function readProcStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // comm may contain spaces/parens: fields after the last ')' are stable.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // rest[0] = state (field 3), rest[1] = ppid (4), rest[11] = utime (14), rest[12] = stime (15)
  return { ppid: Number(rest[1]), utime: Number(rest[11]), stime: Number(rest[12]) };
}

/** VmRSS of one process in KB, or 0 when it is gone. */
export function rssKb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Sum of VmRSS (KB) over a process and all its descendants. */
export function treeRssKb(pid: number): number {
  let total = rssKb(pid);
  for (const d of descendantsOf(pid)) total += rssKb(d);
  return total;
}

let clockTicks: number | undefined;

function clkTck(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/**
 * Process-context CPU seconds (user + nice + system) per CPU from /proc/stat.
 * irq/softirq are left out: loopback TCP work lands there and belongs to no process.
 */
export function cpuBusySeconds(): number[] {
  const out: number[] = [];
  try {
    const text = readFileSync("/proc/stat", "utf8");
    for (const line of text.split("\n")) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const f = m[2]!.trim().split(/\s+/).map(Number);
      // user nice system idle iowait irq softirq steal
      const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0);
      out[Number(m[1])] = busy / clkTck();
    }
  } catch {
    // not Linux
  }
  return out;
}

/** CPU seconds (user + system) consumed so far by a process tree. */
export function treeCpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of [pid, ...descendantsOf(pid)]) {
    const s = readProcStat(p);
    if (s) ticks += s.utime + s.stime;
  }
  return ticks / clkTck();
}

/** Soft RLIMIT_NOFILE of this process (from /proc/self/limits). */
export function fdSoftLimit(): number {
  try {
    const limits = readFileSync("/proc/self/limits", "utf8");
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
    if (m) return m[1] === "unlimited" ? 1 << 30 : Number(m[1]);
  } catch {
    // not Linux
  }
  return 1024;
}

export function openFdCount(): number {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return 0;
  }
}

/** How many more sockets this process can open, keeping a safety margin. */
export function fdBudget(margin = 64): number {
  return Math.max(0, fdSoftLimit() - openFdCount() - margin);
}

/** A currently free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function gitCommit(cwd: string): string {
  if (!existsSync(`${cwd}/.git`)) return "n/a";
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], {
      cwd,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
  } catch {
    return "n/a (no commits)";
  }
}

/**
 * Waits (up to maxWaitMs) until the machine's process CPU use over a 500 ms window
 * drops to `thresholdCores` or below. Returns the last reading (cores busy).
 */
export async function waitForQuietCpu(maxWaitMs: number, thresholdCores: number): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  let cores = 0;
  do {
    const a = cpuBusySeconds();
    const t0 = performance.now();
    await sleep(500);
    const b = cpuBusySeconds();
    const wall = (performance.now() - t0) / 1000;
    let busy = 0;
    for (let i = 0; i < b.length; i++) busy += (b[i] ?? 0) - (a[i] ?? 0);
    cores = busy / wall;
    if (cores <= thresholdCores) return cores;
  } while (Date.now() < deadline);
  return cores;
}
