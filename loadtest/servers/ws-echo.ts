// Bare `ws` package echo server: the "plain Node WebSocket" baseline.
//   node --import tsx loadtest/servers/ws-echo.ts --port 9002   (or PORT=9002)
// Accepts any path; prints `listening <port>` once ready.

import { type RawData, WebSocketServer } from "ws";
import { Flags } from "../lib/args.ts";

const flags = new Flags(process.argv.slice(2));
const port = flags.number("port", Number(process.env.PORT ?? 9002));
const host = flags.string("host", "127.0.0.1");

const wss = new WebSocketServer({ host, port, maxPayload: 128 * 1024, perMessageDeflate: false });

wss.on("connection", (socket) => {
  socket.on("message", (data: RawData, isBinary: boolean) => {
    socket.send(data, { binary: isBinary });
  });
});

wss.on("listening", () => {
  const addr = wss.address();
  const actual = typeof addr === "object" && addr !== null ? addr.port : port;
  process.stdout.write(`listening ${actual}\n`);
});

wss.on("error", (err: Error) => {
  process.stderr.write(`ws-echo: ${err.message}\n`);
  process.exit(1);
});

process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
