// Benchmark payloads: `{"action":"<action>","data":"xxx..."}` padded to an exact byte size.

export function benchPayload(action: string, bytes: number): string {
  const prefix = `{"action":${JSON.stringify(action)},"data":"`;
  const suffix = '"}';
  const pad = bytes - prefix.length - suffix.length;
  if (pad < 0) throw new Error(`payload of ${bytes} bytes is too small for action ${JSON.stringify(action)}`);
  const out = prefix + "x".repeat(pad) + suffix;
  if (Buffer.byteLength(out) !== bytes) throw new Error("benchPayload: non-ASCII action");
  return out;
}
