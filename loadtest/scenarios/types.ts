// Scenario contract for loadtest/run.ts. A scenario starts whatever servers it
// needs (see lib/servers.ts), drives load (usually via loadtest/loadgen.ts as a
// pinned child process) and returns a table plus pass/fail checks.

import type { Flags } from "../lib/args.ts";
import type { ServerEnv } from "../lib/servers.ts";

export interface RunContext {
  /** Repository root; children run with this cwd. */
  root: string;
  flags: Flags;
  /** Server placement and gateway command line. */
  serverEnv: ServerEnv;
  /** CPU list for load generators (`taskset -c`). */
  loadCpus: string;
  /** Progress output (stderr). */
  log(message: string): void;
}

/** null = not applicable / skipped (prints as SKIP and never fails the run). */
export type Verdict = boolean | null;

export interface Check {
  name: string;
  pass: Verdict;
  detail: string;
}

export interface ScenarioReport {
  title: string;
  /** First row is the header. */
  table: string[][];
  /** Further tables, printed after `table` under their own titles. */
  sections?: Array<{ title: string; table: string[][] }>;
  checks: Check[];
  notes: string[];
  /** Raw figures for --json. */
  data: unknown;
}

export interface Scenario {
  /** Name used with --scenario. */
  name: string;
  description: string;
  /** Flags this scenario reads, for --help. */
  flags: ReadonlyArray<readonly [flag: string, help: string]>;
  run(ctx: RunContext): Promise<ScenarioReport>;
}
