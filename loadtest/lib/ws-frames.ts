// Minimal RFC 6455 helpers for the load generator: build masked client frames
// once, and parse server frames incrementally without copying payloads.

import { createHash, randomBytes } from "node:crypto";

export const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

export const OPCODE_CONTINUATION = 0x0;
export const OPCODE_TEXT = 0x1;
export const OPCODE_BINARY = 0x2;
export const OPCODE_CLOSE = 0x8;
export const OPCODE_PING = 0x9;
export const OPCODE_PONG = 0xa;

/** The fixed mask used for every client frame (RFC 6455 wants a random mask; a fixed one is fine for a benchmark). */
export const FIXED_MASK: Readonly<Uint8Array> = Uint8Array.of(0x37, 0xfa, 0x21, 0x3d);

/** Encodes one masked client frame (FIN set). */
export function encodeClientFrame(
  opcode: number,
  payload: Uint8Array,
  mask: Readonly<Uint8Array> = FIXED_MASK,
): Buffer {
  const len = payload.length;
  const extLen = len < 126 ? 0 : len < 0x10000 ? 2 : 8;
  const headerLen = 2 + extLen + 4;
  const frame = Buffer.allocUnsafe(headerLen + len);
  frame[0] = 0x80 | (opcode & 0x0f);
  if (extLen === 0) {
    frame[1] = 0x80 | len;
  } else if (extLen === 2) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(len), 2);
  }
  const maskAt = 2 + extLen;
  for (let i = 0; i < 4; i++) frame[maskAt + i] = mask[i]!;
  for (let i = 0; i < len; i++) frame[headerLen + i] = payload[i]! ^ mask[i & 3]!;
  return frame;
}

/** `count` copies of `frame` back to back, so several messages go out in one write. */
export function repeatFrame(frame: Buffer, count: number): Buffer {
  const out = Buffer.allocUnsafe(frame.length * count);
  for (let i = 0; i < count; i++) frame.copy(out, i * frame.length);
  return out;
}

/** batches[k] holds k frames (batches[0] is empty); built once, written many times. */
export function buildFrameBatches(frame: Buffer, max: number): Buffer[] {
  const all = repeatFrame(frame, max);
  const batches: Buffer[] = [];
  for (let k = 0; k <= max; k++) batches.push(all.subarray(0, k * frame.length));
  return batches;
}

/** Random Sec-WebSocket-Key and the Sec-WebSocket-Accept the server must answer with. */
export function makeHandshakeKey(): { key: string; accept: string } {
  const key = randomBytes(16).toString("base64");
  return { key, accept: acceptFor(key) };
}

export function acceptFor(key: string): string {
  return createHash("sha1")
    .update(key + WS_GUID)
    .digest("base64");
}

export function buildUpgradeRequest(host: string, port: number, path: string, key: string): Buffer {
  return Buffer.from(
    `GET ${path} HTTP/1.1\r\n` +
      `Host: ${host}:${port}\r\n` +
      "Upgrade: websocket\r\n" +
      "Connection: Upgrade\r\n" +
      `Sec-WebSocket-Key: ${key}\r\n` +
      "Sec-WebSocket-Version: 13\r\n" +
      "\r\n",
    "latin1",
  );
}

/** Result of checking an HTTP upgrade response head. */
export interface UpgradeCheck {
  ok: boolean;
  status: number;
  reason: string;
}

/** Checks `HTTP/1.1 101` plus a matching Sec-WebSocket-Accept. `head` excludes the final CRLFCRLF. */
export function checkUpgradeResponse(head: string, expectedAccept: string): UpgradeCheck {
  const lines = head.split("\r\n");
  const statusLine = lines[0] ?? "";
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  const status = m ? Number(m[1]) : 0;
  if (status !== 101) return { ok: false, status, reason: `expected 101, got: ${statusLine}` };
  let accept = "";
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === "sec-websocket-accept") {
      accept = line.slice(colon + 1).trim();
    }
  }
  if (accept !== expectedAccept) {
    return { ok: false, status, reason: `bad Sec-WebSocket-Accept: ${accept || "(missing)"}` };
  }
  return { ok: true, status, reason: "" };
}

/** Callbacks for {@link FrameParser}; kept monomorphic and allocation-free on the hot path. */
export interface FrameSink {
  /** A control frame arrived (payload is a copy; control payloads are at most 125 bytes). */
  onControl(opcode: number, payload: Buffer): void;
  /** Data-frame payload bytes, only while `capture` is on. */
  onPayloadBytes(chunk: Buffer, start: number, end: number): void;
  /** A data message completed while `capture` was on. */
  onMessageComplete(): void;
  /** The server violated the protocol in a way we cannot skip over. */
  onProtocolError(reason: string): void;
}

