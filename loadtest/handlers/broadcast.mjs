// `broadcast` route of loadtest/api-cluster.yaml: the chat fan-out pattern. The message's
// `data` goes to every connection of the stage, cluster-wide (listConnections() reads the
// shared registry in Redis mode; postToConnection crosses nodes when it has to). Connections
// that went away in between are skipped, as chat apps do.
export const handler = async (event, context) => {
  let data;
  try {
    data = JSON.parse(event.body).data;
  } catch {
    data = undefined;
  }
  if (typeof data !== 'string') return { statusCode: 400 };
  const ids = await context.gatehouse.listConnections();
  await Promise.all(
    ids.map((id) =>
      context.gatehouse.postToConnection({ ConnectionId: id, Data: data }).catch((err) => {
        if (err.name !== 'GoneException') throw err;
      }),
    ),
  );
  return { statusCode: 200 };
};
