import { randomBytes } from 'node:crypto';
import type { ClusterNode, RedisOptions } from 'ioredis';
import { Cluster, Redis } from 'ioredis';
import { Packr } from 'msgpackr';
import { DeadlineEntry, type DeadlineList, deadlineList, trackIn, untrack } from '../integrations/deadlines.ts';
import { createLogger } from '../log.ts';
import { StringTable } from '../string-table.ts';
import type {
  ClusterState,
  CommandHandler,
  CommandOutcome,
  ConnectionOwner,
  ConnectionRecord,
  NodeCommand,
} from './cluster-state.ts';
import { ClusterUnavailableError } from './cluster-state.ts';

/**
 * Redis-backed cluster state: many gateway nodes share one connection registry and reach each
 * other over Redis pub/sub.
 *
 * Key layout (P = keyPrefix, R = `P{P}`: every registry key starts with P, so an ACL such as
 * `~P*` covers it, and carries the hash tag `{P}`, so every registry key lives in ONE slot and
 * each Lua script below is atomic in Redis Cluster too):
 *   R nodes               set     node ids that may hold registrations (swept for dead nodes)
 *   R hb:<nodeId>         string  heartbeat: this node's session id, PX nodeTtlMs
 *   R conn:<connId>       hash    n=nodeId s=stage la=lastActiveAt r=record JSON
 *   R nodeconns:<nodeId>  set     connection ids held by a node
 *   R stage:<stage>       set     connection ids of a stage (listConnections)
 *   R epoch               string  random id set by the first heartbeat on an empty registry
 *   R synced              set     node ids that re-registered everything they hold in this epoch
 *   P cache:<key>         string  cacheSet/cacheGet, JSON, PX ttl (no hash tag: spread over slots)
 *   P inbox:<nodeId>      channel commands to a node and replies to its requests, msgpack
 *
 * Liveness: a node refreshes `hb:<nodeId>` every heartbeatIntervalMs while both of its Redis
 * connections are up and its inbox is subscribed. A record whose node has no heartbeat key is
 * treated as absent at once (getConnection/listConnections check it inside the same script), and
 * every live node's sweep deletes such nodes' records in batches (the purge script re-checks the
 * heartbeat atomically, so a node that comes back is never purged by a stale sweep).
 *
 * Commands: sendToNode publishes `{t:'c', i, f, s, c}` to the owner's inbox; the owner runs its
 * handler one command at a time per connection (in arrival order; more than 1000 waiting behind a
 * stuck handler are answered 'throttled') and publishes `{t:'r', i, s, o}` to the sender's inbox.
 * Messages for one inbox issued in the same event-loop turn leave as ONE publish (a msgpack array
 * of messages when there are several), in call order: under load a node sends one publish per
 * peer per turn instead of one per command, and the receiver decodes one payload.
 * Standalone PUBLISH / SPUBLISH report their receivers: 0 with no heartbeat key resolves 'gone'
 * at once, 0 with a live heartbeat (inbox resubscribing) rejects ClusterUnavailableError. Classic
 * pub/sub in a cluster cannot count receivers, so the heartbeat key is checked after publishing.
 * No reply within commandTimeoutMs, or the Redis connection dropping meanwhile, rejects
 * ClusterUnavailableError. Commands to this node's own id run the handler directly.
 *
 * Outages: commands fail fast while Redis is unreachable (ClusterUnavailableError) and nothing is
 * buffered: the standalone clients run with the offline queue off, every call is gated on
 * isReady(), and maxRetriesPerRequest 0 fails in-flight commands when a connection drops.
 * registerConnection/unregisterConnection/touchConnections update a local copy of what this
 * node holds and do not fail on an outage; when the heartbeat finds its key missing (Redis
 * restarted, or this node was declared dead) or a write failed, the node re-registers its local
 * copy and removes registrations it no longer holds. getConnection answers this node's own
 * connections from the local copy. cacheGet/cacheSet degrade to miss/no-op.
 *
 * Data loss (Redis restarted without persistence, FLUSHALL, failover to an empty replica): the
 * heartbeat sees a different `epoch`. Until every node this node saw alive before has
 * re-registered (joined `synced`), or nodeTtlMs has passed, a registry miss is not proof that a
 * connection is gone: getConnection rejects ClusterUnavailableError (503) instead of answering
 * undefined (410), so that no application drops a live connection because of a Redis restart.
 */
export interface RedisClusterStateOptions {
  /** `redis://[user:pass@]host:port[/db]`, or with `cluster: true` a comma-separated list of seed nodes. */
  url: string;
  cluster?: boolean;
  /** Required, non-empty: isolates deployments sharing a Redis. */
  keyPrefix: string;
  nodeId: string;
  /** Default 5000. */
  heartbeatIntervalMs?: number;
  /** A node whose heartbeat is older than this is dead and its connections are purged. Default 15000. */
  nodeTtlMs?: number;
  /** A sendToNode without a reply by then rejects ClusterUnavailableError; also the per-command Redis timeout. Default 2000. */
  commandTimeoutMs?: number;
  /** start() waits this long for Redis before continuing without it (reconnects in the background). Default 10000. */
  startTimeoutMs?: number;
  /** Cluster only: SPUBLISH/SSUBSCRIBE. Default: detected at start (COMMAND INFO SPUBLISH). Must match on every node. */
  shardedPubSub?: boolean;
  now?: () => number;
  logger?: { warn(obj: object, msg: string): void; info(obj: object, msg: string): void };
}

type Client = Redis | Cluster;
type Logger = NonNullable<RedisClusterStateOptions['logger']>;

const BATCH = 500; // records/ids per script call
const RECONNECT_MAX_DELAY_MS = 2000;
const WARN_EVERY_MS = 5000;
/** Commands waiting behind a still-running handler for one connection; more are answered 'throttled'. */
const MAX_QUEUED_PER_CONNECTION = 1000;

/** Every registry script gets KEYS[1] = R..'nodes' (routes it to the registry slot) and ARGV[1] = R. */
/**
 * Lua: the members of a stage whose node is alive (heartbeat present), each emitted as two
 * values. `fields` are read from the connection hash and must start with 'n' (node) and 's'
 * (stage); `emit` names what to return per member (`id`, `v[1]`, `v[2]`, ...).
 */
