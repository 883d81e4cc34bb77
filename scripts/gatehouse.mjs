#!/usr/bin/env node
// CLI entry (`npx gatehouse ...`, `npm start`). Registers the tsx loader in this process and
// runs the TypeScript sources directly: no build step, and TypeScript handler modules work as
// well as .mjs/.js ones. One process, so signals (SIGTERM drain, kill -9) reach the gateway itself.
import v8 from 'node:v8';

// A larger young generation: the message path allocates short-lived events and promises, and
// fewer scavenges mean more throughput and a shorter latency tail (measured in loadtest/).
// GATEHOUSE_SEMI_SPACE_MB=0 keeps V8's default; `node --max-semi-space-size=N` also works.
const semiSpace = Number(process.env.GATEHOUSE_SEMI_SPACE_MB ?? 32);
if (semiSpace > 0 && !process.execArgv.some((a) => a.startsWith('--max-semi-space-size'))) {
  v8.setFlagsFromString(`--max-semi-space-size=${semiSpace}`);
}

const { dirname, join } = await import('node:path');
const { fileURLToPath, pathToFileURL } = await import('node:url');
const { register } = await import('tsx/esm/api');

register();
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
await import(pathToFileURL(join(root, 'server', 'main.ts')).href);
