// Names of the connections this node holds. Every event of a connection ($connect, messages,
// $disconnect) runs on the node that holds it, so a per-process map is enough even when many
// gateway nodes serve the API; delivery to other connections goes through the management API.
export const names = new Map();

export function nameOf(connectionId) {
  return names.get(connectionId) ?? 'anonymous';
}
