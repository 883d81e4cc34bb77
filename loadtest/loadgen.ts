// WebSocket load generator on raw node:net sockets.
//
// Throughput mode: opens N connections, does the HTTP upgrade itself, keeps
// `inflight` pre-encoded masked text frames outstanding per connection and
// answers every reply with the next message. Replies are counted by parsing
// frame headers only; latency comes from a per-connection FIFO of send times.
//
// Idle mode: opens K connections, holds them, reports when all are open.
//
// Connect mode: upgrade storm (lib/connect-storm.ts): connect, upgrade, wait for the 101
// status line, close; `--concurrency` attempts in flight; reports accepted upgrades/s.
//
// Output: one JSON object per line on stdout ({"type": ...}); diagnostics on stderr.
//
//   node --import tsx loadtest/loadgen.ts --port 9001 --connections 100 --inflight 10 \
//        --action mock --bytes 64 --warmup 3 --duration 10
//   node --import tsx loadtest/loadgen.ts --mode idle --port 9001 --connections 19000
//   node --import tsx loadtest/loadgen.ts --mode connect --port 9001 --count 20000 --concurrency 200 --human

import { connect, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { Flags } from "./lib/args.ts";
import { runConnectStorm } from "./lib/connect-storm.ts";
import { Histogram, type HistogramJson } from "./lib/histogram.ts";
import { benchPayload } from "./lib/payloads.ts";
import { fdBudget } from "./lib/proc.ts";
import {
  buildFrameBatches,
  buildUpgradeRequest,
  checkUpgradeResponse,
  encodeClientFrame,
  type FrameSink,
  FrameParser,
  makeHandshakeKey,
  OPCODE_CLOSE,
  OPCODE_PING,
  OPCODE_PONG,
  OPCODE_TEXT,
} from "./lib/ws-frames.ts";

export interface Target {
  host: string;
  port: number;
  /**
   * Request path including the stage, e.g. "/bench" (may carry a query string).
   * `{i}` is replaced by the connection's index (plus indexBase), e.g. "/bench?token=t{i}".
   */
  path: string;
  indexBase: number;
}

export interface ThroughputOptions extends Target {
  connections: number;
  inflight: number;
  payload: string;
  /** Expected reply payload; null = do not check. */
  expectReply: string | null;
  warmupSec: number;
  durationSec: number;
  connectConcurrency: number;
  /** Print per-second rates to stderr. */
  progress: boolean;
}

export interface ThroughputResult {
  type: "result";
  connections: number;
  inflight: number;
  payloadBytes: number;
  seconds: number;
  messages: number;
  rate: number;
  p50us: number;
  p90us: number;
  p99us: number;
  p999us: number;
  maxUs: number;
  meanUs: number;
  /** Fraction of one core the load generator used during the measured window. */
  loadgenCpu: number;
  /** Replies per socket read during the measured window (server-side batching). */
  repliesPerRead: number;
  /** Average reply payload size in bytes over the measured window. */
  replyBytesAvg: number;
  /** Connections whose first reply differed from `expectReply`. */
  badReplies: number;
  /** First reply payload seen (truncated), to eyeball what the server answers. */
  sample: string;
  errors: number;
  closed: number;
  histogram: HistogramJson;
}

export interface IdleOptions extends Target {
  connections: number;
  connectConcurrency: number;
  retries: number;
}

export interface IdleReport {
  type: "idle-open" | "idle-status";
  open: number;
  failed: number;
  closedAfterOpen: number;
  ms: number;
  lastError: string;
}

const READ_BUFFER_BYTES = 256 * 1024;
const SAMPLE_LIMIT = 512;
const CRLFCRLF = Buffer.from("\r\n\r\n", "latin1");

/** One shared read buffer: reads are consumed synchronously, so all sockets can use it. */
const sharedReadBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);

const HS_PENDING = 0;
const HS_OPEN = 1;
const HS_DEAD = 2;

