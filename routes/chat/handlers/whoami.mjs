import { nameOf } from './members.mjs';

/** whoami: a two-way route; the body is sent back to the caller. */
export const handler = async (event) => {
  const { connectionId, connectedAt, stage, identity, authorizer } = event.requestContext;
  return {
    statusCode: 200,
    body: JSON.stringify({
      name: nameOf(connectionId),
      connectionId,
      connectedAt,
      stage,
      sourceIp: identity.sourceIp,
      principalId: authorizer?.principalId,
      role: authorizer?.role,
    }),
  };
};
