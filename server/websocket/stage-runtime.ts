import type { ApiDefinition, WsRouteDef } from '../api/types.ts';
import type { CompiledIntegration, IntegrationDeps } from '../integrations/integration.ts';
import { compileIntegration } from '../integrations/integration.ts';
import type { MessageThrottle } from '../throttling/message-throttle.ts';
import { toMsgpackReply } from './frames.ts';
import type { GatewayMetrics, RouteStats } from '../metrics.ts';
import type { SelectionExpression } from './selection-expression.ts';
import { compileSelectionExpression } from './selection-expression.ts';

export interface StageRoute {
  readonly routeKey: string;
  readonly def: WsRouteDef;
  readonly integration: CompiledIntegration | undefined;
  readonly twoWay: boolean;
  readonly stats: RouteStats;
  /** Two-way MOCK routes: the reply encoded once, as text and as msgpack. */
  readonly mockReply: { text: Buffer; packed: Uint8Array } | undefined;
  /** The message-path throttle of this route (memory mode), attached when admission is built. */
  throttle: MessageThrottle | undefined;
}

/** Everything about one stage of the WebSocket API, compiled once at start-up. */
export interface StageRuntime {
  readonly name: string;
  readonly apiId: string;
  /** undefined when the stage has no variables (AWS then omits `stageVariables`). */
  readonly variables: Readonly<Record<string, string>> | undefined;
  readonly selection: SelectionExpression;
  readonly routes: ReadonlyMap<string, StageRoute>;
  readonly connect: StageRoute | undefined;
  readonly disconnect: StageRoute | undefined;
  readonly default: StageRoute | undefined;
  /** Stats for gateway-level events that are not a route (callbacks, unmatched messages). */
  readonly callbackStats: RouteStats;
  readonly unmatchedStats: RouteStats;
}

export function compileStages(
  api: ApiDefinition,
  apiId: string,
  metrics: GatewayMetrics,
  depsFor: (stage: string) => IntegrationDeps,
): Map<string, StageRuntime> {
  const out = new Map<string, StageRuntime>();
  const ws = api.websocket;
  for (const [name, stageDef] of Object.entries(api.stages)) {
    const deps = depsFor(name);
    const routes = new Map<string, StageRoute>();
    for (const [routeKey, def] of Object.entries(ws?.routes ?? {})) {
      const integration = def.integration ? compileIntegration(def.integration, deps) : undefined;
      const twoWay = def.routeResponse === true;
      const body = integration?.fixed?.body;
      routes.set(
        routeKey,
        Object.seal({
          throttle: undefined,
          routeKey,
          def,
          integration,
          twoWay,
          stats: metrics.routeStats(apiId, name, routeKey),
          mockReply: twoWay && body !== undefined ? { text: Buffer.from(body), packed: toMsgpackReply(body) } : undefined,
        }),
      );
    }
    const variables = stageDef.variables && Object.keys(stageDef.variables).length > 0 ? Object.freeze({ ...stageDef.variables }) : undefined;
    out.set(name, {
      name,
      apiId,
      variables,
      selection: compileSelectionExpression(ws?.routeSelectionExpression ?? '$request.body.action'),
      routes,
      connect: routes.get('$connect'),
      disconnect: routes.get('$disconnect'),
      default: routes.get('$default'),
      callbackStats: metrics.routeStats(apiId, name, '@connections'),
      unmatchedStats: metrics.routeStats(apiId, name, '$unmatched'),
    });
  }
  return out;
}
