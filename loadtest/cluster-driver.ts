// Load driver for the `cluster` scenario (runs pinned, like loadgen.ts). Two modes:
//
// --mode post: opens --connections WebSocket clients on --ws-port (node C), learns their
//   connection ids (route `whoami`), then fires @connections POSTs at --post-port (node A for
//   cross-node delivery, node C itself for the single-node figure) at a fixed --rate (open loop,
//   over --pool-connections (128) raw keep-alive HTTP/1.1 sockets, lib/http-raw.ts: a POST goes
//   to an idle socket; when all are busy it waits in the pool for the first one to free up, or,
//   with --pipelining N > 1, is pipelined onto the least busy socket first (not for the gateway:
//   uWS closes a connection that pipelines onto an asynchronous response). Request heads are
//   pre-encoded per target. Each POST body carries its send time; the client that receives it
//   records the end-to-end latency (same process, same clock; time queued in the pool counts).
//   The POST's own response latency is recorded too.
//
// --mode fanout: opens --per-node clients on each of --ports; --senders of them each keep one
//   `broadcast` message in flight (closed loop: a sender sends its next message when its own
//   broadcast comes back to it). Every broadcast reaches every client; the driver counts
//   delivered messages per second and the fan-out latency.
//
// Output: JSON lines on stdout (ready, measure-start, measure-end, post-result | fanout-result).
//
//   node --import tsx loadtest/cluster-driver.ts --mode post --ws-port 9003 --post-port 9001 \
//        --token "$GATEHOUSE_MANAGEMENT_TOKEN" --rate 5000 --duration 10
//   node --import tsx loadtest/cluster-driver.ts --mode fanout --ports 9001,9002,9003 --per-node 20 --senders 12

import { monitorEventLoopDelay } from "node:perf_hooks";
import { Flags } from "./lib/args.ts";
import { Histogram } from "./lib/histogram.ts";
import { RawHttpPool } from "./lib/http-raw.ts";
import { TextWsClient } from "./lib/ws-client.ts";

const HOST = "127.0.0.1";

function emit(obj: object): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Event-loop delay of this process over the measured window: a driver that stalls skews latencies. */
interface LoopDelay {
  loopP99Ms: number;
  loopMaxMs: number;
}

function loopMonitor(): { start(): void; stop(): LoopDelay } {
  const h = monitorEventLoopDelay({ resolution: 1 });
  return {
    start: () => {
      h.reset();
      h.enable();
    },
    stop: () => {
      h.disable();
      return { loopP99Ms: h.percentile(99) / 1e6, loopMaxMs: h.max / 1e6 };
    },
  };
}

interface LatencySummary {
  p50us: number;
  p90us: number;
  p99us: number;
  maxUs: number;
  count: number;
}

function summary(h: Histogram): LatencySummary {
  return { p50us: h.percentile(50), p90us: h.percentile(90), p99us: h.percentile(99), maxUs: h.max, count: h.count };
}

async function openClients(ports: readonly number[], perPort: number, stage: string): Promise<TextWsClient[]> {
  const clients: TextWsClient[] = [];
  for (const port of ports) {
    const batch = Array.from({ length: perPort }, () => new TextWsClient());
    await Promise.all(batch.map((c) => c.connect(HOST, port, `/${stage}`)));
    clients.push(...batch);
  }
  return clients;
}

/** Asks each client for its connection id (route `whoami`). */
async function connectionIds(clients: readonly TextWsClient[], timeoutMs: number): Promise<string[]> {
  return Promise.all(
    clients.map(
      (c) =>
        new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("no answer to whoami")), timeoutMs);
          c.onMessage = (text) => {
            try {
              const parsed: unknown = JSON.parse(text);
              const id = typeof parsed === "object" && parsed !== null && "connectionId" in parsed ? parsed.connectionId : undefined;
              if (typeof id === "string") {
                clearTimeout(timer);
                resolve(id);
              }
            } catch {
              // not the whoami answer
            }
          };
          c.send('{"action":"whoami"}');
        }),
    ),
  );
}

