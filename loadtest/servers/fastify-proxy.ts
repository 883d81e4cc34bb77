// Fastify 5 + @fastify/http-proxy forwarding GET /bench/proxy to the same local backend the
// gateway's HTTP_PROXY route uses (reply-from's default undici agent: pooled keep-alive).
//   node --import tsx loadtest/servers/fastify-proxy.ts --port 9183 --upstream http://127.0.0.1:9180

import proxy from "@fastify/http-proxy";
import Fastify from "fastify";
import { Flags } from "../lib/args.ts";

const flags = new Flags(process.argv.slice(2));
const port = flags.number("port", Number(process.env.PORT ?? 9183));
const host = flags.string("host", "127.0.0.1");
const upstream = flags.string("upstream", "http://127.0.0.1:9180");

const app = Fastify({ logger: false });
app.get("/healthz", async () => "ok");
await app.register(proxy, { upstream, prefix: "/bench/proxy", rewritePrefix: "/ok", http2: false });

app.listen({ port, host }).then(
  () => process.stdout.write(`listening ${port} -> ${upstream}\n`),
  (err: unknown) => {
    process.stderr.write(`fastify-proxy: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);

const stop = () => {
  app.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
