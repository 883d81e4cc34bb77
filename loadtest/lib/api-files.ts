// Run-time copies of the bench API files. Some values are only known once the run has
// started (the JWKS issuer's port, the proxy backend's port), so a scenario reads the
// checked-in file (loadtest/api-*.yaml), patches it and writes the copy to the log dir.
// Handler specs are made absolute, so they still resolve next to the original file.

import { readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import { parse, stringify } from "yaml";

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };
export type YamlMap = { [key: string]: YamlValue };

export function isMap(v: YamlValue | undefined): v is YamlMap {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The map at `path` inside `doc`, created (as {}) where missing. */
export function mapAt(doc: YamlMap, path: readonly string[]): YamlMap {
  let at = doc;
  for (const key of path) {
    const next = at[key];
    if (isMap(next)) {
      at = next;
    } else {
      const created: YamlMap = {};
      at[key] = created;
      at = created;
    }
  }
  return at;
}

function absolutizeHandlers(v: YamlValue, baseDir: string): void {
  if (Array.isArray(v)) {
    for (const x of v) absolutizeHandlers(x, baseDir);
    return;
  }
  if (!isMap(v)) return;
  for (const [k, x] of Object.entries(v)) {
    if (k === "handler" && typeof x === "string" && !isAbsolute(x)) v[k] = resolve(baseDir, x);
    else absolutizeHandlers(x, baseDir);
  }
}

/**
 * Reads `sourceRel` (relative to `root`), lets `patch` edit the parsed document and writes it
 * to `outDir` as `<name>-<tag>.yaml`. Returns the absolute path of the copy.
 */
export function materializeApi(
  root: string,
  sourceRel: string,
  outDir: string,
  tag: string,
  patch: (doc: YamlMap) => void,
): string {
  const source = resolve(root, sourceRel);
  const parsed: unknown = parse(readFileSync(source, "utf8"));
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error(`${sourceRel}: not a YAML mapping`);
  }
  const doc = parsed as YamlMap;
  absolutizeHandlers(doc, dirname(source));
  patch(doc);
  const out = join(outDir, `${basename(sourceRel, ".yaml")}-${tag}.yaml`);
  writeFileSync(out, `# generated from ${sourceRel} for this run\n${stringify(doc)}`);
  return out;
}
