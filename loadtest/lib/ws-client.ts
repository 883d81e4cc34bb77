// A small raw-socket WebSocket client that hands complete text messages to a callback:
// for the cluster driver, where every message's payload is read (timestamps, ids), at rates
// far below the throughput loadgen's. Frames out are masked with the fixed mask.

import { connect, type Socket } from "node:net";
import {
  buildUpgradeRequest,
  checkUpgradeResponse,
  encodeClientFrame,
  type FrameSink,
  FrameParser,
  makeHandshakeKey,
  OPCODE_CLOSE,
  OPCODE_PING,
  OPCODE_PONG,
  OPCODE_TEXT,
} from "./ws-frames.ts";

const CRLFCRLF = Buffer.from("\r\n\r\n", "latin1");
/** Reads are consumed synchronously, so every client of the process can share one buffer. */
const sharedReadBuffer = Buffer.allocUnsafe(256 * 1024);

export class TextWsClient implements FrameSink {
  private socket: Socket | null = null;
  private readonly parser = new FrameParser(this);
  private parts: Buffer[] = [];
  private handshake: Buffer | null = Buffer.alloc(0);
  open = false;
  closed = false;
  /** close() was called: the close that follows is ours, not the server's. */
  closing = false;
  lastError = "";
  /** Called with each complete data message (utf8). */
  onMessage: (text: string) => void = () => undefined;
  /**
   * When set, called instead of onMessage with the message's bytes, without a copy when the
   * payload arrived in one read (the usual case). Valid only during the call.
   */
  onMessageBytes: ((buf: Buffer, start: number, end: number) => void) | null = null;
  private single: Buffer | null = null;
  private singleStart = 0;
  private singleEnd = 0;
  onClose: () => void = () => undefined;

  /** Connects and upgrades; resolves once the 101 arrived, rejects otherwise (or after timeoutMs). */
  connect(host: string, port: number, path: string, timeoutMs = 10_000): Promise<void> {
    const { key, accept } = makeHandshakeKey();
    this.parser.capture = true;
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (err: Error | null) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err === null) resolve();
        else {
          this.socket?.destroy();
          reject(err);
        }
      };
      const timer = setTimeout(() => settle(new Error(`upgrade to ${path} timed out`)), timeoutMs);
      const socket = connect(
        {
          host,
          port,
          noDelay: true,
          // Reads go into one shared buffer: no Buffer per read (the fan-out driver takes 100k+ msgs/s).
          onread: {
            buffer: sharedReadBuffer,
            callback: (nread: number) => {
              onData(sharedReadBuffer, nread);
              return true;
            },
          },
        },
        () => {
          socket.write(buildUpgradeRequest(host, port, path, key));
        },
      );
      this.socket = socket;
      const onData = (buf: Buffer, nread: number) => {
        if (this.handshake === null) {
          this.parser.feed(buf, 0, nread);
          // A message still incomplete at the end of this read points into the shared buffer:
          // keep a copy before the next read overwrites it.
          if (this.single !== null) {
            this.parts.push(Buffer.from(this.single.subarray(this.singleStart, this.singleEnd)));
            this.single = null;
          }
          return;
        }
        const chunk = Buffer.from(buf.subarray(0, nread));
        this.handshake = Buffer.concat([this.handshake, chunk]);
        const end = this.handshake.indexOf(CRLFCRLF);
        if (end < 0) return;
        const check = checkUpgradeResponse(this.handshake.subarray(0, end).toString("latin1"), accept);
        if (!check.ok) {
          settle(new Error(`upgrade rejected: ${check.reason}`));
          return;
        }
        const rest = this.handshake.subarray(end + 4);
        this.handshake = null;
        this.open = true;
        settle(null);
        if (rest.length > 0) this.parser.feed(rest, 0, rest.length);
      };
      socket.on("error", (err: Error) => {
        this.lastError = err.message;
        settle(err);
      });
      socket.on("close", () => {
        const wasOpen = this.open;
        this.open = false;
        this.closed = true;
        settle(new Error("connection closed during the upgrade"));
        if (wasOpen && !this.closing) this.onClose();
      });
    });
  }

  send(text: string): void {
    this.socket?.write(encodeClientFrame(OPCODE_TEXT, Buffer.from(text, "utf8")));
  }

  /** Sends a close frame and ends the socket (the server closes its side). */
  close(): void {
    this.closing = true;
    if (this.socket === null || this.socket.destroyed || this.socket.writableEnded) return;
    if (this.open) this.socket.end(encodeClientFrame(OPCODE_CLOSE, Buffer.from([0x03, 0xe8])));
    else this.socket.destroy();
    setTimeout(() => this.socket?.destroy(), 1000).unref();
  }

  onPayloadBytes(chunk: Buffer, start: number, end: number): void {
    // A payload that completes within this read is handed over without a copy; one split over
    // several reads is copied (see onData).
    if (this.single === null && this.parts.length === 0) {
      this.single = chunk;
      this.singleStart = start;
      this.singleEnd = end;
      return;
    }
    if (this.single !== null) {
      this.parts.push(Buffer.from(this.single.subarray(this.singleStart, this.singleEnd)));
      this.single = null;
    }
    this.parts.push(Buffer.from(chunk.subarray(start, end)));
  }

  onMessageComplete(): void {
    let buf: Buffer;
    let start: number;
    let end: number;
    if (this.single !== null) {
      buf = this.single;
      start = this.singleStart;
      end = this.singleEnd;
      this.single = null;
    } else {
      buf = Buffer.concat(this.parts);
      start = 0;
      end = buf.length;
      this.parts = [];
    }
    if (this.onMessageBytes !== null) this.onMessageBytes(buf, start, end);
    else this.onMessage(buf.toString("utf8", start, end));
  }

  onControl(opcode: number, payload: Buffer): void {
    if (opcode === OPCODE_PING) this.socket?.write(encodeClientFrame(OPCODE_PONG, payload));
    else if (opcode === OPCODE_CLOSE) {
      if (!this.closing) this.lastError = `server sent close ${payload.length >= 2 ? payload.readUInt16BE(0) : ""}`;
      if (this.socket !== null && !this.socket.writableEnded) this.socket.end(encodeClientFrame(OPCODE_CLOSE, payload.subarray(0, 2)));
    }
  }

  onProtocolError(reason: string): void {
    this.lastError = reason;
    this.socket?.destroy();
  }
}
