import type { CompiledAuthorizer } from '../auth/authorizers.ts';
import { nextId } from '../ids.ts';
import { connectRequestContext } from './events.ts';
import type { ConnectAuthorizer } from './ws-gateway.ts';

/**
 * The authorization step of `$connect`: runs the route's authorizer while the upgrade is
 * pending, with the WebSocket REQUEST authorizer event (reference section 4.2) and the method
 * ARN `.../{stage}/$connect`. A denial rejects the upgrade with the authorizer's status; an
 * allow puts `requestContext.authorizer` on every later event of the connection.
 */
export function connectAuthorizer(authorizers: ReadonlyMap<string, CompiledAuthorizer>, arnBase: string): ConnectAuthorizer {
  return async (req, stage, info) => {
    const route = stage.connect;
    const name = route?.def.authorizer;
    if (!name) return { ok: true };
    const authorizer = authorizers.get(name);
    if (!authorizer) return { ok: false, status: 500, body: '{"message": null}' };
    const requestContext = connectRequestContext(stage, info, nextId(), Date.now());
    const d = await authorizer.authorize(
      {
        headers: req.headers,
        query: info.query?.queryStringParameters,
        stageVariables: stage.variables,
        context: requestContext,
        methodArn: `${arnBase}/${stage.name}/$connect`,
        eventBase: () => {
          const e: Record<string, unknown> = { headers: info.headerMaps.headers, multiValueHeaders: info.headerMaps.multiValueHeaders };
          if (info.query) {
            e.queryStringParameters = info.query.queryStringParameters;
            e.multiValueQueryStringParameters = info.query.multiValueQueryStringParameters;
          }
          e.stageVariables = stage.variables ?? {};
          e.requestContext = requestContext;
          return e;
        },
      },
      route.def.authorizationScopes,
    );
    if (!d.ok) return d;
    return { ok: true, authorizer: d.authorizer, protocol: d.protocol, usageIdentifierKey: d.usageIdentifierKey };
  };
}
