import type { ClusterState, CommandOutcome, ConnectionRecord, NodeCommand } from '../cluster/cluster-state.ts';
import { ClusterUnavailableError } from '../cluster/cluster-state.ts';
import type { GatehouseOps } from '../integrations/lambda.ts';
import type { LocalOutcome, WsGateway } from '../websocket/ws-gateway.ts';

export type Outcome = CommandOutcome | { status: 'unavailable' };

/** Owners remembered for connections on other nodes (see ConnectionOperations). */
const OWNER_CACHE_MAX = 100_000;

interface Owner {
  nodeId: string;
  stage: string;
}

/**
 * The @connections operations, cluster-wide: the local node answers for its own connections
 * at once; any other connection is looked up in the cluster registry and the command goes to
 * the owning node, whose answer comes back to the caller (ok, gone, throttled, too_large).
 * Used by the signed HTTP API and, unsigned, by in-process handlers (`context.gatehouse`).
 *
 * A connection never moves between nodes, so its owner (node and stage) is remembered after the
 * first registry read: later commands go straight to the owner, which answers 'gone' once the
 * connection has closed (the entry is then dropped). A node that died answers nothing and the
 * cluster state resolves 'gone' from its missing heartbeat. The cache is bounded (oldest first out).
 */
export class ConnectionOperations {
  private readonly owners = new Map<string, Owner>();

  constructor(
    private readonly gateway: WsGateway,
    private readonly cluster: ClusterState,
  ) {
    cluster.onCommand((cmd) => this.applyLocal(cmd));
  }

  private applyLocal(cmd: NodeCommand): CommandOutcome {
    const r = this.localOp(undefined, cmd);
    return r.status === 'not_local' ? { status: 'gone' } : r;
  }

  private localOp(stage: string | undefined, cmd: NodeCommand): LocalOutcome {
    switch (cmd.kind) {
      case 'post':
        return this.gateway.postLocal(stage, cmd.connectionId, cmd.data);
      case 'delete':
        return this.gateway.deleteLocal(stage, cmd.connectionId);
      case 'describe':
        return this.gateway.describeLocal(stage, cmd.connectionId);
    }
  }

  private async run(stage: string, cmd: NodeCommand): Promise<Outcome> {
    const local = this.localOp(stage, cmd);
    if (local.status !== 'not_local') return local;
    const id = cmd.connectionId;
    try {
      let owner = this.owners.get(id);
      if (!owner) {
        const rec = await this.cluster.getConnection(id);
        if (!rec || rec.nodeId === this.cluster.nodeId) return { status: 'gone' };
        owner = { nodeId: rec.nodeId, stage: rec.stage };
        this.remember(id, owner);
      }
      if (owner.stage !== stage) return { status: 'gone' };
      const out = await this.cluster.sendToNode(owner.nodeId, cmd);
      if (out.status === 'gone') this.owners.delete(id);
      return out;
    } catch (err) {
      if (err instanceof ClusterUnavailableError) return { status: 'unavailable' };
      throw err;
    }
  }

  private remember(connectionId: string, owner: Owner): void {
    if (this.owners.size >= OWNER_CACHE_MAX) {
      const oldest = this.owners.keys().next();
      if (!oldest.done) this.owners.delete(oldest.value);
    }
    this.owners.set(connectionId, owner);
  }

  post(stage: string, connectionId: string, data: Uint8Array | string): Promise<Outcome> {
    return this.run(stage, { kind: 'post', connectionId, data, binary: false });
  }

  delete(stage: string, connectionId: string): Promise<Outcome> {
    return this.run(stage, { kind: 'delete', connectionId });
  }

  async describe(stage: string, connectionId: string): Promise<ConnectionRecord | Outcome> {
    const r = await this.run(stage, { kind: 'describe', connectionId });
    if (r.status === 'ok' && 'record' in r && r.record) return r.record;
    return r.status === 'ok' ? { status: 'gone' } : r;
  }

  /**
   * Every connection of the stage, cluster-wide. The registry answers with each connection's
   * owner, which is remembered: the posts of a broadcast that follows go straight to the owners.
   */
  async list(stage: string): Promise<string[]> {
    const ids = new Set<string>();
    for (const s of this.gateway.sessions.values()) if (s.stage.name === stage && !s.closed) ids.add(s.connectionId);
    const self = this.cluster.nodeId;
    for (const o of await this.cluster.listConnectionOwners(stage)) {
      ids.add(o.connectionId);
      if (o.nodeId !== self && !this.owners.has(o.connectionId)) this.remember(o.connectionId, { nodeId: o.nodeId, stage });
    }
    return [...ids];
  }

  /** The in-process, unsigned twin of the AWS SDK client, bound to one stage. */
  opsForStage(stage: string): GatehouseOps {
    return {
      postToConnection: async ({ ConnectionId, Data }) => {
        // A string stays a string: sent as a text frame without an encode/validate/decode round trip.
        throwUnlessOk(await this.post(stage, ConnectionId, Data), ConnectionId);
      },
      getConnection: async ({ ConnectionId }) => {
        const r = await this.describe(stage, ConnectionId);
        if ('connectionId' in r) {
          return { ConnectedAt: new Date(r.connectedAt), Identity: { SourceIp: r.sourceIp, UserAgent: r.userAgent }, LastActiveAt: new Date(r.lastActiveAt) };
        }
        throwUnlessOk(r, ConnectionId);
        throw new OperationError('GoneException', 410, `connection ${ConnectionId} is gone`);
      },
      deleteConnection: async ({ ConnectionId }) => {
        throwUnlessOk(await this.delete(stage, ConnectionId), ConnectionId);
      },
      listConnections: () => this.list(stage),
    };
  }
}

/** Errors thrown by `context.gatehouse` operations carry the AWS exception name and status, like the SDK's. */
export class OperationError extends Error {
  readonly $metadata: { httpStatusCode: number };
  constructor(name: string, status: number, message: string) {
    super(message);
    this.name = name;
    this.$metadata = { httpStatusCode: status };
  }
}

function throwUnlessOk(r: Outcome, id: string): void {
  switch (r.status) {
    case 'ok':
      return;
    case 'gone':
      throw new OperationError('GoneException', 410, `connection ${id} is gone`);
    case 'throttled':
      throw new OperationError('LimitExceededException', 429, 'the connection send buffer is full');
    case 'too_large':
      throw new OperationError('PayloadTooLargeException', 413, 'data exceeds the maximum message size');
    case 'unavailable':
      throw new OperationError('ServiceUnavailableException', 503, 'cluster state unavailable');
  }
}