/** Per-run shared state the connections report into (kept flat for speed). */
class RunState {
  measuring = false;
  sending = false;
  messages = 0;
  reads = 0;
  errors = 0;
  closed = 0;
  lastError = "";
  onReplies: ((n: number) => void) | null = null;
  readonly histogram = new Histogram();
}

type OpenCallback = (conn: BenchConnection, err: Error | null) => void;

class BenchConnection implements FrameSink {
  readonly socket: Socket;
  private readonly parser: FrameParser;
  private hsState = HS_PENDING;
  private hsBytes: Buffer | null = null;
  private readonly expectedAccept: string;
  private readonly onOpen: OpenCallback;
  private readonly run: RunState;
  // Latency FIFO (ring buffer of send timestamps, ms).
  private readonly times: Float64Array;
  private head = 0;
  private inFlight = 0;
  private readonly batches: Buffer[];
  private readonly inflightTarget: number;
  private sample: Buffer | null = null;
  private sampleLen = 0;
  sampled = false;
  firstReply = "";

  constructor(
    target: Target,
    run: RunState,
    batches: Buffer[],
    inflight: number,
    handshake: { key: string; accept: string },
    index: number,
    onOpen: OpenCallback,
  ) {
    this.run = run;
    this.batches = batches;
    this.inflightTarget = inflight;
    this.times = new Float64Array(Math.max(1, inflight));
    this.expectedAccept = handshake.accept;
    this.onOpen = onOpen;
    this.parser = new FrameParser(this);
    this.socket = connect(
      {
        host: target.host,
        port: target.port,
        noDelay: true,
        onread: {
          buffer: sharedReadBuffer,
          callback: (nread: number) => {
            this.onRead(nread);
            return true;
          },
        },
      },
      () => {
        const path = target.path.replaceAll("{i}", String(target.indexBase + index));
        this.socket.write(buildUpgradeRequest(target.host, target.port, path, handshake.key));
      },
    );
    this.socket.on("error", (err: Error) => {
      this.run.errors++;
      this.run.lastError = err.message;
      if (this.hsState === HS_PENDING) this.fail(err);
    });
    this.socket.on("close", () => {
      if (this.hsState === HS_PENDING) this.fail(new Error("closed during handshake"));
      else if (this.hsState === HS_OPEN) {
        this.hsState = HS_DEAD;
        this.run.closed++;
      }
    });
  }

  get isOpen(): boolean {
    return this.hsState === HS_OPEN;
  }

  get replyBytes(): number {
    return this.parser.dataBytes;
  }

  private fail(err: Error): void {
    if (this.hsState !== HS_PENDING) return;
    this.hsState = HS_DEAD;
    this.socket.destroy();
    this.onOpen(this, err);
  }

  private onRead(nread: number): void {
    const buf = sharedReadBuffer;
    if (this.hsState === HS_OPEN) {
      this.onFrames(buf, 0, nread);
      return;
    }
    if (this.hsState !== HS_PENDING) return;
    const chunk = Buffer.from(buf.subarray(0, nread)); // copy: shared buffer is reused
    this.hsBytes = this.hsBytes === null ? chunk : Buffer.concat([this.hsBytes, chunk]);
    const end = this.hsBytes.indexOf(CRLFCRLF);
    if (end < 0) {
      if (this.hsBytes.length > 16 * 1024) this.fail(new Error("oversized handshake response"));
      return;
    }
    const head = this.hsBytes.subarray(0, end).toString("latin1");
    const check = checkUpgradeResponse(head, this.expectedAccept);
    if (!check.ok) {
      this.fail(new Error(`upgrade rejected: ${check.reason}`));
      return;
    }
    const rest = this.hsBytes.subarray(end + 4);
    this.hsBytes = null;
    this.hsState = HS_OPEN;
    this.parser.capture = true;
    this.onOpen(this, null);
    if (rest.length > 0) this.onFrames(rest, 0, rest.length);
  }

  /** Starts the closed loop: puts `inflight` messages on the wire in one write. */
  start(): void {
    if (this.hsState !== HS_OPEN) return;
    this.send(this.inflightTarget, performance.now());
  }