export interface PostResult extends LoopDelay {
  type: "post-result";
  connections: number;
  targetRate: number;
  seconds: number;
  /** POSTs sent in the measured window, and per second. */
  sent: number;
  rate: number;
  /** Measured POSTs answered (any status), answered 200, and by status. */
  answered: number;
  ok: number;
  statuses: Record<string, number>;
  requestErrors: number;
  /** Measured messages that reached their client (after the drain). */
  delivered: number;
  post: LatencySummary;
  e2e: LatencySummary;
  /** Largest delay between a POST's scheduled and actual send time (ms). */
  maxLagMs: number;
  loadgenCpu: number;
  closed: number;
  lastError: string;
}

async function runPost(f: Flags): Promise<PostResult> {
  const stage = f.string("stage", "bench");
  const wsPort = f.number("ws-port", 0);
  const postPort = f.number("post-port", wsPort);
  const n = f.number("connections", 100);
  const rate = f.number("rate", 5000);
  const warmupSec = f.number("warmup", 2);
  const durationSec = f.number("duration", 10);
  const token = f.string("token", process.env.GATEHOUSE_MANAGEMENT_TOKEN ?? "");
  const drainMs = f.number("drain-ms", 3000);
  /** 0: the POST target does not deliver (the driver-floor run): wait only for the responses. */
  const expectDelivery = f.number("expect-delivery", 1) !== 0;
  const clients = await openClients([wsPort], n, stage);
  const ids = await connectionIds(clients, 10_000);
  emit({ type: "ready", connections: clients.length });

  let delivered = 0;
  let closed = 0;
  let lastError = "";
  const e2e = new Histogram();
  const post = new Histogram();
  for (const c of clients) {
    c.onMessage = (text) => {
      const now = performance.now();
      // {"t":123.456,"s":42,"m":1}
      const m = text.charCodeAt(text.length - 2) === 49; // '1'
      if (!m) return;
      delivered++;
      const t = Number(text.slice(5, text.indexOf(",")));
      e2e.record((now - t) * 1000);
    };
    c.onClose = () => {
      closed++;
      lastError = c.lastError || "connection closed";
    };
  }

  let seq = 0;
  let sent = 0;
  let answered = 0;
  let ok = 0;
  let requestErrors = 0;
  const statuses = new Map<number, number>();
  const pool = new RawHttpPool({
    host: HOST,
    port: postPort,
    connections: f.number("pool-connections", 128),
    pipelining: f.number("pipelining", 1),
    handlers: {
      onResponse: (status, sentAt, flag, now) => {
        if (flag !== 1) return;
        answered++;
        post.record((now - sentAt) * 1000);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (status === 200) ok++;
      },
      onRequestFailed: (flag) => {
        if (flag === 1) requestErrors++;
      },
      onError: (message) => {
        lastError = message;
      },
    },
  });
  await pool.open();
  // Everything but the body's length and the body, per target connection.
  const heads = ids.map(
    (id) =>
      `POST /${stage}/@connections/${encodeURIComponent(id)} HTTP/1.1\r\nHost: ${HOST}:${postPort}\r\n` +
      `Authorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: `,
  );
  const fire = (flag: number) => {
    const i = seq++;
    const t = performance.now();
    const body = `{"t":${t},"s":${i},"m":${flag}}`;
    // The body is ASCII: its length is its byte length.
    if (!pool.send(`${heads[i % heads.length]!}${body.length}\r\n\r\n${body}`, t, flag)) {
      if (flag === 1) requestErrors++;
      lastError = "no open connection to POST on";
    }
  };

  let maxLagMs = 0;
  /** Sends at `rate` for `sec` seconds (flag 1 = measured); open loop, paced by a 1 ms timer. */
  const phase = (sec: number, flag: number) =>
    new Promise<number>((resolve) => {
      const start = performance.now();
      const end = start + sec * 1000;
      let count = 0;
      const tick = () => {
        const now = performance.now();
        const until = Math.min(now, end);
        const due = Math.floor(((until - start) * rate) / 1000);
        if (due > count) {
          const scheduled = start + (count * 1000) / rate;
          maxLagMs = flag === 1 ? Math.max(maxLagMs, now - scheduled) : maxLagMs;
        }
        while (count < due) {
          fire(flag);
          count++;
        }
        if (now >= end) {
          clearInterval(timer);
          resolve(count);
        }
      };
      const timer = setInterval(tick, 1);
    });

  if (warmupSec > 0) await phase(warmupSec, 0);
  const loop = loopMonitor();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  loop.start();
  emit({ type: "measure-start" });
  sent = await phase(durationSec, 1);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const loopDelay = loop.stop();
  emit({ type: "measure-end" });
  const drainUntil = performance.now() + drainMs;
  while ((pool.outstanding > 0 || (expectDelivery && delivered < sent)) && performance.now() < drainUntil) await sleep(20);
  for (const c of clients) c.close();
  const unanswered = pool.close();
  if (unanswered > 0) lastError = `${unanswered} POST(s) unanswered after the ${drainMs} ms drain`;
  return {
    type: "post-result",
    ...loopDelay,
    connections: clients.length,
    targetRate: rate,
    seconds,
    sent,
    rate: sent / seconds,
    answered,
    ok,
    statuses: Object.fromEntries([...statuses].map(([k, v]) => [String(k), v])),
    requestErrors,
    delivered,
    post: summary(post),
    e2e: summary(e2e),
    maxLagMs,
    loadgenCpu: (cpu.user + cpu.system) / 1e6 / seconds,
    closed,
    lastError,
  };
}

