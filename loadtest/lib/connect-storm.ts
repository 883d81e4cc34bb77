// Connect storm (loadgen --mode connect): WebSocket upgrades as fast as the server accepts
// them, on raw node:net sockets. Each attempt connects, writes a pre-built
// `GET <path> ... Upgrade: websocket` request, waits for the status line, counts
// `101` as accepted, and closes at once, so the server never holds more than about
// `concurrency` connections. At most `concurrency` attempts are in flight.
//
// First `warmup` attempts run unmeasured (JIT, authorizer cache warm-up), then `count`
// attempts are measured. Output (JSON lines on stdout): measure-start, measure-end, connect-result.

import { connect, type Socket } from "node:net";
import { Histogram, type HistogramJson } from "./histogram.ts";
import { buildUpgradeRequest, makeHandshakeKey } from "./ws-frames.ts";

export interface ConnectStormOptions {
  host: string;
  port: number;
  /** Path with query; `{t}` becomes tokens[i % tokens.length], `{i}` the attempt index (+ indexBase). */
  path: string;
  tokens: readonly string[];
  indexBase: number;
  warmup: number;
  count: number;
  concurrency: number;
  /** "fin": plain close (client keeps TIME_WAIT); "rst": abortive close (no TIME_WAIT anywhere). */
  close: "fin" | "rst";
  /** An attempt with no status line after this long counts as a timeout. */
  timeoutMs: number;
}

export interface ConnectResult {
  type: "connect-result";
  attempted: number;
  accepted: number;
  /** Answered with a status other than 101. */
  rejected: number;
  /** Socket errors or closes before a status line. */
  errors: number;
  timeouts: number;
  seconds: number;
  /** Accepted upgrades per second over the measured attempts. */
  rate: number;
  /** Epoch ms (performance.timeOrigin based) of the measured window, to merge several processes. */
  startedAt: number;
  endedAt: number;
  /** Connect start to status line, microseconds. */
  p50us: number;
  p90us: number;
  p99us: number;
  maxUs: number;
  loadgenCpu: number;
  /** Status code (or "error"/"timeout") -> count, measured attempts only. */
  statuses: Record<string, number>;
  lastError: string;
  histogram: HistogramJson;
}

const READ_BUFFER_BYTES = 64 * 1024;
/** "HTTP/1.1 101" is 12 bytes. */
const STATUS_BYTES = 12;

interface Phase {
  measuring: boolean;
  accepted: number;
  rejected: number;
  errors: number;
  timeouts: number;
  statuses: Map<string, number>;
  lastError: string;
  hist: Histogram;
}