  private send(k: number, now: number): void {
    const times = this.times;
    const cap = times.length;
    let at = (this.head + this.inFlight) % cap;
    for (let i = 0; i < k; i++) {
      times[at] = now;
      at = at + 1 === cap ? 0 : at + 1;
    }
    this.inFlight += k;
    this.socket.write(this.batches[k]!);
  }

  private onFrames(buf: Buffer, start: number, end: number): void {
    const n = this.parser.feed(buf, start, end);
    if (n === 0) return;
    const run = this.run;
    const now = performance.now();
    const popped = Math.min(n, this.inFlight);
    const times = this.times;
    const cap = times.length;
    let head = this.head;
    if (run.onReplies !== null) run.onReplies(n);
    if (run.measuring) {
      run.messages += n;
      run.reads++;
      const hist = run.histogram;
      // Replies in one read share `now`; group equal send times (usually one batch).
      let i = 0;
      while (i < popped) {
        const t = times[head]!;
        let same = 1;
        head = head + 1 === cap ? 0 : head + 1;
        while (i + same < popped && times[head] === t) {
          same++;
          head = head + 1 === cap ? 0 : head + 1;
        }
        hist.recordN((now - t) * 1000, same);
        i += same;
      }
    } else {
      head = (head + popped) % cap;
    }
    this.head = head;
    this.inFlight -= popped;
    if (run.sending && this.inFlight < this.inflightTarget) {
      this.send(this.inflightTarget - this.inFlight, now);
    }
  }

  onPayloadBytes(chunk: Buffer, start: number, end: number): void {
    if (this.sample === null) this.sample = Buffer.allocUnsafe(SAMPLE_LIMIT);
    const take = Math.min(end - start, SAMPLE_LIMIT - this.sampleLen);
    if (take > 0) {
      chunk.copy(this.sample, this.sampleLen, start, start + take);
      this.sampleLen += take;
    }
  }

  onMessageComplete(): void {
    if (this.sampled) return;
    this.sampled = true;
    this.parser.capture = false;
    this.firstReply = this.sample === null ? "" : this.sample.toString("utf8", 0, this.sampleLen);
    this.sample = null;
  }

  onControl(opcode: number, payload: Buffer): void {
    if (opcode === OPCODE_PING) {
      this.socket.write(encodeClientFrame(OPCODE_PONG, payload, randomishMask()));
    } else if (opcode === OPCODE_CLOSE) {
      this.run.lastError = `server sent close ${payload.length >= 2 ? payload.readUInt16BE(0) : ""} ${payload.subarray(2).toString("utf8")}`;
      this.socket.end(encodeClientFrame(OPCODE_CLOSE, payload.subarray(0, 2), randomishMask()));
    }
  }

  onProtocolError(reason: string): void {
    this.run.errors++;
    this.run.lastError = reason;
    this.socket.destroy();
  }

  close(): void {
    this.hsState = HS_DEAD;
    this.socket.destroy();
  }
}

function randomishMask(): Uint8Array {
  const m = new Uint8Array(4);
  for (let i = 0; i < 4; i++) m[i] = (Math.random() * 256) | 0;
  return m;
}

/** Opens `count` connections with at most `concurrency` handshakes in flight. */
function openConnections(
  count: number,
  concurrency: number,
  retries: number,
  make: (index: number, onOpen: OpenCallback) => BenchConnection,
  onProgress?: (open: number) => void,
): Promise<{ open: BenchConnection[]; failed: number; lastError: string }> {
  return new Promise((resolve) => {
    const open: BenchConnection[] = [];
    let started = 0;
    let pending = 0;
    let failed = 0;
    let lastError = "";
    const attempts: number[] = [];
    const retryQueue: number[] = [];
    const launch = (slot: number) => {
      pending++;
      make(slot, (conn, err) => {
        pending--;
        if (err === null) {
          open.push(conn);
          onProgress?.(open.length);
        } else {
          lastError = err.message;
          attempts[slot] = (attempts[slot] ?? 0) + 1;
          if (attempts[slot]! <= retries) retryQueue.push(slot);
          else failed++;
        }
        pump();
      });
    };
    const pump = () => {
      while (pending < concurrency && (retryQueue.length > 0 || started < count)) {
        if (retryQueue.length > 0) launch(retryQueue.shift()!);
        else launch(started++);
      }
      if (pending === 0 && retryQueue.length === 0 && started >= count) {
        resolve({ open, failed, lastError });
      }
    };
    pump();
  });
}

