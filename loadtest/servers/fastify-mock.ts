// Fastify 5 answering GET /bench/mock (and /bench/lambda) with the benchmark's small JSON:
// the "plain Node framework" baseline of the `http` scenario. Logging is off, as in a benchmark
// setup; the reply is a pre-serialised string with an explicit content type.
//   node --import tsx loadtest/servers/fastify-mock.ts --port 9182

import Fastify, { type FastifyReply } from "fastify";
import { Flags } from "../lib/args.ts";

const flags = new Flags(process.argv.slice(2));
const port = flags.number("port", Number(process.env.PORT ?? 9182));
const host = flags.string("host", "127.0.0.1");
const BODY = '{"ok":true}';

const app = Fastify({ logger: false });
const answer = async (_req: unknown, reply: FastifyReply) => {
  reply.header("content-type", "application/json");
  return BODY;
};
app.get("/bench/mock", answer);
app.get("/bench/lambda", answer);
app.get("/healthz", async () => "ok");

app.listen({ port, host }).then(
  () => process.stdout.write(`listening ${port}\n`),
  (err: unknown) => {
    process.stderr.write(`fastify-mock: ${err instanceof Error ? err.message : String(err)}\n`);
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