function liveStageMembers(fields: string, emit: string): string {
  return `
local R, stage = ARGV[1], ARGV[2]
local alive, out = {}, {}
for _, id in ipairs(redis.call('SMEMBERS', R .. 'stage:' .. stage)) do
  local v = redis.call('HMGET', R .. 'conn:' .. id, ${fields})
  if v[1] and v[2] == stage then
    local ok = alive[v[1]]
    if ok == nil then
      ok = redis.call('EXISTS', R .. 'hb:' .. v[1]) == 1
      alive[v[1]] = ok
    end
    if ok then
      local a, b = ${emit}
      out[#out + 1] = a
      out[#out + 1] = b
    end
  end
end
return out`;
}

const SCRIPTS = {
  // ARGV: R, nodeId, session, ttlMs, epochIfNone -> {the session the key held before (nil if it
  // had expired), the registry epoch}
  ghHeartbeat: `
local hb = ARGV[1] .. 'hb:' .. ARGV[2]
local prev = redis.call('GET', hb)
redis.call('SET', hb, ARGV[3], 'PX', ARGV[4])
redis.call('SADD', KEYS[1], ARGV[2])
local epoch = redis.call('GET', ARGV[1] .. 'epoch')
if not epoch then
  epoch = ARGV[5]
  redis.call('SET', ARGV[1] .. 'epoch', epoch)
end
return {prev, epoch}`,
  // ARGV: R, syncedNode ('' = none: else that node is marked re-registered), then (id, nodeId, stage, lastActiveAt, json)*
  ghRegister: `
local R = ARGV[1]
if ARGV[2] ~= '' then redis.call('SADD', R .. 'synced', ARGV[2]) end
for i = 3, #ARGV, 5 do
  local id, node, stage = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local key = R .. 'conn:' .. id
  local old = redis.call('HMGET', key, 'n', 's')
  if old[1] then
    redis.call('SREM', R .. 'nodeconns:' .. old[1], id)
    redis.call('SREM', R .. 'stage:' .. old[2], id)
  end
  redis.call('HSET', key, 'n', node, 's', stage, 'la', ARGV[i + 3], 'r', ARGV[i + 4])
  redis.call('SADD', R .. 'nodeconns:' .. node, id)
  redis.call('SADD', R .. 'stage:' .. stage, id)
  redis.call('SADD', KEYS[1], node)
end
return 1`,
  // ARGV: R, expectedNodeId ('' = any), ids... -> number removed
  ghUnregister: `
local R, expected, removed = ARGV[1], ARGV[2], 0
for i = 3, #ARGV do
  local id = ARGV[i]
  local key = R .. 'conn:' .. id
  local old = redis.call('HMGET', key, 'n', 's')
  if old[1] and (expected == '' or expected == old[1]) then
    redis.call('DEL', key)
    redis.call('SREM', R .. 'nodeconns:' .. old[1], id)
    redis.call('SREM', R .. 'stage:' .. old[2], id)
    removed = removed + 1
  end
end
return removed`,
  // ARGV: R, id -> {json, lastActiveAt} or nil when absent or its node is dead
  ghGet: `
local v = redis.call('HMGET', ARGV[1] .. 'conn:' .. ARGV[2], 'n', 'la', 'r')
if not v[1] then return false end
if redis.call('EXISTS', ARGV[1] .. 'hb:' .. v[1]) == 0 then return false end
return {v[3], v[2]}`,
  // ARGV: R, stage -> flat {json, lastActiveAt}* of live nodes' records
  ghList: liveStageMembers(`'n', 's', 'la', 'r'`, 'v[4], v[3]'),
  // The same selection as (id, node) pairs: what a broadcast needs, without the record blobs
  ghOwners: liveStageMembers(`'n', 's'`, 'id, v[1]'),
  // ARGV: R, then (id, lastActiveAt)*; only moves lastActiveAt forward, ignores unknown ids
  ghTouch: `
local R = ARGV[1]
for i = 2, #ARGV, 2 do
  local key = R .. 'conn:' .. ARGV[i]
  local cur = redis.call('HGET', key, 'la')
  if cur and tonumber(cur) < tonumber(ARGV[i + 1]) then redis.call('HSET', key, 'la', ARGV[i + 1]) end
end
return 1`,
  // ARGV: R -> {node ids in the nodes set without a heartbeat key, node ids with one}
  ghDeadNodes: `
local dead, live = {}, {}
for _, n in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. 'hb:' .. n) == 0 then dead[#dead + 1] = n else live[#live + 1] = n end
end
return {dead, live}`,
  // ARGV: R, nodeId, limit, force ('1': own deregistration) -> {removed, left}, {-1, -1} if alive
  ghPurge: `
local R, node = ARGV[1], ARGV[2]
local hb = R .. 'hb:' .. node
if ARGV[4] ~= '1' and redis.call('EXISTS', hb) == 1 then return {-1, -1} end
-- A node leaving on close stays in 'synced': a rebuild may still be waiting to see it there.
if ARGV[4] ~= '1' then redis.call('SREM', R .. 'synced', node) end
local set = R .. 'nodeconns:' .. node
local removed = 0
for _, id in ipairs(redis.call('SPOP', set, tonumber(ARGV[3]))) do
  local key = R .. 'conn:' .. id
  local v = redis.call('HMGET', key, 'n', 's')
  if v[1] == node then
    redis.call('DEL', key)
    redis.call('SREM', R .. 'stage:' .. v[2], id)
    removed = removed + 1
  end
end
local left = redis.call('SCARD', set)
if left == 0 then
  redis.call('SREM', KEYS[1], node)
  if ARGV[4] == '1' then redis.call('DEL', hb) end
end
return {removed, left}`,
} as const;

type ScriptName = keyof typeof SCRIPTS;
type ScriptFn = (...args: Array<string | number>) => Promise<unknown>;

/** Bus messages (msgpack): a command to the owner, and its reply to the sender's inbox. */
interface CommandMessage {
  t: 'c';
  i: number;
  f: string;
  s: string;
  c: NodeCommand;
}
interface ReplyMessage {
  t: 'r';
  i: number;
  s: string;
  o?: CommandOutcome;
  e?: string;
}

type BusMessage = CommandMessage | ReplyMessage;

/** Messages for one inbox waiting for the end of the event-loop turn (each already encoded), and the command ids among them. */
interface OutboxEntry {
  parts: Buffer[];
  ids: number[];
}

