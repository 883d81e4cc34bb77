// Plain-text table and number formatting for the loadtest report.

export function formatTable(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  }
  const line = (row: readonly string[]) =>
    row
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  const out: string[] = [];
  rows.forEach((row, i) => {
    out.push(line(row));
    if (i === 0) out.push(widths.map((w) => "-".repeat(w)).join("  "));
  });
  return out.join("\n");
}

export function fmtInt(n: number): string {
  return Math.round(n).toLocaleString("en-US");
}

export function fmtFixed(n: number, digits: number): string {
  return Number.isFinite(n) ? n.toFixed(digits) : "-";
}

export function fmtMs(us: number): string {
  return (us / 1000).toFixed(us < 10_000 ? 2 : 1);
}

export function fmtRatio(n: number | null): string {
  return n === null || !Number.isFinite(n) ? "-" : `${n.toFixed(2)}x`;
}

export function fmtPct(fraction: number): string {
  return `${Math.round(fraction * 100)}%`;
}

export function verdictText(pass: boolean | null): string {
  return pass === null ? "SKIP" : pass ? "PASS" : "FAIL";
}