function newPhase(measuring: boolean): Phase {
  return {
    measuring,
    accepted: 0,
    rejected: 0,
    errors: 0,
    timeouts: 0,
    statuses: new Map(),
    lastError: "",
    hist: new Histogram(),
  };
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/** One handshake attempt. Plain class with pre-bound callbacks: no closures per event. */
class Attempt {
  readonly startedAt: number;
  private readonly socket: Socket;
  private have = 0;
  private done = false;
  private readonly head = Buffer.allocUnsafe(STATUS_BYTES);

  constructor(
    opts: ConnectStormOptions,
    request: Buffer,
    readBuffer: Buffer,
    private readonly finish: (a: Attempt, outcome: string, detail: string) => void,
  ) {
    this.startedAt = performance.now();
    this.socket = connect(
      {
        host: opts.host,
        port: opts.port,
        // No TCP_NODELAY: the request is one write, and the setsockopt is one syscall more per attempt.
        onread: {
          buffer: readBuffer,
          callback: (nread: number, buf: Uint8Array) => {
            this.onRead(nread, buf);
            return true;
          },
        },
      },
      () => {
        this.socket.write(request);
      },
    );
    this.socket.on("error", (err: Error) => this.end("error", err.message));
    this.socket.on("close", () => this.end("error", "closed before the status line"));
  }

  private onRead(nread: number, buf: Uint8Array): void {
    if (this.done) return;
    const take = Math.min(nread, STATUS_BYTES - this.have);
    for (let i = 0; i < take; i++) this.head[this.have + i] = buf[i]!;
    this.have += take;
    if (this.have < STATUS_BYTES) return;
    // "HTTP/1.1 101": the status code is bytes 9..11.
    const status = this.head.toString("latin1", 9, 12);
    this.end(status, status === "101" ? "" : this.head.toString("latin1"));
  }

  end(outcome: string, detail: string): void {
    if (this.done) return;
    this.done = true;
    this.finish(this, outcome, detail);
  }

  close(rst: boolean): void {
    if (rst) this.socket.resetAndDestroy();
    else this.socket.destroy();
  }
}

function requestFactory(opts: ConnectStormOptions): (index: number) => Buffer {
  const { key } = makeHandshakeKey();
  const hasI = opts.path.includes("{i}");
  const tokens = opts.tokens.length > 0 ? opts.tokens : [""];
  const build = (index: number) => {
    const path = opts.path
      .replaceAll("{t}", tokens[index % tokens.length]!)
      .replaceAll("{i}", String(opts.indexBase + index));
    return buildUpgradeRequest(opts.host, opts.port, path, key);
  };
  if (hasI) return build;
  const prebuilt = tokens.map((_, k) => build(k));
  return (index) => prebuilt[index % prebuilt.length]!;
}

/** Runs `n` attempts (indices from `first`) with the window; resolves when all have finished. */
function runPhase(opts: ConnectStormOptions, phase: Phase, first: number, n: number, request: (i: number) => Buffer): Promise<void> {
  return new Promise((resolve) => {
    const readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
    const inFlight = new Set<Attempt>();
    let started = 0;
    let finished = 0;
    const rst = opts.close === "rst";
    const finish = (a: Attempt, outcome: string, detail: string) => {
      inFlight.delete(a);
      finished++;
      if (outcome === "101") {
        phase.accepted++;
        phase.hist.record((performance.now() - a.startedAt) * 1000);
      } else if (outcome === "error") {
        phase.errors++;
        phase.lastError = detail;
      } else if (outcome === "timeout") {
        phase.timeouts++;
        phase.lastError = detail;
      } else {
        phase.rejected++;
        phase.lastError = `answered ${JSON.stringify(detail)}`;
      }
      bump(phase.statuses, outcome);
      a.close(rst);
      pump();
    };
    const pump = () => {
      while (inFlight.size < opts.concurrency && started < n) {
        const a = new Attempt(opts, request(first + started), readBuffer, finish);
        started++;
        inFlight.add(a);
      }
      if (finished === n) {
        clearInterval(watchdog);
        resolve();
      }
    };
    const watchdog = setInterval(() => {
      const limit = performance.now() - opts.timeoutMs;
      for (const a of inFlight) if (a.startedAt < limit) a.end("timeout", `no status line within ${opts.timeoutMs} ms`);
    }, 250);
    pump();
  });
}

export async function runConnectStorm(opts: ConnectStormOptions, emit: (obj: object) => void): Promise<ConnectResult> {
  const request = requestFactory(opts);
  if (opts.warmup > 0) {
    const warm = newPhase(false);
    await runPhase(opts, warm, 0, opts.warmup, request);
    if (warm.accepted === 0) {
      throw new Error(`warmup: none of ${opts.warmup} upgrades was accepted (${warm.lastError})`);
    }
  }
  const phase = newPhase(true);
  const cpu0 = process.cpuUsage();
  const startedAt = epochNow();
  const t0 = performance.now();
  emit({ type: "measure-start" });
  await runPhase(opts, phase, opts.warmup, opts.count, request);
  const seconds = (performance.now() - t0) / 1000;
  const endedAt = epochNow();
  const cpu = process.cpuUsage(cpu0);
  emit({ type: "measure-end" });
  const h = phase.hist;
  return {
    type: "connect-result",
    attempted: opts.count,
    accepted: phase.accepted,
    rejected: phase.rejected,
    errors: phase.errors,
    timeouts: phase.timeouts,
    seconds,
    rate: phase.accepted / seconds,
    startedAt,
    endedAt,
    p50us: h.percentile(50),
    p90us: h.percentile(90),
    p99us: h.percentile(99),
    maxUs: h.max,
    loadgenCpu: (cpu.user + cpu.system) / 1e6 / seconds,
    statuses: Object.fromEntries(phase.statuses),
    lastError: phase.lastError,
    histogram: h.toJSON(),
  };
}
