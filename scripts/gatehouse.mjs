#!/usr/bin/env node
// CLI entry (`npx gatehouse ...`, `npm start`). Registers the tsx loader in this process and
// runs the TypeScript sources directly: no build step, and TypeScript handler modules work as
// well as .mjs/.js ones. One process, so signals (SIGTERM drain, kill -9) reach the gateway itself.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
await import(pathToFileURL(join(root, 'server', 'main.ts')).href);
