// Raw uWebSockets.js HTTP server: answers every GET with the benchmark's small JSON
// ({"ok":true}, application/json). The ceiling of the `http` scenario, and also the backend
// behind the HTTP_PROXY rows (gateway and Fastify proxy both forward to it).
//   node --import tsx loadtest/servers/raw-uws-http.ts --port 9180
// Accepts any path; prints `listening <port>` once ready.

import uWS from "uWebSockets.js";
import { Flags } from "../lib/args.ts";

const flags = new Flags(process.argv.slice(2));
const port = flags.number("port", Number(process.env.PORT ?? 9180));
const host = flags.string("host", "127.0.0.1");
const BODY = Buffer.from('{"ok":true}');

uWS
  .App()
  .any("/*", (res) => {
    res.cork(() => {
      res.writeHeader("Content-Type", "application/json").end(BODY);
    });
  })
  .listen(host, port, (listenSocket) => {
    if (!listenSocket) {
      process.stderr.write(`raw-uws-http: failed to listen on ${host}:${port}\n`);
      process.exit(1);
    }
    process.stdout.write(`listening ${uWS.us_socket_local_port(listenSocket)}\n`);
  });

process.on("SIGTERM", () => process.exit(0));
process.on("SIGINT", () => process.exit(0));