function emit(obj: object): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

export async function runThroughput(opts: ThroughputOptions): Promise<ThroughputResult> {
  const payload = Buffer.from(opts.payload, "utf8");
  const frame = encodeClientFrame(OPCODE_TEXT, payload);
  const batches = buildFrameBatches(frame, opts.inflight);
  const handshake = makeHandshakeKey();
  const run = new RunState();

  const { open, failed, lastError } = await openConnections(
    opts.connections,
    opts.connectConcurrency,
    0,
    (index, onOpen) => new BenchConnection(opts, run, batches, opts.inflight, handshake, index, onOpen),
  );
  if (failed > 0 || open.length === 0) {
    for (const c of open) c.close();
    throw new Error(`${failed} of ${opts.connections} connections failed to open: ${lastError}`);
  }

  let total = 0;
  let ticker: NodeJS.Timeout | undefined;
  if (opts.progress) {
    let last = 0;
    ticker = setInterval(() => {
      const cpuNow = process.cpuUsage();
      process.stderr.write(`  ${total - last} msgs/s  cpu ${((cpuNow.user + cpuNow.system) / 1e3).toFixed(0)}ms\n`);
      last = total;
    }, 1000);
  }
  if (opts.progress) {
    run.onReplies = (n: number) => {
      total += n;
    };
  }
  run.sending = true;
  for (const c of open) c.start();
  emit({ type: "warmup-start", connections: open.length });

  await new Promise((r) => setTimeout(r, opts.warmupSec * 1000));
  const bytesAt = () => open.reduce((s, c) => s + c.replyBytes, 0);
  run.histogram.reset();
  run.messages = 0;
  run.reads = 0;
  const bytesStart = bytesAt();
  const cpuStart = process.cpuUsage();
  const t0 = performance.now();
  run.measuring = true;
  emit({ type: "measure-start" });

  await new Promise((r) => setTimeout(r, opts.durationSec * 1000));
  run.measuring = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const bytesEnd = bytesAt();
  emit({ type: "measure-end" });
  run.sending = false;
  if (ticker !== undefined) clearInterval(ticker);

  const messages = run.messages;
  const hist = run.histogram;
  let badReplies = 0;
  let sample = "";
  for (const c of open) {
    if (!c.sampled) continue;
    if (sample === "") sample = c.firstReply;
    if (opts.expectReply !== null && c.firstReply !== opts.expectReply) {
      badReplies++;
      sample = c.firstReply;
    }
  }
  for (const c of open) c.close();

  return {
    type: "result",
    connections: open.length,
    inflight: opts.inflight,
    payloadBytes: payload.length,
    seconds,
    messages,
    rate: messages / seconds,
    p50us: hist.percentile(50),
    p90us: hist.percentile(90),
    p99us: hist.percentile(99),
    p999us: hist.percentile(99.9),
    maxUs: hist.max,
    meanUs: hist.mean(),
    loadgenCpu: (cpu.user + cpu.system) / 1e6 / seconds,
    repliesPerRead: run.reads === 0 ? 0 : messages / run.reads,
    replyBytesAvg: messages === 0 ? 0 : (bytesEnd - bytesStart) / messages,
    badReplies,
    sample: sample.slice(0, 200),
    errors: run.errors,
    closed: run.closed,
    histogram: hist.toJSON(),
  };
}

/**
 * Idle mode: opens the connections, emits an "idle-open" report, then holds them.
 * Answers "status" lines on stdin with an "idle-status" report; exits when stdin
 * ends (the orchestrator closes it) or on SIGTERM.
 */
