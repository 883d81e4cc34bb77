// REQUEST authorizer for the chat's $connect: the token comes in the query string
// (?token=...). Valid tokens are listed in CHAT_TOKENS (comma-separated); without it the demo
// token "gatehouse-demo" works. The result is cached by the gateway for resultTtlInSeconds.
const tokens = new Set((process.env.CHAT_TOKENS ?? 'gatehouse-demo').split(',').map((t) => t.trim()).filter(Boolean));

export const handler = async (event) => {
  const token = event.queryStringParameters?.token;
  if (!tokens.has(token)) throw new Error('Unauthorized'); // → 401, as on AWS
  // Allow every route of this stage: the cached policy is evaluated again per method ARN.
  const stageArn = event.methodArn.replace(/\/[^/]+$/, '/*');
  return {
    principalId: `chat-user-${token.slice(-4)}`,
    policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: stageArn }] },
    context: { role: 'member' },
  };
};
