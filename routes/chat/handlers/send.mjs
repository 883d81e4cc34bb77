import { nameOf } from './members.mjs';

/**
 * sendmessage: {"action":"sendmessage","message":"..."} is delivered to every other connection
 * of the stage, cluster-wide, through the management operations (the in-process, unsigned twin
 * of the AWS SDK's ApiGatewayManagementApiClient). Gone connections are skipped, as AWS apps do.
 */
export const handler = async (event, context) => {
  const me = event.requestContext.connectionId;
  let message;
  try {
    message = JSON.parse(event.body).message;
  } catch {
    message = undefined;
  }
  if (typeof message !== 'string' || message.length === 0) {
    await context.gatehouse.postToConnection({
      ConnectionId: me,
      Data: JSON.stringify({ error: 'sendmessage needs a non-empty "message" string' }),
    });
    return { statusCode: 400 };
  }
  const data = JSON.stringify({ from: nameOf(me), message, room: event.stageVariables?.room });
  const ids = await context.gatehouse.listConnections();
  await Promise.all(
    ids
      .filter((id) => id !== me)
      .map((id) =>
        context.gatehouse.postToConnection({ ConnectionId: id, Data: data }).catch((err) => {
          if (err.name !== 'GoneException') throw err;
        }),
      ),
  );
  return { statusCode: 200 };
};
