// A throwaway redis-server for the cluster scenario: free port, no persistence, pinned,
// stopped (SIGTERM, then SIGKILL) with everything else the run started.

import { execFileSync } from "node:child_process";
import { Socket } from "node:net";
import { join } from "node:path";
import { ChildLines, freePort, pinnedCommandLine, sleep, spawnPinned, stopProcessTree } from "./proc.ts";
import { SkipError } from "./servers.ts";

export interface RunningRedis {
  url: string;
  port: number;
  pid: number;
  command: string;
  logFile: string;
  stop(): Promise<void>;
}

export function redisServerBinary(): string | null {
  try {
    return execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim() || null;
  } catch {
    return null;
  }
}

export async function startRedis(opts: { cpus: string; cwd: string; logDir: string; timeoutMs: number }): Promise<RunningRedis> {
  const bin = redisServerBinary();
  if (bin === null) throw new SkipError("redis-server not found on PATH");
  const port = await freePort();
  const logFile = join(opts.logDir, `redis-${port}.log`);
  const args = [
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--daemonize",
    "no",
    "--protected-mode",
    "no",
    "--dir",
    opts.logDir,
    "--logfile",
    logFile,
  ];
  const child = spawnPinned(bin, args, { cpus: opts.cpus, cwd: opts.cwd });
  const lines = new ChildLines(child);
  if (child.pid === undefined) throw new Error("failed to spawn redis-server");
  const redis: RunningRedis = {
    url: `redis://127.0.0.1:${port}`,
    port,
    pid: child.pid,
    command: pinnedCommandLine("redis-server", args, opts.cpus),
    logFile,
    stop: () => stopProcessTree(lines, 3000),
  };
  const deadline = Date.now() + opts.timeoutMs;
  while (Date.now() < deadline) {
    if (lines.exited) throw new Error(`redis-server exited with code ${lines.exitCode}; log: ${logFile}${lines.tail()}`);
    if (await ping(port)) return redis;
    await sleep(100);
  }
  await redis.stop();
  throw new Error(`redis-server not answering PING after ${opts.timeoutMs} ms; log: ${logFile}`);
}

/** True when the server answers +PONG to an inline PING within a second. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let got = "";
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), 1000);
    socket.on("error", () => finish(false));
    socket.on("data", (chunk: Buffer) => {
      got += chunk.toString("latin1");
      if (got.includes("\r\n")) finish(got.startsWith("+PONG"));
    });
    socket.connect(port, "127.0.0.1", () => socket.write("PING\r\n"));
  });
}