export interface FanoutResult extends LoopDelay {
  type: "fanout-result";
  nodes: number;
  connections: number;
  senders: number;
  seconds: number;
  /** Messages received by all clients during the measured window, per second. */
  deliveredRate: number;
  /** Broadcasts sent during the measured window, per second. */
  broadcastRate: number;
  /** Measured broadcasts x connections, and how many of those arrived (after the drain). */
  expected: number;
  delivered: number;
  latency: LatencySummary;
  /** Senders restarted after their own broadcast did not come back within 2 s. */
  stalls: number;
  loadgenCpu: number;
  closed: number;
  lastError: string;
}

async function runFanout(f: Flags): Promise<FanoutResult> {
  const stage = f.string("stage", "bench");
  const ports = f.list("ports", []).map(Number);
  if (ports.length === 0 || ports.some((p) => !Number.isInteger(p) || p <= 0)) throw new Error("--ports expects a comma list of ports");
  const perNode = f.number("per-node", 20);
  const senderCount = f.number("senders", 12);
  const warmupSec = f.number("warmup", 2);
  const durationSec = f.number("duration", 10);
  const drainMs = f.number("drain-ms", 3000);
  const clients = await openClients(ports, perNode, stage);
  emit({ type: "ready", connections: clients.length });

  // Senders spread over the nodes: sender k is client (k / nodes)-th on node (k % nodes).
  const senderOf = new Map<TextWsClient, number>();
  const senders: TextWsClient[] = [];
  for (let k = 0; k < Math.min(senderCount, clients.length); k++) {
    const node = k % ports.length;
    const c = clients[node * perNode + Math.floor(k / ports.length)]!;
    senderOf.set(c, k);
    senders.push(c);
  }
  let running = true;
  let flag = 0;
  let windowDelivered = 0;
  let measuredBroadcasts = 0;
  let windowBroadcasts = 0;
  let deliveredMeasured = 0;
  let closed = 0;
  let stalls = 0;
  let lastError = "";
  const lastSend = new Float64Array(senders.length);
  const seqs = new Uint32Array(senders.length);
  const latency = new Histogram();
  const send = (k: number) => {
    const c = senders[k]!;
    const t = performance.now();
    lastSend[k] = t;
    seqs[k] = seqs[k]! + 1;
    if (flag === 1) {
      measuredBroadcasts++;
      windowBroadcasts++;
    }
    // data = "<sender>|<seq>|<send time, integer us>|<measured 0/1>"
    c.send(`{"action":"broadcast","data":"${k}|${seqs[k]}|${Math.round(t * 1000)}|${flag}"}`);
  };
  // Up to 100k+ messages/s arrive here: parse the digits in place, no strings.
  const fields = [0, 0, 0, 0];
  const parse = (buf: Buffer, start: number, end: number): boolean => {
    let f = 0;
    let v = 0;
    for (let i = start; i < end; i++) {
      const ch = buf[i]!;
      if (ch === 0x7c) {
        if (f > 2) return false;
        fields[f++] = v;
        v = 0;
      } else if (ch >= 0x30 && ch <= 0x39) {
        v = v * 10 + (ch - 0x30);
      } else {
        return false;
      }
    }
    fields[f] = v;
    return f === 3;
  };
  for (const c of clients) {
    const own = senderOf.get(c);
    c.onMessageBytes = (buf, start, end) => {
      windowDelivered++;
      if (!parse(buf, start, end)) {
        lastError = `unexpected message ${JSON.stringify(buf.toString("utf8", start, Math.min(end, start + 100)))}`;
        return;
      }
      if (fields[3] === 1) {
        deliveredMeasured++;
        latency.record(performance.now() * 1000 - fields[2]!);
      }
      if (own !== undefined && running && fields[0] === own && fields[1] === seqs[own]) send(own);
    };
    c.onClose = () => {
      closed++;
      lastError = c.lastError || "connection closed";
    };
  }
  const watchdog = setInterval(() => {
    const limit = performance.now() - 2000;
    for (let k = 0; k < senders.length; k++) {
      if (running && lastSend[k]! < limit) {
        stalls++;
        send(k);
      }
    }
  }, 500);
  for (let k = 0; k < senders.length; k++) send(k);
  await sleep(warmupSec * 1000);
  const loop = loopMonitor();
  const cpu0 = process.cpuUsage();
  windowDelivered = 0;
  windowBroadcasts = 0;
  flag = 1;
  const t0 = performance.now();
  loop.start();
  emit({ type: "measure-start" });
  await sleep(durationSec * 1000);
  const seconds = (performance.now() - t0) / 1000;
  const inWindow = windowDelivered;
  const broadcastsInWindow = windowBroadcasts;
  const cpu = process.cpuUsage(cpu0);
  const loopDelay = loop.stop();
  flag = 0;
  running = false;
  emit({ type: "measure-end" });
  clearInterval(watchdog);
  const expected = measuredBroadcasts * clients.length;
  const drainUntil = performance.now() + drainMs;
  while (deliveredMeasured < expected && performance.now() < drainUntil) await sleep(20);
  for (const c of clients) c.close();
  return {
    type: "fanout-result",
    ...loopDelay,
    nodes: ports.length,
    connections: clients.length,
    senders: senders.length,
    seconds,
    deliveredRate: inWindow / seconds,
    broadcastRate: broadcastsInWindow / seconds,
    expected,
    delivered: deliveredMeasured,
    latency: summary(latency),
    stalls,
    loadgenCpu: (cpu.user + cpu.system) / 1e6 / seconds,
    closed,
    lastError,
  };
}

function main(): void {
  const f = new Flags(process.argv.slice(2));
  const mode = f.string("mode", "post");
  const run: Promise<PostResult | FanoutResult> = mode === "fanout" ? runFanout(f) : runPost(f);
  run.then(
    (result) => {
      // Exit only once the (possibly large) line is flushed into the pipe.
      process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
    },
    (err: unknown) => {
      process.stderr.write(`cluster-driver: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}

main();
