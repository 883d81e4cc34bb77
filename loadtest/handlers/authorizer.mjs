// REQUEST authorizer for loadtest/api-auth.yaml: accepts any `?token=...` and returns a
// small, realistic context (a few string fields), as a per-user authorizer would.
export const handler = async (event) => {
  const token = event.queryStringParameters?.token;
  if (!token) throw new Error('Unauthorized');
  const stageArn = event.methodArn.replace(/\/[^/]+$/, '/*');
  return {
    principalId: `user-${token}`,
    policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: stageArn }] },
    context: { userId: `user-${token}`, tenantId: 'tenant-0042', role: 'member', plan: 'pro' },
  };
};
