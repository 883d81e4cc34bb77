import { parseArgs } from 'node:util';
import { ApiDefinitionError, loadApiDefinition } from './api/load.ts';
import { Gateway } from './app.ts';
import { createLogger } from './log.ts';

const USAGE = `Usage:
  gatehouse serve <api-file> [--port N] [--host H] [--redis URL] [--node-id ID] [--admin-port N] [--dev-credentials]
  gatehouse validate <api-file>

Environment twins: PORT, HOST, REDIS_URL, NODE_ID, ADMIN_PORT, GATEHOUSE_MANAGEMENT_KEYS, GATEHOUSE_MANAGEMENT_TOKEN,
GATEHOUSE_LOG_LEVEL. With --redis: GATEHOUSE_HEARTBEAT_MS (default 5000) and GATEHOUSE_NODE_TTL_MS
(default 15000; a dead node's connections are purged this long after its last heartbeat).`;

export async function main(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, file] = positionals;
  if (values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return command || values.help ? 0 : 2;
  }
  if (!file) {
    process.stderr.write(`missing <api-file>\n\n${USAGE}\n`);
    return 2;
  }
  if (command === 'validate') {
    try {
      const api = await loadApiDefinition(file);
      const routes = Object.keys(api.definition.websocket?.routes ?? {}).length;
      const httpRoutes = Object.keys(api.definition.http?.routes ?? {}).length;
      const extra = httpRoutes ? `, ${httpRoutes} HTTP route(s)` : '';
      process.stdout.write(`${file}: OK (${Object.keys(api.definition.stages).length} stage(s), ${routes} WebSocket route(s)${extra})\n`);
      return 0;
    } catch (err) {
      if (err instanceof ApiDefinitionError) {
        process.stderr.write(`${err.message}\n`);
        return 1;
      }
      throw err;
    }
  }
  if (command !== 'serve') {
    process.stderr.write(`unknown command "${command}"\n\n${USAGE}\n`);
    return 2;
  }
  const port = Number(values.port ?? process.env.PORT ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`invalid port "${values.port ?? process.env.PORT}"\n`);
    return 2;
  }
  const adminRaw = values['admin-port'] ?? process.env.ADMIN_PORT;
  const adminPort = adminRaw === undefined ? undefined : Number(adminRaw);
  if (adminPort !== undefined && (!Number.isInteger(adminPort) || adminPort < 0 || adminPort > 65535)) {
    process.stderr.write(`invalid admin port "${adminRaw}"\n`);
    return 2;
  }
  const log = createLogger();
  let gw: Gateway;
  try {
    gw = await Gateway.start({
      apiFile: file,
      port,
      host: values.host ?? process.env.HOST ?? '0.0.0.0',
      ...optional('nodeId', values['node-id'] ?? process.env.NODE_ID),
      ...optional('redisUrl', values.redis ?? process.env.REDIS_URL),
      ...(adminPort === undefined ? {} : { adminPort }),
      devCredentials: values['dev-credentials'] ?? false,
      logger: log,
    });
  } catch (err) {
    if (err instanceof ApiDefinitionError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    process.stderr.write(`gatehouse: ${(err as Error).message}\n`);
    return 1;
  }
  const lines = [`Gatehouse serving "${gw.api.definition.name}" (node ${gw.cluster.nodeId}, ${gw.cluster.kind} cluster state)`];
  for (const url of gw.urls()) lines.push(`  WebSocket  ${url}`);
  if (gw.api.definition.http) {
    for (const s of Object.keys(gw.api.definition.stages)) lines.push(`  HTTP       http://127.0.0.1:${gw.port}/${s}/`);
  }
  lines.push(`  @connections  http://127.0.0.1:${gw.port}/{stage}/@connections/{connectionId}`);
  lines.push(`  metrics  http://127.0.0.1:${gw.adminPort}/metrics   health  /healthz  /readyz`);
  if (gw.management.generated) {
    const [id, secret] = [...gw.management.keys][0] ?? ['', ''];
    lines.push('  development management credentials (AWS SigV4, any region; set GATEHOUSE_MANAGEMENT_KEYS to choose your own):');
    lines.push(`    AWS_ACCESS_KEY_ID=${id} AWS_SECRET_ACCESS_KEY=${secret}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'draining');
    gw.drain().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'drain failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  return -1; // keep running
}

function optional<K extends string>(key: K, v: string | undefined): { [P in K]?: string } {
  return (v === undefined ? {} : { [key]: v }) as { [P in K]?: string };
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      port: { type: 'string', short: 'p' },
      host: { type: 'string' },
      redis: { type: 'string' },
      'node-id': { type: 'string' },
      'admin-port': { type: 'string' },
      'dev-credentials': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
