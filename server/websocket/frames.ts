import { pack } from 'msgpackr';

/**
 * Error frames exactly as AWS sends them (captured spacing):
 * `{"message": "Forbidden", "connectionId":"<id>", "requestId":"<id>"}`.
 * Binary (msgpack) clients get the same fields msgpack-encoded.
 */
export function errorFrame(message: string, connectionId: string, requestId: string): string {
  return `{"message": ${JSON.stringify(message)}, "connectionId":"${connectionId}", "requestId":"${requestId}"}`;
}

export function errorFrameMsgpack(message: string, connectionId: string, requestId: string): Uint8Array {
  return pack({ message, connectionId, requestId });
}

export const ERR = Object.freeze({
  FORBIDDEN: 'Forbidden',
  INTERNAL: 'Internal server error',
  TIMEOUT: 'Endpoint request timed out',
  BAD_BODY: 'Bad request body',
  THROTTLED: 'Too Many Requests',
  INVALID_MSGPACK: 'Invalid msgpack payload',
});

/**
 * Reply to a binary (msgpack) client: a JSON body is re-encoded as msgpack of its value, any
 * other text as a msgpack string.
 */
export function toMsgpackReply(body: string): Uint8Array {
  const c = body.charCodeAt(0);
  if (c === 123 /* { */ || c === 91 /* [ */ || c === 34 /* " */) {
    try {
      return pack(JSON.parse(body));
    } catch {
      // not JSON after all: send it as a string below
    }
  }
  return pack(body);
}