/** The msgpack header of an array of n elements. */
function msgpackArrayHeader(n: number): Buffer {
  if (n < 16) return Buffer.from([0x90 | n]);
  if (n < 0x10000) return Buffer.from([0xdc, n >> 8, n & 0xff]);
  const b = Buffer.allocUnsafe(5);
  b[0] = 0xdd;
  b.writeUInt32BE(n, 1);
  return b;
}

/**
 * The commands awaiting replies, by id. A dictionary-mode object rather than a `Map`: with a
 * `Map` here, every cross-node command's state (its promise, the HTTP request behind it) was
 * promoted to the old generation although it lived well under a millisecond: ~200 B per command,
 * a scavenge that copied ~550 KB and a mark-compact every ~2 s at 5,000 posts/s, which set the
 * POST latency tail (measured with --trace-gc-nvp; the object table promotes ~4 KB per scavenge).
 */
class PendingTable {
  private byId: Record<number, Pending> = Object.create(null) as Record<number, Pending>;
  private count = 0;
  get size(): number {
    return this.count;
  }
  get(id: number): Pending | undefined {
    return this.byId[id];
  }
  has(id: number): boolean {
    return this.byId[id] !== undefined;
  }
  set(id: number, p: Pending): void {
    if (this.byId[id] === undefined) this.count++;
    this.byId[id] = p;
  }
  delete(id: number): boolean {
    if (this.byId[id] === undefined) return false;
    delete this.byId[id];
    this.count--;
    return true;
  }
  keys(): number[] {
    return Object.keys(this.byId).map(Number);
  }
}

/**
 * A command waiting for its reply. Timed out by the shared coarse deadline ticker rather than a
 * timer per command (thousands of commands per second each arming and clearing a setTimeout).
 */
class Pending extends DeadlineEntry {
  constructor(
    readonly state: RedisClusterState,
    readonly id: number,
    readonly nodeId: string,
    readonly resolve: (o: CommandOutcome) => void,
    readonly reject: (err: Error) => void,
  ) {
    super();
  }
  expire(): void {
    this.state.expireCommand(this);
  }
}

export class RedisClusterState implements ClusterState {
  readonly kind = 'redis';
  readonly nodeId: string;
  private readonly opts: RedisClusterStateOptions;
  private readonly heartbeatIntervalMs: number;
  private readonly nodeTtlMs: number;
  private readonly commandTimeoutMs: number;
  private readonly startTimeoutMs: number;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly reg: string;
  private readonly cachePrefix: string;
  private readonly inboxPrefix: string;
  private readonly inbox: string;
  /** Distinguishes this process from an earlier one with the same nodeId. */
  private readonly session = randomBytes(8).toString('hex');
  /** copyBuffers: a post's data must not alias the client's read buffer, the handler may keep it. */
  private readonly packr = new Packr({ useRecords: false, encodeUndefinedAsNil: true, copyBuffers: true });
  /** What this node registered: re-registered after an outage. */
  private readonly local = new StringTable<ConnectionRecord>();
  private readonly pending = new PendingTable();
  private readonly deadlines: DeadlineList;
  /** Tail and length of the command chain per connection while a handler is still running (in-order delivery). */
  private readonly chains = new Map<string, { tail: Promise<void>; depth: number }>();
  private readonly lastWarn = new Map<string, number>();
  /** Per destination node id: bus messages to publish at the end of this event-loop turn. */
  private outbox = new Map<string, OutboxEntry>();
  private flushScheduled = false;
  private readyWaiters: Array<() => void> = [];
  private main: Client | undefined;
  private sub: Client | undefined;
  private sharded = false;
  private subscribed = false;
  private subscribing = false;
  private wasReady = false;
  private resyncNeeded = false;
  private ticking = false;
  private tickAgain = false;
  private closed = false;
  private seq = 0;
  private timer: NodeJS.Timeout | undefined;
  private handler: CommandHandler | undefined;
  /** The registry epoch seen by the last heartbeat; a different one means Redis lost its data. */
  private epoch: string | undefined;
  /** Other nodes alive at the last sweep, plus those seen since (records read, commands received). */
  private readonly knownAlive = new Set<string>();
  /** False from losing Redis until the next heartbeat has checked the epoch: until then a miss is not authoritative. */
  private epochChecked = false;
  /** After a data loss: until when, and which nodes still have to re-register, misses are not authoritative. */
  private rebuild: { until: number; waiting: Set<string> } | undefined;

  constructor(opts: RedisClusterStateOptions) {
    if (!opts.keyPrefix) throw new Error('RedisClusterState: keyPrefix is required');
    if (!opts.nodeId) throw new Error('RedisClusterState: nodeId is required');
    if (!opts.cluster && opts.url.includes(',')) throw new Error('RedisClusterState: several URLs need cluster: true');
    this.opts = opts;
    this.nodeId = opts.nodeId;
    this.heartbeatIntervalMs = opts.heartbeatIntervalMs ?? 5000;
    this.nodeTtlMs = opts.nodeTtlMs ?? 15_000;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? 2000;
    this.startTimeoutMs = opts.startTimeoutMs ?? 10_000;
    this.deadlines = deadlineList(this.commandTimeoutMs);
    if (this.nodeTtlMs <= this.heartbeatIntervalMs) {
      throw new Error('RedisClusterState: nodeTtlMs must be greater than heartbeatIntervalMs');
    }
    this.now = opts.now ?? Date.now;
    this.log = opts.logger ?? createLogger({ component: 'cluster', nodeId: opts.nodeId });
    const p = opts.keyPrefix;
    this.reg = `${p}{${p}}`;
    this.cachePrefix = `${p}cache:`;
    this.inboxPrefix = `${p}inbox:`;
    this.inbox = this.inboxPrefix + opts.nodeId;
  }

