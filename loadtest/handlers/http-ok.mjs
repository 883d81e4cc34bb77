// LAMBDA handler for GET /bench/lambda (loadtest/api-http.yaml, payload format 2.0):
// the smallest useful answer, the same JSON every other server in the HTTP benchmark sends.
export const handler = async () => ({ statusCode: 200, body: '{"ok":true}' });
