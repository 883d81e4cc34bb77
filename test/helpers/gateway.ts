import { cpSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Gateway, type GatewayOptions } from '../../server/app.ts';
import { createLogger } from '../../server/log.ts';

export const TEST_KEYS = { accessKeyId: 'AKIATESTGATEHOUSE01', secretAccessKey: 'test-secret-key-0123456789' };
export const TEST_TOKEN = 'test-bearer-token-0123456789';

export interface StartedGateway {
  gw: Gateway;
  port: number;
  wsUrl(stage?: string, query?: string): string;
  httpUrl(p: string): string;
  stop(): Promise<void>;
}

const ROOT = path.join(import.meta.dirname, '..', '..');
/** Inside the project (git-ignored), so fixture handlers resolve packages from node_modules. */
const TMP = path.join(ROOT, '.test-tmp');

/**
 * Start a real gateway on an ephemeral port, in this process. `yaml` is an API definition
 * written next to a copy of a fixture's handlers and models (test/fixtures/<fixture>/).
 */
export async function startGateway(yaml: string, opts: Partial<GatewayOptions> = {}, fixture = 'ws-api'): Promise<StartedGateway> {
  mkdirSync(TMP, { recursive: true });
  const dir = mkdtempSync(path.join(TMP, 'gw-'));
  const src = path.join(ROOT, 'test', 'fixtures', fixture);
  for (const sub of ['handlers', 'models']) {
    if (existsSync(path.join(src, sub))) cpSync(path.join(src, sub), path.join(dir, sub), { recursive: true });
  }
  const file = path.join(dir, 'api.yaml');
  writeFileSync(file, yaml);
  const gw = await Gateway.start({
    apiFile: file,
    port: 0,
    host: '127.0.0.1',
    managementKeys: `${TEST_KEYS.accessKeyId}:${TEST_KEYS.secretAccessKey}`,
    managementToken: TEST_TOKEN,
    logger: createLogger({}, process.env.GATEHOUSE_TEST_LOG === '1' ? 'debug' : 'silent'),
    ...opts,
  });
  return {
    gw,
    port: gw.port,
    wsUrl: (stage = 'test', query = '') => `ws://127.0.0.1:${gw.port}/${stage}${query}`,
    httpUrl: (p) => `http://127.0.0.1:${gw.port}${p}`,
    stop: () => gw.stop(),
  };
}

/** Events recorded by the fixture handlers (they run in this process). */
export interface RecordedEvent {
  requestContext: Record<string, unknown> & { eventType: string; connectionId: string; routeKey: string };
  [k: string]: unknown;
}

export function recorded(): RecordedEvent[] {
  const g = globalThis as { __gatehouseEvents?: RecordedEvent[] };
  g.__gatehouseEvents ??= [];
  return g.__gatehouseEvents;
}

export function clearRecorded(): void {
  recorded().length = 0;
}
