/**
 * The cluster-state boundary. Everything the gateway shares between nodes goes through this
 * interface: the connection registry, delivery of commands to the node that owns a connection,
 * and a small TTL cache (authorizer results). Routing, handlers and the management API only
 * ever see this interface; `app.ts` alone chooses the implementation
 * (`MemoryClusterState` for one process, `RedisClusterState` for many nodes).
 *
 * Contract (checked by test/contract/cluster-state.contract.ts against every implementation):
 * - `registerConnection` is idempotent: registering the same id again replaces the record.
 * - `unregisterConnection` of an unknown id is a no-op.
 * - `getConnection` returns the record of a connection held by ANY node, or undefined.
 * - `sendToNode` delivers a command to exactly the named node (never to any other node),
 *   in order per (sender, connection), and resolves with that node's outcome. A command to
 *   a node that is gone or unreachable resolves `{ status: 'gone' }` or rejects with
 *   `ClusterUnavailableError`; it never resolves `ok` unless the owner applied it.
 * - `onCommand` installs this node's handler for commands addressed to it; exactly one.
 * - `cacheGet`/`cacheSet` store opaque JSON-serialisable values with a TTL in ms; an entry
 *   past its TTL is never returned.
 */
export interface ConnectionRecord {
  connectionId: string;
  nodeId: string;
  stage: string;
  /** epoch ms */
  connectedAt: number;
  /** epoch ms of the last data message in either direction (may lag by up to a second in the registry) */
  lastActiveAt: number;
  sourceIp: string;
  userAgent: string;
  /** `requestContext.authorizer` of the connection, when an authorizer ran */
  authorizer?: Record<string, unknown> | undefined;
}

export interface ConnectionOwner {
  connectionId: string;
  nodeId: string;
}

export type NodeCommand =
  /** `data` as a string (from `context.gatehouse.postToConnection`) is sent as a text frame as it is. */
  | { kind: 'post'; connectionId: string; data: Uint8Array | string; binary: boolean }
  | { kind: 'delete'; connectionId: string }
  | { kind: 'describe'; connectionId: string };

export type CommandOutcome =
  | { status: 'ok'; record?: ConnectionRecord | undefined }
  | { status: 'gone' }
  | { status: 'throttled' }
  | { status: 'too_large' };

export type CommandHandler = (cmd: NodeCommand) => CommandOutcome | Promise<CommandOutcome>;

export interface ClusterState {
  readonly nodeId: string;
  /** Local or shared: 'memory' | 'redis' (for /readyz and logs). */
  readonly kind: string;
  start(): Promise<void>;
  /** True while the shared store is reachable (memory: always). */
  isReady(): boolean;
  registerConnection(rec: ConnectionRecord): Promise<void>;
  unregisterConnection(connectionId: string): Promise<void>;
  getConnection(connectionId: string): Promise<ConnectionRecord | undefined>;
  /** Every connection of a stage, cluster-wide. */
  listConnections(stage: string): Promise<ConnectionRecord[]>;
  /**
   * The same connections as `listConnections`, as ids and owning nodes only: what a broadcast
   * needs, without reading and decoding every record.
   */
  listConnectionOwners(stage: string): Promise<ConnectionOwner[]>;
  /** Record activity for connections this node holds (batched by the caller). */
  touchConnections(updates: ReadonlyArray<{ connectionId: string; lastActiveAt: number }>): Promise<void>;
  sendToNode(nodeId: string, cmd: NodeCommand): Promise<CommandOutcome>;
  onCommand(handler: CommandHandler): void;
  cacheGet<T>(key: string): Promise<T | undefined>;
  cacheSet(key: string, value: unknown, ttlMs: number): Promise<void>;
  close(): Promise<void>;
}

/** Raised when the shared store cannot be reached; callers map it to a 5xx, never to success. */
export class ClusterUnavailableError extends Error {
  constructor(message = 'cluster state unavailable', options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClusterUnavailableError';
  }
}
