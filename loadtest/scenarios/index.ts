// Scenario registry for loadtest/run.ts. To add a scenario: implement `Scenario`
// (./types.ts) in its own file and append it here; `--scenario all` runs every entry in
// this order.

import { clusterScenario } from "./cluster.ts";
import { connectScenario } from "./connect.ts";
import { httpScenario } from "./http.ts";
import { idleScenario } from "./idle.ts";
import type { Scenario } from "./types.ts";
import { wsThroughputScenario } from "./ws-throughput.ts";

export const SCENARIOS: readonly Scenario[] = [
  wsThroughputScenario,
  idleScenario,
  connectScenario,
  httpScenario,
  clusterScenario,
];

export function findScenario(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
