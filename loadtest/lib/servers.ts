// The servers under test: how to start each one (pinned), wait for readiness and stop it.

import { existsSync } from "node:fs";
import { request } from "node:http";
import { Socket } from "node:net";
import { join } from "node:path";
import { ChildLines, freePort, pinnedCommandLine, sleep, spawnPinned, stopProcessTree, tsNodeArgs } from "./proc.ts";
import { buildUpgradeRequest, checkUpgradeResponse, makeHandshakeKey } from "./ws-frames.ts";

export type ServerKind = "raw-uws" | "ws" | "gateway";

/** Options for one gateway start (all optional; the defaults are the `ws` scenario's). */
export interface StartOptions {
  /** API definition (relative to the root, or absolute) instead of env.gatewayApi. */
  gatewayApi?: string;
  /** Extra gateway arguments, after env.gatewayArgs (e.g. `--redis URL`). */
  extraArgs?: readonly string[];
  /** Extra environment variables for the server. */
  env?: Record<string, string>;
  /** Gateway `--node-id` (default `bench`). */
  nodeId?: string;
  /** CPU list instead of env.cpus. */
  cpus?: string;
}

export interface ServerEnv {
  /** Repository root (cwd for every child). */
  root: string;
  /** CPU list for the server (`taskset -c`). */
  cpus: string;
  /** Directory for server logs. */
  logDir: string;
  /** Extra arguments appended to the gateway command line. */
  gatewayArgs: readonly string[];
  /** Gateway entry point, relative to root. */
  gatewayBin: string;
  /** API definition for the gateway, relative to root. */
  gatewayApi: string;
  readyTimeoutMs: number;
}

export interface RunningServer {
  /** A ServerKind, or the name given to startCustomServer. */
  kind: string;
  pid: number;
  port: number;
  /** WebSocket path (the stage). */
  path: string;
  lines: ChildLines;
  logFile: string | null;
  /** The command line that started it (taskset included), for "reproduce" notes. */
  command: string;
  stop(): Promise<void>;
}

/** Thrown when a server cannot be started for a reason that should read as SKIP, not as a crash. */
export class SkipError extends Error {}

export const BENCH_STAGE_PATH = "/bench";

export function gatewayAvailable(env: ServerEnv): boolean {
  return existsSync(join(env.root, env.gatewayBin));
}

