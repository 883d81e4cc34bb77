import { StringTable } from '../string-table.ts';
import type {
  ClusterState,
  CommandHandler,
  CommandOutcome,
  ConnectionOwner,
  ConnectionRecord,
  NodeCommand,
} from './cluster-state.ts';

export interface MemoryClusterStateOptions {
  nodeId: string;
  /** Injected clock (epoch ms) so that TTLs can be tested without waiting. */
  now?: () => number;
  /** Upper bound on cache entries; the oldest are evicted first. */
  maxCacheEntries?: number;
}

/**
 * Single-process cluster state: every connection is local, so `sendToNode` only ever
 * reaches this node. Used by `npm start` and whenever no Redis URL is configured.
 */
export class MemoryClusterState implements ClusterState {
  readonly kind = 'memory';
  readonly nodeId: string;
  private readonly now: () => number;
  private readonly maxCacheEntries: number;
  /** One insert and one delete per connection: a StringTable, not a Map (see string-table.ts). */
  private readonly connections = new StringTable<ConnectionRecord>();
  private readonly cache = new Map<string, { value: unknown; expiresAt: number }>();
  private handler: CommandHandler | undefined;

  constructor(opts: MemoryClusterStateOptions) {
    this.nodeId = opts.nodeId;
    this.now = opts.now ?? Date.now;
    this.maxCacheEntries = opts.maxCacheEntries ?? 100_000;
  }

  async start(): Promise<void> {
    // nothing to connect to
  }

  isReady(): boolean {
    return true;
  }

  async registerConnection(rec: ConnectionRecord): Promise<void> {
    this.connections.set(rec.connectionId, { ...rec });
  }

  async unregisterConnection(connectionId: string): Promise<void> {
    this.connections.delete(connectionId);
  }

  async getConnection(connectionId: string): Promise<ConnectionRecord | undefined> {
    const rec = this.connections.get(connectionId);
    return rec ? { ...rec } : undefined;
  }

  async listConnections(stage: string): Promise<ConnectionRecord[]> {
    const out: ConnectionRecord[] = [];
    for (const rec of this.connections.values()) if (rec.stage === stage) out.push({ ...rec });
    return out;
  }

  async listConnectionOwners(stage: string): Promise<ConnectionOwner[]> {
    const out: ConnectionOwner[] = [];
    for (const rec of this.connections.values()) if (rec.stage === stage) out.push({ connectionId: rec.connectionId, nodeId: rec.nodeId });
    return out;
  }

  async touchConnections(updates: ReadonlyArray<{ connectionId: string; lastActiveAt: number }>): Promise<void> {
    for (const u of updates) {
      const rec = this.connections.get(u.connectionId);
      if (rec && u.lastActiveAt > rec.lastActiveAt) rec.lastActiveAt = u.lastActiveAt;
    }
  }

  async sendToNode(nodeId: string, cmd: NodeCommand): Promise<CommandOutcome> {
    if (nodeId !== this.nodeId || !this.handler) return { status: 'gone' };
    return this.handler(cmd);
  }

  onCommand(handler: CommandHandler): void {
    if (this.handler) throw new Error('onCommand: a handler is already installed');
    this.handler = handler;
  }

  async cacheGet<T>(key: string): Promise<T | undefined> {
    const entry = this.cache.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.cache.delete(key);
      return undefined;
    }
    return entry.value as T;
  }

  async cacheSet(key: string, value: unknown, ttlMs: number): Promise<void> {
    if (ttlMs <= 0) return;
    this.cache.delete(key);
    this.cache.set(key, { value, expiresAt: this.now() + ttlMs });
    while (this.cache.size > this.maxCacheEntries) {
      const oldest = this.cache.keys().next().value;
      if (oldest === undefined) break;
      this.cache.delete(oldest);
    }
  }

  async close(): Promise<void> {
    this.connections.clear();
    this.cache.clear();
  }
}
