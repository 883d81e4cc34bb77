import { clfTime } from '../time.ts';
import type { HeaderMaps, QueryMaps } from './headers.ts';
import type { Session } from './session.ts';
import type { StageRuntime } from './stage-runtime.ts';

/**
 * AWS WebSocket Lambda proxy events (reference section 1.4), field for field. Key order follows
 * captured real events; absent things are absent (not null), as on AWS.
 */
interface BaseContext {
  routeKey: string;
  eventType: 'CONNECT' | 'MESSAGE' | 'DISCONNECT';
  extendedRequestId: string;
  requestTime: string;
  messageDirection: 'IN';
  stage: string;
  connectedAt: number;
  requestTimeEpoch: number;
  identity: { sourceIp: string; userAgent?: string };
  requestId: string;
  domainName: string;
  connectionId: string;
  apiId: string;
}

function baseContext(
  stage: StageRuntime,
  routeKey: string,
  eventType: BaseContext['eventType'],
  requestId: string,
  now: number,
  s: { connectionId: string; connectedAt: number; sourceIp: string; userAgent: string; domainName: string },
): BaseContext {
  return {
    routeKey,
    eventType,
    extendedRequestId: requestId,
    requestTime: clfTime(now),
    messageDirection: 'IN',
    stage: stage.name,
    connectedAt: s.connectedAt,
    requestTimeEpoch: now,
    identity: { sourceIp: s.sourceIp, userAgent: s.userAgent },
    requestId,
    domainName: s.domainName,
    connectionId: s.connectionId,
    apiId: stage.apiId,
  };
}

export interface ConnectInfo {
  connectionId: string;
  connectedAt: number;
  sourceIp: string;
  userAgent: string;
  domainName: string;
  headerMaps: HeaderMaps;
  query: QueryMaps | undefined;
  authorizer: Record<string, unknown> | undefined;
  /** API key accepted at $connect, when the route requires one */
  apiKey?: string | undefined;
}

export function connectRequestContext(stage: StageRuntime, info: ConnectInfo, requestId: string, now: number): Record<string, unknown> {
  return { ...baseContext(stage, '$connect', 'CONNECT', requestId, now, info) };
}

export function connectEvent(stage: StageRuntime, info: ConnectInfo, requestId: string, now: number): object {
  const requestContext = connectRequestContext(stage, info, requestId, now);
  if (info.authorizer) requestContext.authorizer = info.authorizer;
  const event: Record<string, unknown> = {
    headers: info.headerMaps.headers,
    multiValueHeaders: info.headerMaps.multiValueHeaders,
  };
  if (info.query) {
    event.queryStringParameters = info.query.queryStringParameters;
    event.multiValueQueryStringParameters = info.query.multiValueQueryStringParameters;
  }
  event.requestContext = requestContext;
  event.isBase64Encoded = false;
  if (stage.variables) event.stageVariables = stage.variables;
  return event;
}

/**
 * Built as whole object literals, one per shape (with/without authorizer, stage variables):
 * adding fields after creation costs each message an extra properties store. Same key order
 * as `baseContext` followed by `messageId` and `authorizer`.
 */
export function messageEvent(session: Session, routeKey: string, requestId: string, body: string, now: number): object {
  const stage = session.stage;
  const authorizer = session.authorizer;
  const requestContext =
    authorizer === undefined
      ? {
          routeKey,
          eventType: 'MESSAGE',
          extendedRequestId: requestId,
          requestTime: clfTime(now),
          messageDirection: 'IN',
          stage: stage.name,
          connectedAt: session.connectedAt,
          requestTimeEpoch: now,
          identity: { sourceIp: session.sourceIp, userAgent: session.userAgent },
          requestId,
          domainName: session.domainName,
          connectionId: session.connectionId,
          apiId: stage.apiId,
          messageId: requestId,
        }
      : {
          routeKey,
          eventType: 'MESSAGE',
          extendedRequestId: requestId,
          requestTime: clfTime(now),
          messageDirection: 'IN',
          stage: stage.name,
          connectedAt: session.connectedAt,
          requestTimeEpoch: now,
          identity: { sourceIp: session.sourceIp, userAgent: session.userAgent },
          requestId,
          domainName: session.domainName,
          connectionId: session.connectionId,
          apiId: stage.apiId,
          messageId: requestId,
          authorizer,
        };
  const variables = stage.variables;
  return variables === undefined
    ? { requestContext, body, isBase64Encoded: false }
    : { requestContext, body, isBase64Encoded: false, stageVariables: variables };
}

export function disconnectEvent(session: Session, requestId: string, code: number, reason: string, now: number): object {
  const stage = session.stage;
  const requestContext: Record<string, unknown> = {
    ...baseContext(stage, '$disconnect', 'DISCONNECT', requestId, now, session),
    disconnectStatusCode: code,
    disconnectReason: reason,
  };
  if (session.authorizer) requestContext.authorizer = session.authorizer;
  // AWS sends this odd fixed header set on $disconnect (captured events).
  const headers = { Host: session.domainName, 'x-api-key': '', 'X-Forwarded-For': '', 'x-restapi': '' };
  const event: Record<string, unknown> = {
    headers,
    multiValueHeaders: { Host: [session.domainName], 'x-api-key': [''], 'X-Forwarded-For': [''], 'x-restapi': [''] },
    requestContext,
    isBase64Encoded: false,
  };
  if (stage.variables) event.stageVariables = stage.variables;
  return event;
}