export async function startServer(
  kind: ServerKind,
  env: ServerEnv,
  tag: string,
  opts: StartOptions = {},
): Promise<RunningServer> {
  const port = await freePort();
  let cmdArgs: string[];
  let logFile: string | null = null;
  let useHealthz = false;
  switch (kind) {
    case "raw-uws":
      cmdArgs = tsNodeArgs("loadtest/servers/raw-uws-echo.ts", ["--port", String(port)]);
      break;
    case "ws":
      cmdArgs = tsNodeArgs("loadtest/servers/ws-echo.ts", ["--port", String(port)]);
      break;
    case "gateway":
      if (!gatewayAvailable(env)) throw new SkipError(`gateway CLI ${env.gatewayBin} not found`);
      cmdArgs = [
        env.gatewayBin,
        "serve",
        opts.gatewayApi ?? env.gatewayApi,
        "--port",
        String(port),
        "--node-id",
        opts.nodeId ?? "bench",
        ...env.gatewayArgs,
        ...(opts.extraArgs ?? []),
      ];
      // The gateway may log per request: keep its output off our pipes.
      logFile = join(env.logDir, `gateway-${tag}.log`);
      useHealthz = true;
      break;
  }
  const cpus = opts.cpus ?? env.cpus;
  const childEnv = opts.env === undefined ? undefined : { ...process.env, ...opts.env };
  const child = spawnPinned(process.execPath, cmdArgs, {
    cpus,
    cwd: env.root,
    ...(logFile !== null ? { logFile } : {}),
    ...(childEnv !== undefined ? { env: childEnv } : {}),
  });
  const lines = new ChildLines(child);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`failed to spawn ${kind}`);
  const server: RunningServer = {
    kind,
    pid,
    port,
    path: BENCH_STAGE_PATH,
    lines,
    logFile,
    command: pinnedCommandLine("node", cmdArgs, cpus),
    stop: () => stopProcessTree(lines),
  };
  try {
    await waitReady(server, useHealthz ? "healthz" : "upgrade", env.readyTimeoutMs);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

/** Any other server: a pinned command, ready when `ready` passes. */
export interface CustomServerSpec {
  /** Label for errors and the log file name. */
  name: string;
  /** Executable (process.execPath for node) and its arguments; `{port}` is replaced by the port. */
  cmd: string;
  args: readonly string[];
  cpus: string;
  /** Port to use (default: a free one). */
  port?: number;
  /** "http:/path" = GET answers 200; "upgrade" = WebSocket upgrade on /bench; "tcp" = connect works. */
  ready: `http:${string}` | "upgrade" | "tcp";
  env?: Record<string, string>;
  /** Send output to a log file in env.logDir (default: keep it on pipes, last lines kept). */
  logToFile?: boolean;
}

export async function startCustomServer(spec: CustomServerSpec, env: ServerEnv): Promise<RunningServer> {
  const port = spec.port ?? (await freePort());
  const args = spec.args.map((a) => a.replaceAll("{port}", String(port)));
  const logFile = spec.logToFile ? join(env.logDir, `${spec.name}-${port}.log`) : null;
  const child = spawnPinned(spec.cmd, args, {
    cpus: spec.cpus,
    cwd: env.root,
    ...(logFile !== null ? { logFile } : {}),
    ...(spec.env !== undefined ? { env: { ...process.env, ...spec.env } } : {}),
  });
  const lines = new ChildLines(child);
  if (child.pid === undefined) throw new Error(`failed to spawn ${spec.name}`);
  const server: RunningServer = {
    kind: spec.name,
    pid: child.pid,
    port,
    path: BENCH_STAGE_PATH,
    lines,
    logFile,
    command: pinnedCommandLine(spec.cmd === process.execPath ? "node" : spec.cmd, args, spec.cpus),
    stop: () => stopProcessTree(lines),
  };
  try {
    await waitReady(server, spec.ready, env.readyTimeoutMs);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

async function waitReady(server: RunningServer, how: CustomServerSpec["ready"] | "healthz", timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (server.lines.exited) {
      throw new Error(`${server.kind} exited with code ${server.lines.exitCode} before becoming ready${describeLog(server)}`);
    }
    if (how === "tcp") {
      if (await tcpConnects(server.port, 1000)) return;
      last = "tcp: refused";
    } else if (how.startsWith("http:") || how === "healthz") {
      const path = how === "healthz" ? "/healthz" : how.slice("http:".length);
      const status = await httpStatus(server.port, path, 1000);
      if (status === 200) return;
      last = `GET ${path}: ${status}`;
    }
    if (how === "healthz" || how === "upgrade") {
      const probe = await probeUpgrade(server.port, server.path, 1000);
      if (probe === "") return;
      last = probe;
    }
    await sleep(200);
  }
  throw new Error(`${server.kind} not ready after ${timeoutMs} ms (${last})${describeLog(server)}`);
}

function tcpConnects(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, timeoutMs);
    socket.once("error", () => {
      clearTimeout(timer);
      resolve(false);
    });
    socket.connect(port, "127.0.0.1", () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(true);
    });
  });
}

function describeLog(server: RunningServer): string {
  return server.logFile !== null ? `; log: ${server.logFile}` : server.lines.tail();
}

/** HTTP status of GET path, or 0 on connection error / timeout. */
export function httpStatus(port: number, path: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path, method: "GET", timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("timeout", () => {
      req.destroy();
      resolve(0);
    });
    req.on("error", () => resolve(0));
    req.end();
  });
}

/** Performs one WebSocket upgrade; resolves "" on 101 + valid accept, else a reason. */
export function probeUpgrade(port: number, path: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve) => {
    const { key, accept } = makeHandshakeKey();
    const socket = new Socket();
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (reason: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(reason);
    };
    const timer = setTimeout(() => finish("upgrade probe timed out"), timeoutMs);
    socket.on("error", (err) => finish(`upgrade probe: ${err.message}`));
    socket.on("close", () => finish("upgrade probe: connection closed"));
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const check = checkUpgradeResponse(buf.subarray(0, end).toString("latin1"), accept);
      finish(check.ok ? "" : `upgrade probe: ${check.reason}`);
    });
    socket.connect(port, "127.0.0.1", () => {
      socket.write(buildUpgradeRequest("127.0.0.1", port, path, key));
    });
  });
}