  /**
   * Connects both clients and sends the first heartbeat. If Redis cannot be reached within
   * startTimeoutMs it resolves anyway: the node serves locally and keeps reconnecting.
   */
  async start(): Promise<void> {
    if (this.main || this.closed) return;
    const main = this.createClient();
    this.main = main;
    for (const [name, lua] of Object.entries(SCRIPTS)) main.defineCommand(name, { lua, numberOfKeys: 1 });
    this.watch(main, 'main');
    await main.connect().catch((err: unknown) => this.warn('connect', { err: errText(err) }, 'redis connect failed, retrying'));
    if (this.opts.cluster) this.sharded = this.opts.shardedPubSub ?? (await this.detectShardedPubSub(main));
    if (this.closed) return; // close() ran meanwhile and disconnected main
    const sub = this.createSubscriber(main);
    this.sub = sub;
    this.watch(sub, 'sub');
    const onMessage = (_channel: Buffer, message: Buffer) => this.onBusMessage(message);
    sub.on(this.sharded ? 'smessageBuffer' : 'messageBuffer', onMessage);
    await sub.connect().catch((err: unknown) => this.warn('connect-sub', { err: errText(err) }, 'redis subscriber connect failed, retrying'));
    const ready = await this.waitReady(this.startTimeoutMs);
    if (this.closed) return;
    if (ready) await this.runTick();
    else this.log.warn({ nodeId: this.nodeId }, 'cluster state not reachable at start; serving locally and retrying');
    if (this.closed) return;
    this.timer = setInterval(() => this.background(this.runTick(), 'heartbeat'), this.heartbeatIntervalMs);
    this.timer.unref();
  }

  isReady(): boolean {
    return !this.closed && this.subscribed && this.main?.status === 'ready' && this.sub?.status === 'ready';
  }

  /** After close() (the node is draining) registration calls are no-ops. */
  async registerConnection(rec: ConnectionRecord): Promise<void> {
    if (this.closed) return;
    const copy = { ...rec };
    this.local.set(rec.connectionId, copy);
    if (!this.isReady()) {
      this.resyncNeeded = true;
      return;
    }
    try {
      await this.script('ghRegister', ['', ...registerArgs([copy])]);
    } catch (err) {
      this.resyncNeeded = true;
      this.warn('register', { err: errText(err) }, 'registering a connection failed; will re-register');
    }
  }

  async unregisterConnection(connectionId: string): Promise<void> {
    if (this.closed) return; // close() already deregistered everything this node held
    const wasLocal = this.local.delete(connectionId);
    if (!this.isReady()) {
      if (wasLocal) {
        this.resyncNeeded = true;
        return;
      }
      throw new ClusterUnavailableError('cluster state unavailable: cannot unregister a remote connection');
    }
    try {
      await this.script('ghUnregister', ['', connectionId]);
    } catch (err) {
      if (!wasLocal) throw this.unavailable(err);
      this.resyncNeeded = true;
      this.warn('unregister', { err: errText(err) }, 'unregistering a connection failed; will resync');
    }
  }

  async getConnection(connectionId: string): Promise<ConnectionRecord | undefined> {
    const own = this.local.get(connectionId);
    if (own) return { ...own };
    this.assertReady();
    const reply = await this.call(() => this.script('ghGet', [connectionId]));
    if (Array.isArray(reply)) {
      const rec = this.decodeRecord(reply[0], reply[1]);
      if (rec && rec.nodeId !== this.nodeId) this.knownAlive.add(rec.nodeId);
      return rec;
    }
    if (!(await this.registryComplete())) {
      throw new ClusterUnavailableError('cluster state unavailable: the registry is being rebuilt after Redis lost its data');
    }
    return undefined;
  }

  /** False while a registry rebuild after a data loss is still under way (see the class comment). */
  private async registryComplete(): Promise<boolean> {
    if (!this.epochChecked) return false;
    const r = this.rebuild;
    if (!r) return true;
    if (this.now() < r.until && r.waiting.size > 0) {
      const synced = await this.call(() => this.requireMain().smembers(`${this.reg}synced`));
      for (const n of synced) r.waiting.delete(n);
    }
    if (this.now() < r.until && r.waiting.size > 0) return false;
    if (this.rebuild === r) this.rebuild = undefined;
    this.log.info({ nodeId: this.nodeId, missing: [...r.waiting] }, 'registry rebuilt after data loss');
    return true;
  }

