// `whoami` route of loadtest/api-cluster.yaml: answers the caller's connection id, so the
// cluster driver can address @connections POSTs to the connections it holds.
export const handler = async (event) => ({
  statusCode: 200,
  body: JSON.stringify({ connectionId: event.requestContext.connectionId }),
});
