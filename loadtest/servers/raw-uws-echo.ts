// Raw uWebSockets.js echo server: the reference ceiling for the benchmark.
//   node --import tsx loadtest/servers/raw-uws-echo.ts --port 9001   (or PORT=9001)
// Accepts any path; prints `listening <port>` once ready.

import uWS from "uWebSockets.js";
import { Flags } from "../lib/args.ts";

const flags = new Flags(process.argv.slice(2));
const port = flags.number("port", Number(process.env.PORT ?? 9001));
const host = flags.string("host", "127.0.0.1");

uWS
  .App()
  .ws("/*", {
    compression: uWS.DISABLED,
    maxPayloadLength: 128 * 1024,
    idleTimeout: 0,
    message: (ws, message, isBinary) => {
      ws.send(message, isBinary);
    },
  })
  .listen(host, port, (listenSocket) => {
    if (!listenSocket) {
      process.stderr.write(`raw-uws-echo: failed to listen on ${host}:${port}\n`);
      process.exit(1);
    }
    process.stdout.write(`listening ${uWS.us_socket_local_port(listenSocket)}\n`);
  });

process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
