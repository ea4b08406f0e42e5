/** The plain-text tables the reports print (`diff`, `score`, `stages`). */

/** Lines of a table: the head, a rule of dashes, then the rows; the first `leftColumns` columns left-aligned, the rest right-aligned, two spaces apart. */
export function textTable(head: string[], rows: string[][], leftColumns = 1): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i < leftColumns ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}
