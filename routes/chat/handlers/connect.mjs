import { names } from './members.mjs';

const NAME = /^[\p{L}\p{N}_.-]{1,32}$/u;

/** $connect: join with ?name=... (letters, digits, _ . -; at most 32). A bad name rejects the upgrade with 400. */
export const handler = async (event) => {
  const name = event.queryStringParameters?.name ?? 'anonymous';
  if (!NAME.test(name)) {
    return { statusCode: 400, body: JSON.stringify({ message: 'name must be 1-32 letters, digits, _ . -' }) };
  }
  names.set(event.requestContext.connectionId, name);
  return { statusCode: 200 };
};