export async function runIdle(opts: IdleOptions): Promise<void> {
  const budget = fdBudget();
  if (opts.connections > budget) {
    throw new Error(
      `idle: ${opts.connections} connections exceed this process's fd budget (${budget}); split across processes`,
    );
  }
  const handshake = makeHandshakeKey();
  const run = new RunState();
  const batches = [Buffer.alloc(0)];
  const t0 = performance.now();
  const { open, failed, lastError } = await openConnections(
    opts.connections,
    opts.connectConcurrency,
    opts.retries,
    (index, onOpen) => new BenchConnection(opts, run, batches, 0, handshake, index, onOpen),
  );
  const report = (type: IdleReport["type"]): IdleReport => ({
    type,
    open: open.filter((c) => c.isOpen).length,
    failed,
    closedAfterOpen: run.closed,
    ms: Math.round(performance.now() - t0),
    lastError: lastError || run.lastError,
  });
  emit(report("idle-open"));

  await new Promise<void>((resolve) => {
    const rl = createInterface({ input: process.stdin });
    rl.on("line", (line) => {
      if (line.trim() === "status") emit(report("idle-status"));
    });
    rl.on("close", () => resolve());
    process.once("SIGTERM", () => resolve());
  });
  for (const c of open) c.close();
}

function main(): void {
  const f = new Flags(process.argv.slice(2));
  const target: Target = {
    host: f.string("host", "127.0.0.1"),
    port: f.number("port", 9001),
    path: f.string("path", "/bench"),
    indexBase: f.number("index-base", 0),
  };
  const mode = f.string("mode", "throughput");
  if (mode === "connect") {
    const close = f.string("close", "fin");
    if (close !== "fin" && close !== "rst") throw new Error(`--close expects fin or rst, got ${close}`);
    runConnectStorm(
      {
        ...target,
        tokens: f.list("tokens", []),
        warmup: f.number("warmup-count", 2000),
        count: f.number("count", 20_000),
        concurrency: f.number("concurrency", 200),
        close,
        timeoutMs: f.number("timeout-ms", 10_000),
      },
      emit,
    ).then(
      (result) => {
        if (f.bool("human")) {
          process.stderr.write(
            `${result.rate.toFixed(0)} accepted/s  (${result.accepted}/${result.attempted} accepted, ${result.rejected} rejected, ${result.errors} errors, ${result.timeouts} timeouts)  p50 ${(result.p50us / 1000).toFixed(2)} ms  p99 ${(result.p99us / 1000).toFixed(2)} ms  loadgen cpu ${(result.loadgenCpu * 100).toFixed(0)}%\n`,
          );
        }
        process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
      },
      (err: unknown) => {
        process.stderr.write(`loadgen: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
    return;
  }
  if (mode === "idle") {
    runIdle({
      ...target,
      connections: f.number("connections", 1000),
      connectConcurrency: f.number("connect-concurrency", 256),
      retries: f.number("retries", 3),
    }).then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`loadgen: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
    return;
  }
  const bytes = f.number("bytes", 64);
  const payload = f.optionalString("payload") ?? benchPayload(f.string("action", "mock"), bytes);
  let expectReply: string | null = f.optionalString("expect") ?? null;
  if (f.bool("expect-echo")) expectReply = payload;
  runThroughput({
    ...target,
    connections: f.number("connections", 100),
    inflight: f.number("inflight", 10),
    payload,
    expectReply,
    warmupSec: f.number("warmup", 3),
    durationSec: f.number("duration", 10),
    connectConcurrency: f.number("connect-concurrency", 100),
    progress: f.bool("progress"),
  }).then(
    (result) => {
      if (f.bool("human")) {
        process.stderr.write(
          `${result.rate.toFixed(0)} msgs/s  p50 ${(result.p50us / 1000).toFixed(3)} ms  p99 ${(result.p99us / 1000).toFixed(3)} ms  loadgen cpu ${(result.loadgenCpu * 100).toFixed(0)}%  replies/read ${result.repliesPerRead.toFixed(2)}\n`,
        );
      }
      emit(result);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`loadgen: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) main();
