// The servers under test: how to start each one (pinned), wait for readiness and stop it.

import { existsSync } from "node:fs";
import { request } from "node:http";
import { Socket } from "node:net";
import { join } from "node:path";
import { ChildLines, freePort, sleep, spawnPinned, stopProcessTree, tsNodeArgs } from "./proc.ts";
import { buildUpgradeRequest, checkUpgradeResponse, makeHandshakeKey } from "./ws-frames.ts";

export type ServerKind = "raw-uws" | "ws" | "gateway";

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
  kind: ServerKind;
  pid: number;
  port: number;
  /** WebSocket path (the stage). */
  path: string;
  lines: ChildLines;
  logFile: string | null;
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
  opts: { gatewayApi?: string } = {},
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
        "bench",
        ...env.gatewayArgs,
      ];
      // The gateway may log per request: keep its output off our pipes.
      logFile = join(env.logDir, `gateway-${tag}.log`);
      useHealthz = true;
      break;
  }
  const child = spawnPinned(process.execPath, cmdArgs, {
    cpus: env.cpus,
    cwd: env.root,
    ...(logFile !== null ? { logFile } : {}),
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
    stop: () => stopProcessTree(lines),
  };
  try {
    await waitReady(server, useHealthz, env.readyTimeoutMs);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}

async function waitReady(server: RunningServer, useHealthz: boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    if (server.lines.exited) {
      throw new Error(`${server.kind} exited with code ${server.lines.exitCode} before becoming ready${describeLog(server)}`);
    }
    if (useHealthz) {
      const status = await httpStatus(server.port, "/healthz", 1000);
      if (status === 200) return;
      last = `healthz: ${status}`;
    }
    const probe = await probeUpgrade(server.port, server.path, 1000);
    if (probe === "") return;
    last = probe;
    await sleep(200);
  }
  throw new Error(`${server.kind} not ready after ${timeoutMs} ms (${last})${describeLog(server)}`);
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
