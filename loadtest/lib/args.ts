// Tiny `--flag value` / `--flag=value` / `--bool` parser shared by the loadtest CLIs.

export class Flags {
  private readonly values = new Map<string, string>();
  private readonly seen = new Set<string>();

  constructor(argv: readonly string[]) {
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i]!;
      if (!arg.startsWith("--")) continue;
      const eq = arg.indexOf("=");
      if (eq > 0) {
        const name = arg.slice(2, eq);
        this.values.set(name, arg.slice(eq + 1));
        this.seen.add(name);
        continue;
      }
      const name = arg.slice(2);
      this.seen.add(name);
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith("--")) {
        this.values.set(name, next);
        i++;
      } else {
        this.values.set(name, "true");
      }
    }
  }

  has(name: string): boolean {
    return this.seen.has(name);
  }

  string(name: string, fallback: string): string {
    return this.values.get(name) ?? fallback;
  }

  optionalString(name: string): string | undefined {
    return this.values.get(name);
  }

  number(name: string, fallback: number): number {
    const raw = this.values.get(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n)) throw new Error(`--${name} expects a number, got ${JSON.stringify(raw)}`);
    return n;
  }

  bool(name: string): boolean {
    const raw = this.values.get(name);
    return raw !== undefined && raw !== "false" && raw !== "0";
  }

  list(name: string, fallback: readonly string[]): string[] {
    const raw = this.values.get(name);
    if (raw === undefined) return [...fallback];
    return raw
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s.length > 0);
  }
}
