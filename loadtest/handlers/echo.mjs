// LAMBDA echo handler used by the benchmark API (loadtest/api.yaml, route `echo`).
export const handler = async (event) => ({ statusCode: 200, body: event.body });