  async listConnections(stage: string): Promise<ConnectionRecord[]> {
    this.assertReady();
    const reply = await this.call(() => this.script('ghList', [stage]));
    const out: ConnectionRecord[] = [];
    if (!Array.isArray(reply)) return out;
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const rec = this.decodeRecord(reply[i], reply[i + 1]);
      if (rec) out.push(rec);
    }
    return out;
  }

  async listConnectionOwners(stage: string): Promise<ConnectionOwner[]> {
    this.assertReady();
    const reply = await this.call(() => this.script('ghOwners', [stage]));
    const out: ConnectionOwner[] = [];
    if (!Array.isArray(reply)) return out;
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const connectionId = reply[i];
      const nodeId = reply[i + 1];
      if (typeof connectionId === 'string' && typeof nodeId === 'string') out.push({ connectionId, nodeId });
    }
    return out;
  }

  async touchConnections(updates: ReadonlyArray<{ connectionId: string; lastActiveAt: number }>): Promise<void> {
    if (this.closed) return;
    const args: Array<string | number> = [];
    for (const u of updates) {
      const rec = this.local.get(u.connectionId);
      if (rec && u.lastActiveAt > rec.lastActiveAt) rec.lastActiveAt = u.lastActiveAt;
      args.push(u.connectionId, u.lastActiveAt);
    }
    if (!this.isReady() || args.length === 0) return; // the local copy carries lastActiveAt into a resync
    const calls: Array<Promise<unknown>> = [];
    for (let i = 0; i < args.length; i += 2 * BATCH) calls.push(this.script('ghTouch', args.slice(i, i + 2 * BATCH)));
    const results = await Promise.allSettled(calls);
    for (const r of results) {
      if (r.status === 'rejected') this.warn('touch', { err: errText(r.reason) }, 'touchConnections failed');
    }
  }

  async sendToNode(nodeId: string, cmd: NodeCommand): Promise<CommandOutcome> {
    if (nodeId === this.nodeId) {
      if (!this.handler) return { status: 'gone' };
      return this.handler(cmd);
    }
    this.assertReady();
    const id = ++this.seq;
    const msg: CommandMessage = { t: 'c', i: id, f: this.nodeId, s: this.session, c: cmd };
    return new Promise<CommandOutcome>((resolve, reject) => {
      const p = new Pending(this, id, nodeId, resolve, reject);
      this.pending.set(id, p);
      trackIn(this.deadlines, p, Date.now() + this.commandTimeoutMs);
      // Queued synchronously and flushed in order on one connection: commands leave in call order (ordering contract).
      this.post(nodeId, msg, id);
    });
  }

  onCommand(handler: CommandHandler): void {
    if (this.handler) throw new Error('onCommand: a handler is already installed');
    this.handler = handler;
  }

  async cacheGet<T>(key: string): Promise<T | undefined> {
    if (!this.isReady() || !this.main) return undefined;
    let raw: string | null;
    try {
      raw = await this.main.get(this.cachePrefix + key);
    } catch (err) {
      this.warn('cache', { err: errText(err) }, 'cacheGet failed; treating as a miss');
      return undefined;
    }
    if (raw === null) return undefined;
    try {
      return JSON.parse(raw) as T;
    } catch (err) {
      this.warn('cache-parse', { key, err: errText(err) }, 'cache entry is not JSON; treating as a miss');
      return undefined;
    }
  }

  async cacheSet(key: string, value: unknown, ttlMs: number): Promise<void> {
    const ttl = Math.ceil(ttlMs);
    if (ttl <= 0 || !this.isReady() || !this.main) return;
    try {
      await this.main.set(this.cachePrefix + key, JSON.stringify(value), 'PX', ttl);
    } catch (err) {
      this.warn('cache', { err: errText(err) }, 'cacheSet failed; entry not cached');
    }
  }

  /** Unsubscribes, deregisters this node's connections and heartbeat, and quits both clients. */
  async close(): Promise<void> {
    if (this.closed) return;
    const ready = this.isReady();
    this.flushOutbox(); // replies already computed still go out
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    for (const id of this.pending.keys()) this.settle(id, new ClusterUnavailableError('cluster state closed'));
    for (const wake of this.readyWaiters.splice(0)) wake();
    const { main, sub } = this;
    if (ready && main && sub) {
      try {
        await (this.sharded ? sub.sunsubscribe(this.inbox) : sub.unsubscribe(this.inbox));
        for (;;) {
          const [, left] = toNumbers(await this.script('ghPurge', [this.nodeId, BATCH, '1']));
          if (!left || left <= 0) break;
        }
      } catch (err) {
        this.log.warn({ err: errText(err) }, 'deregistering on close failed; the heartbeat TTL will purge');
      }
    }
    this.local.clear();
    await Promise.all([sub && this.quitClient(sub), main && this.quitClient(main)]);
  }

  // ---- internals -------------------------------------------------------------------------

  private async quitClient(client: Client): Promise<void> {
    if (client.status === 'ready') {
      try {
        await client.quit();
        return;
      } catch (err) {
        this.log.warn({ err: errText(err) }, 'redis QUIT failed; disconnecting');
      }
    }
    client.disconnect();
  }

  /** Runs a background task whose failure is only logged. */
  private background(p: Promise<unknown>, what: string): void {
    p.catch((err: unknown) => this.log.warn({ err: errText(err) }, `${what} failed`));
  }

  private createClient(): Client {
    const retryStrategy = (times: number) =>
      Math.min(50 * 2 ** Math.min(times, 6), RECONNECT_MAX_DELAY_MS) + Math.floor(Math.random() * 100);
    const common = {
      lazyConnect: true,
      commandTimeout: this.commandTimeoutMs,
      connectTimeout: Math.max(this.commandTimeoutMs, 1000),
      maxRetriesPerRequest: 0, // in-flight commands fail when the connection drops
      autoResendUnfulfilledCommands: false,
      autoResubscribe: false, // we resubscribe on 'ready' to know when the inbox is live
      connectionName: `gatehouse:${this.nodeId}`,
    } satisfies RedisOptions;
    if (!this.opts.cluster) {
      // Fail fast while disconnected, never buffer.
      return new Redis(this.opts.url, { ...common, enableOfflineQueue: false, retryStrategy });
    }
    const { seeds, auth } = parseSeeds(this.opts.url);
    const { lazyConnect, ...redisOptions } = common;
    return new Cluster(seeds, {
      lazyConnect,
      // With the offline queue off, ioredis retries a command whose node connection is still
      // connecting on a random node and follows the MOVED: commands overtake each other and the
      // per-connection order is lost. Every call is gated on isReady() instead, so what can
      // queue is bounded by the calls in flight when the cluster drops; commandTimeout and
      // maxRetriesPerRequest 0 still bound each command once it reaches a node.
      enableOfflineQueue: true,
      clusterRetryStrategy: retryStrategy,
      redisOptions: { ...redisOptions, ...auth },
    });
  }

  private createSubscriber(main: Client): Client {
    if (main instanceof Cluster) return main.duplicate([], { shardedSubscribers: this.sharded });
    return main.duplicate({ connectionName: `gatehouse:${this.nodeId}:sub` });
  }

  private async detectShardedPubSub(main: Client): Promise<boolean> {
    if (main.status !== 'ready') {
      this.log.warn({}, 'redis unreachable at start; assuming sharded pub/sub (Redis >= 7)');
      return true;
    }
    try {
      const info = await main.call('COMMAND', 'INFO', 'SPUBLISH');
      return Array.isArray(info) && info[0] !== null && info[0] !== undefined;
    } catch (err) {
      this.log.warn({ err: errText(err) }, 'could not detect sharded pub/sub; assuming SPUBLISH (Redis >= 7)');
      return true;
    }
  }

  private watch(client: Client, role: 'main' | 'sub'): void {
    client.on('error', (err: unknown) => this.warn(`${role}-error`, { role, err: errText(err) }, 'redis connection error'));
    client.on('node error', (err: unknown) => this.warn(`${role}-node-error`, { role, err: errText(err) }, 'redis cluster node error'));
    client.on('ready', () => {
      if (role === 'sub') this.ensureSubscribed();
      this.updateReadiness();
    });
    for (const ev of ['close', 'end', 'reconnecting']) {
      client.on(ev, () => {
        if (role === 'sub') this.subscribed = false;
        this.updateReadiness();
      });
    }
  }

  private ensureSubscribed(): void {
    const sub = this.sub;
    if (!sub || this.closed || this.subscribed || this.subscribing || sub.status !== 'ready') return;
    this.subscribing = true;
    const done = this.sharded ? sub.ssubscribe(this.inbox) : sub.subscribe(this.inbox);
    void done
      .then(() => {
        if (this.sub === sub && sub.status === 'ready') this.subscribed = true;
        this.updateReadiness();
      })
      .catch((err: unknown) => this.warn('subscribe', { err: errText(err) }, 'subscribing to the inbox failed; retrying'))
      .finally(() => {
        this.subscribing = false;
      });
  }

  private updateReadiness(): void {
    const ready = this.isReady();
    if (ready === this.wasReady) return;
    this.wasReady = ready;
    if (!ready) this.epochChecked = false;
    if (ready) {
      this.log.info({ nodeId: this.nodeId }, 'cluster state ready');
      for (const wake of this.readyWaiters.splice(0)) wake();
      if (this.timer) this.background(this.runTick(), 'heartbeat'); // after start(): heartbeat (and resync) at once
    } else if (!this.closed) {
      this.log.warn({ nodeId: this.nodeId }, 'cluster state unavailable; serving locally, reconnecting');
      // Replies to requests in flight may be lost with the connection: fail them now rather
      // than at their timeout.
      for (const id of this.pending.keys()) {
        this.settle(id, new ClusterUnavailableError('connection to redis lost while waiting for a reply'));
      }
    }
  }

  private waitReady(timeoutMs: number): Promise<boolean> {
    if (this.isReady()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(this.isReady()), timeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        resolve(this.isReady());
      });
    });
  }

  /** Heartbeat, resync when needed, sweep dead nodes. Single-flight; never rejects. */
  private async runTick(): Promise<void> {
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    this.ticking = true;
    try {
      do {
        this.tickAgain = false;
        await this.tick().catch((err: unknown) => this.warn('tick', { err: errText(err) }, 'heartbeat failed'));
      } while (this.tickAgain && !this.closed);
    } finally {
      this.ticking = false;
    }
  }

  private async tick(): Promise<void> {
    if (this.closed) return;
    this.ensureSubscribed();
    if (!this.isReady()) return;
    // A fresh candidate each time: an epoch recreated after a data loss must differ from the lost one.
    const hb = await this.script('ghHeartbeat', [this.nodeId, this.session, this.nodeTtlMs, randomBytes(8).toString('hex')]);
    const [prev, epoch] = Array.isArray(hb) ? hb : [];
    if (typeof epoch === 'string') {
      if (this.epoch !== undefined && epoch !== this.epoch) {
        // Redis lost the registry: the other nodes re-register on their next heartbeat.
        const waiting = new Set([...(this.rebuild?.waiting ?? []), ...this.knownAlive]);
        waiting.delete(this.nodeId);
        this.rebuild = { until: this.now() + this.nodeTtlMs, waiting };
        this.log.warn({ nodeId: this.nodeId, waitingFor: [...waiting] }, 'redis lost the registry; rebuilding it');
      }
      this.epoch = epoch;
    }
    this.epochChecked = true;
    if (typeof prev === 'string' && prev !== this.session) {
      // A previous process with this nodeId (fine once), or two live processes sharing one
      // nodeId (a misconfiguration: they keep taking the key from each other).
      this.warn('hb-session', { nodeId: this.nodeId }, 'heartbeat key held by another process with this nodeId');
    }
    const lost = prev !== this.session;
    if (lost || this.resyncNeeded) await this.resync(lost);
    await this.sweep();
  }

  /** Makes the registry match the local copy: re-register everything held, drop what is not. */
  private async resync(heartbeatWasMissing: boolean): Promise<void> {
    this.resyncNeeded = false;
    try {
      const main = this.requireMain();
      const remote = await main.smembers(`${this.reg}nodeconns:${this.nodeId}`);
      const stale = remote.filter((id) => !this.local.has(id));
      for (let i = 0; i < stale.length; i += BATCH) {
        await this.script('ghUnregister', [this.nodeId, ...stale.slice(i, i + BATCH)]);
      }
      const ids = [...this.local.keys()];
      for (let i = 0; i === 0 || i < ids.length; i += BATCH) {
        // Read the records when the batch is sent: a later unregister is sent after it.
        const recs: ConnectionRecord[] = [];
        for (const id of ids.slice(i, i + BATCH)) {
          const rec = this.local.get(id);
          if (rec) recs.push(rec);
        }
        // The last batch (atomically) marks this node as holding all it registered: see `rebuild`.
        const last = i + BATCH >= ids.length;
        if (recs.length > 0 || last) await this.script('ghRegister', [last ? this.nodeId : '', ...registerArgs(recs)]);
      }
      if ((heartbeatWasMissing && ids.length > 0) || stale.length > 0) {
        this.log.info({ nodeId: this.nodeId, registered: ids.length, removed: stale.length }, 'registrations resynced');
      }
    } catch (err) {
      this.resyncNeeded = true;
      throw err;
    }
  }

  private async sweep(): Promise<void> {
    const reply = await this.script('ghDeadNodes', []);
    if (!Array.isArray(reply)) return;
    const [dead, live] = reply;
    if (Array.isArray(live)) {
      // The node set is authoritative: nodes that deregistered on close leave too.
      this.knownAlive.clear();
      for (const n of live) if (typeof n === 'string' && n !== this.nodeId) this.knownAlive.add(n);
    }
    if (!Array.isArray(dead)) return;
    for (const node of dead) {
      if (typeof node !== 'string' || node === this.nodeId) continue;
      let removed = 0;
      for (;;) {
        const [n, left] = toNumbers(await this.script('ghPurge', [node, BATCH, '0']));
        if (n === undefined || n < 0) break;
        removed += n;
        if (!left) break;
      }
      if (removed > 0) this.log.info({ deadNode: node, removed }, 'purged connections of a dead node');
    }
  }

  /**
   * Queues a bus message for `nodeId`'s inbox; `commandId` when it is a command awaiting a reply.
   * Encoded now, so the caller may reuse what it passed (a post's data) once this returns.
   */
  private post(nodeId: string, msg: BusMessage, commandId?: number): void {
    let packed: Buffer;
    try {
      packed = this.packr.pack(msg);
    } catch (err) {
      this.log.warn({ err: errText(err) }, 'could not encode a bus message');
      if (commandId !== undefined) this.settle(commandId, new ClusterUnavailableError('could not encode the command'));
      return;
    }
    let entry = this.outbox.get(nodeId);
    if (!entry) {
      entry = { parts: [], ids: [] };
      this.outbox.set(nodeId, entry);
    }
    entry.parts.push(packed);
    if (commandId !== undefined) entry.ids.push(commandId);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flushOutbox());
    }
  }

  /** One publish per destination inbox: the message itself, or an array of them in call order. */
  private flushOutbox(): void {
    this.flushScheduled = false;
    if (this.outbox.size === 0) return;
    const batches = this.outbox;
    this.outbox = new Map();
    const main = this.main;
    for (const [nodeId, entry] of batches) {
      if (!main || this.closed) {
        for (const id of entry.ids) this.settle(id, new ClusterUnavailableError('cluster state closed'));
        continue;
      }
      const { parts } = entry;
      const payload = parts.length === 1 ? parts[0]! : Buffer.concat([msgpackArrayHeader(parts.length), ...parts]);
      this.background(this.publishBatch(main, nodeId, payload, entry.ids), 'publishing to a node');
    }
  }

  private async publishBatch(main: Client, nodeId: string, payload: Buffer, ids: readonly number[]): Promise<void> {
    const channel = this.inboxPrefix + nodeId;
    let receivers: number;
    try {
      receivers = Number(await this.publish(main, channel, payload));
    } catch (err) {
      if (ids.length === 0) this.warn('reply', { err: errText(err) }, 'could not publish a reply; the sender will time out');
      for (const id of ids) this.settle(id, this.unavailable(err));
      return;
    }
    // Classic PUBLISH in a cluster counts only the receivers on the node we sent it to.
    const countIsReliable = !(main instanceof Cluster) || this.sharded;
    if (countIsReliable && receivers > 0) return;
    if (!ids.some((id) => this.pending.has(id))) return;
    let alive: number;
    try {
      alive = await main.exists(`${this.reg}hb:${nodeId}`);
    } catch (err) {
      for (const id of ids) this.settle(id, this.unavailable(err));
      return;
    }
    if (alive === 0) {
      // No heartbeat proves the node dead only while the registry is authoritative: right after
      // Redis lost its data the owner may simply not have heartbeated again yet (503, never a false 410).
      let complete: boolean;
      try {
        complete = await this.registryComplete();
      } catch (err) {
        for (const id of ids) this.settle(id, this.unavailable(err));
        return;
      }
      const outcome = complete ? { status: 'gone' as const } : new ClusterUnavailableError(`node ${nodeId} has not re-registered yet after a Redis data loss`);
      for (const id of ids) this.settle(id, outcome);
      return;
    }
    if (countIsReliable) {
      for (const id of ids) this.settle(id, new ClusterUnavailableError(`node ${nodeId} is alive but not subscribed`));
    }
  }

  /**
   * SPUBLISH is routed by the channel's slot. A keyless PUBLISH would go to a random cluster
   * node per call, and messages sent through different nodes overtake each other on the
   * cluster bus, so classic pub/sub in a cluster always publishes a channel through the same
   * master.
   */
  private publish(main: Client, channel: string, payload: Buffer): Promise<unknown> {
    if (this.sharded) return main.spublish(channel, payload);
    if (!(main instanceof Cluster)) return main.publish(channel, payload);
    const masters = main
      .nodes('master')
      .map((node) => ({ node, key: `${node.options.host}:${node.options.port}` }))
      .sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
    const pick = masters[fnv1a(channel) % Math.max(masters.length, 1)];
    return pick ? pick.node.publish(channel, payload) : main.publish(channel, payload);
  }

  /** @internal Called by the deadline ticker (the entry is already untracked). */
  expireCommand(p: Pending): void {
    this.settle(p.id, new ClusterUnavailableError(`no reply from node ${p.nodeId} within ${this.commandTimeoutMs} ms`));
  }

  private settle(id: number, result: CommandOutcome | Error): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    untrack(p);
    if (result instanceof Error) p.reject(result);
    else p.resolve(result);
  }

  private onBusMessage(message: Buffer): void {
    let decoded: unknown;
    try {
      decoded = this.packr.unpack(message);
    } catch (err) {
      this.warn('decode', { err: errText(err) }, 'undecodable bus message dropped');
      return;
    }
    if (Array.isArray(decoded)) {
      for (const m of decoded) this.onBusEntry(m);
    } else {
      this.onBusEntry(decoded);
    }
  }

  private onBusEntry(decoded: unknown): void {
    if (!isObject(decoded) || typeof decoded.i !== 'number' || typeof decoded.s !== 'string') {
      this.warn('malformed', {}, 'malformed bus message dropped');
      return;
    }
    if (decoded.t === 'r') {
      if (decoded.s !== this.session) return; // reply to an earlier process with our nodeId
      if (typeof decoded.e === 'string') {
        this.settle(decoded.i, new ClusterUnavailableError(`remote node failed: ${decoded.e}`));
        return;
      }
      const outcome = toOutcome(decoded.o);
      this.settle(decoded.i, outcome ?? new ClusterUnavailableError('malformed reply from remote node'));
      return;
    }
    const cmd = toNodeCommand(decoded.c);
    if (decoded.t !== 'c' || typeof decoded.f !== 'string' || !cmd) {
      this.warn('malformed', {}, 'malformed bus command dropped');
      return;
    }
    if (decoded.f !== this.nodeId) this.knownAlive.add(decoded.f);
    this.enqueue({ t: 'c', i: decoded.i, f: decoded.f, s: decoded.s, c: cmd });
  }

  /** Runs commands for one connection one after another, in arrival order. */
  private enqueue(msg: CommandMessage): void {
    const key = msg.c.connectionId;
    const chain = this.chains.get(key);
    if (chain && chain.depth > MAX_QUEUED_PER_CONNECTION) {
      // The handler for this connection is stuck: refuse rather than queue without bound.
      this.reply(msg, { status: 'throttled' });
      return;
    }
    const next = chain ? chain.tail.then(() => this.execute(msg)) : this.execute(msg);
    if (!next) return; // finished synchronously and nothing was queued
    const entry = { tail: next, depth: (chain?.depth ?? 0) + 1 };
    this.chains.set(key, entry);
    next
      .then(() => {
        const current = this.chains.get(key);
        if (current === entry) this.chains.delete(key);
        else if (current) current.depth--;
      })
      .catch((err: unknown) => this.log.warn({ err: errText(err) }, 'command chain failed'));
  }

  /** Never throws; returns a promise only when the handler is asynchronous. */
  private execute(msg: CommandMessage): Promise<void> | undefined {
    const handler = this.handler;
    if (!handler) {
      this.reply(msg, { status: 'gone' });
      return undefined;
    }
    let out: CommandOutcome | Promise<CommandOutcome>;
    try {
      out = handler(msg.c);
    } catch (err) {
      this.replyError(msg, err);
      return undefined;
    }
    if (!(out instanceof Promise)) {
      this.reply(msg, out);
      return undefined;
    }
    return out.then(
      (o) => this.reply(msg, o),
      (err: unknown) => this.replyError(msg, err),
    );
  }

  private replyError(msg: CommandMessage, err: unknown): void {
    this.log.warn({ err: errText(err), kind: msg.c.kind }, 'command handler failed');
    this.sendReply(msg, { t: 'r', i: msg.i, s: msg.s, e: 'handler failed' });
  }

  private reply(msg: CommandMessage, outcome: CommandOutcome): void {
    this.sendReply(msg, { t: 'r', i: msg.i, s: msg.s, o: outcome });
  }

  private sendReply(msg: CommandMessage, reply: ReplyMessage): void {
    if (!this.main || this.closed) return;
    this.post(msg.f, reply);
  }

  /** A malformed registry entry reads as absent (and is logged). */
  private decodeRecord(json: unknown, lastActiveAt: unknown): ConnectionRecord | undefined {
    let rec: ConnectionRecord | undefined;
    try {
      rec = typeof json === 'string' ? toConnectionRecord(JSON.parse(json)) : undefined;
    } catch (err) {
      this.warn('record-parse', { err: errText(err) }, 'malformed connection record in the registry');
      return undefined;
    }
    if (!rec) {
      this.warn('record-shape', {}, 'malformed connection record in the registry');
      return undefined;
    }
    const la = Number(lastActiveAt);
    if (Number.isFinite(la) && la > rec.lastActiveAt) rec.lastActiveAt = la;
    return rec;
  }

  private script(name: ScriptName, args: ReadonlyArray<string | number>): Promise<unknown> {
    const main = this.requireMain();
    const fn = (main as unknown as Record<ScriptName, ScriptFn>)[name];
    return fn.call(main, `${this.reg}nodes`, this.reg, ...args);
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.unavailable(err);
    }
  }

  private requireMain(): Client {
    if (!this.main) throw new ClusterUnavailableError('cluster state not started');
    return this.main;
  }

  private assertReady(): void {
    if (this.closed) throw new ClusterUnavailableError('cluster state closed');
    if (!this.isReady()) throw new ClusterUnavailableError('cluster state unavailable: redis not connected');
  }

  private unavailable(err: unknown): ClusterUnavailableError {
    if (err instanceof ClusterUnavailableError) return err;
    return new ClusterUnavailableError(`cluster state unavailable: ${errText(err)}`, { cause: err });
  }

  /** At most one warning per key every WARN_EVERY_MS: reconnect loops must not flood the log. */
  private warn(key: string, obj: object, msg: string): void {
    const t = this.now();
    const last = this.lastWarn.get(key);
    if (last !== undefined && t - last < WARN_EVERY_MS) return;
    this.lastWarn.set(key, t);
    this.log.warn({ nodeId: this.nodeId, ...obj }, msg);
  }
}