const STATE_HEADER = 0;
const STATE_PAYLOAD = 1;

/**
 * Incremental parser for server-to-client frames (unmasked; masked ones are tolerated).
 * Handles headers split across chunks, several frames per chunk and 2/8-byte extended
 * lengths. Data payloads are skipped, never copied (unless `capture` is on).
 */
export class FrameParser {
  /** When true, data payload bytes are handed to sink.onPayloadBytes. */
  capture = false;
  /** Total data-frame payload bytes seen (cheap reply-size accounting). */
  dataBytes = 0;
  private state = STATE_HEADER;
  private readonly header = Buffer.alloc(14);
  private headerHave = 0;
  private remaining = 0;
  private fin = false;
  private opcode = 0;
  private isControl = false;
  private control: Buffer | null = null;
  private controlHave = 0;
  private readonly sink: FrameSink;

  constructor(sink: FrameSink) {
    this.sink = sink;
  }

  /** Feeds bytes [start, end) of `buf`. Returns the number of complete data messages seen. */
  feed(buf: Buffer, start: number, end: number): number {
    let messages = 0;
    let i = start;
    while (i < end) {
      if (this.state === STATE_HEADER) {
        // Fast path: whole header available in this chunk and nothing buffered.
        if (this.headerHave === 0 && end - i >= 2) {
          const b0 = buf[i]!;
          const b1 = buf[i + 1]!;
          const len7 = b1 & 0x7f;
          const masked = (b1 & 0x80) !== 0;
          const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (masked ? 4 : 0);
          if (end - i >= need) {
            let len = len7;
            if (len7 === 126) len = (buf[i + 2]! << 8) | buf[i + 3]!;
            else if (len7 === 127) len = readLen64(buf, i + 2);
            i += need;
            if (this.beginFrame(b0, len)) {
              if (this.remaining === 0) messages += this.endFrame();
              continue;
            }
            return messages;
          }
        }
        // Slow path: accumulate header bytes.
        this.header[this.headerHave++] = buf[i++]!;
        if (this.headerHave < 2) continue;
        const b1 = this.header[1]!;
        const len7 = b1 & 0x7f;
        const need = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + ((b1 & 0x80) !== 0 ? 4 : 0);
        if (this.headerHave < need) continue;
        let len = len7;
        if (len7 === 126) len = (this.header[2]! << 8) | this.header[3]!;
        else if (len7 === 127) len = readLen64(this.header, 2);
        this.headerHave = 0;
        if (!this.beginFrame(this.header[0]!, len)) return messages;
        if (this.remaining === 0) messages += this.endFrame();
        continue;
      }
      // STATE_PAYLOAD
      const take = Math.min(this.remaining, end - i);
      if (this.isControl) {
        buf.copy(this.control!, this.controlHave, i, i + take);
        this.controlHave += take;
      } else if (this.capture) {
        this.sink.onPayloadBytes(buf, i, i + take);
      }
      i += take;
      this.remaining -= take;
      if (this.remaining === 0) messages += this.endFrame();
    }
    return messages;
  }

  private beginFrame(b0: number, len: number): boolean {
    if ((b0 & 0x70) !== 0) {
      this.sink.onProtocolError("RSV bits set (compression not negotiated)");
      return false;
    }
    this.fin = (b0 & 0x80) !== 0;
    this.opcode = b0 & 0x0f;
    this.isControl = (this.opcode & 0x08) !== 0;
    if (this.isControl) {
      if (len > 125 || !this.fin) {
        this.sink.onProtocolError("invalid control frame");
        return false;
      }
      this.control = Buffer.allocUnsafe(len);
      this.controlHave = 0;
    } else {
      this.dataBytes += len;
    }
    this.remaining = len;
    this.state = STATE_PAYLOAD;
    return true;
  }

  /** Completes the current frame; returns 1 when it completed a data message. */
  private endFrame(): number {
    this.state = STATE_HEADER;
    if (this.isControl) {
      const payload = this.control!;
      this.control = null;
      this.sink.onControl(this.opcode, payload);
      return 0;
    }
    if (!this.fin) return 0;
    if (this.capture) this.sink.onMessageComplete();
    return 1;
  }
}

function readLen64(buf: Uint8Array, at: number): number {
  // Frames this large never occur in the benchmark; stay exact up to 2^53.
  const hi = ((buf[at]! << 24) | (buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!) >>> 0;
  const lo = ((buf[at + 4]! << 24) | (buf[at + 5]! << 16) | (buf[at + 6]! << 8) | buf[at + 7]!) >>> 0;
  return hi * 0x1_0000_0000 + lo;
}
