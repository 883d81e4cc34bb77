import { names } from './members.mjs';

export const handler = async (event) => {
  names.delete(event.requestContext.connectionId);
  return { statusCode: 200 };
};