function registerArgs(recs: ReadonlyArray<ConnectionRecord>): string[] {
  const args: string[] = [];
  for (const r of recs) args.push(r.connectionId, r.nodeId, r.stage, String(r.lastActiveAt), JSON.stringify(r));
  return args;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function toConnectionRecord(x: unknown): ConnectionRecord | undefined {
  if (!isObject(x)) return undefined;
  const { connectionId, nodeId, stage, connectedAt, lastActiveAt, sourceIp, userAgent, authorizer } = x;
  if (typeof connectionId !== 'string' || typeof nodeId !== 'string' || typeof stage !== 'string') return undefined;
  if (typeof connectedAt !== 'number' || typeof lastActiveAt !== 'number') return undefined;
  if (typeof sourceIp !== 'string' || typeof userAgent !== 'string') return undefined;
  const rec: ConnectionRecord = { connectionId, nodeId, stage, connectedAt, lastActiveAt, sourceIp, userAgent };
  if (isObject(authorizer)) rec.authorizer = authorizer;
  return rec;
}

function toNodeCommand(x: unknown): NodeCommand | undefined {
  if (!isObject(x) || typeof x.connectionId !== 'string') return undefined;
  const connectionId = x.connectionId;
  switch (x.kind) {
    case 'post':
      if (!(x.data instanceof Uint8Array || typeof x.data === 'string') || typeof x.binary !== 'boolean') return undefined;
      return { kind: 'post', connectionId, data: x.data, binary: x.binary };
    case 'delete':
      return { kind: 'delete', connectionId };
    case 'describe':
      return { kind: 'describe', connectionId };
    default:
      return undefined;
  }
}

function toOutcome(x: unknown): CommandOutcome | undefined {
  if (!isObject(x)) return undefined;
  switch (x.status) {
    case 'ok': {
      if (x.record === undefined || x.record === null) return { status: 'ok' };
      const record = toConnectionRecord(x.record);
      return record ? { status: 'ok', record } : undefined;
    }
    case 'gone':
    case 'throttled':
    case 'too_large':
      return { status: x.status };
    default:
      return undefined;
  }
}

function toNumbers(x: unknown): Array<number | undefined> {
  return Array.isArray(x) ? x.map((v) => (typeof v === 'number' ? v : undefined)) : [];
}

function parseSeeds(url: string): { seeds: ClusterNode[]; auth: Pick<RedisOptions, 'username' | 'password' | 'tls'> } {
  const seeds: ClusterNode[] = [];
  const auth: Pick<RedisOptions, 'username' | 'password' | 'tls'> = {};
  for (const part of url.split(',')) {
    const s = part.trim();
    if (!s) continue;
    const u = new URL(s.includes('://') ? s : `redis://${s}`);
    seeds.push({ host: u.hostname, port: u.port ? Number(u.port) : 6379 });
    if (u.username && auth.username === undefined) auth.username = decodeURIComponent(u.username);
    if (u.password && auth.password === undefined) auth.password = decodeURIComponent(u.password);
    if (u.protocol === 'rediss:') auth.tls = {};
  }
  if (seeds.length === 0) throw new Error('RedisClusterState: no cluster seed nodes in url');
  return { seeds, auth };
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
