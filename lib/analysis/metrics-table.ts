/**
 * Per-λ metrics tables, as in the paper's Table 2: CSV with the header
 * `benchmark,k,lambda,mean,best,tokens,think_ratio` (`#` comment lines and blank lines allowed,
 * extra columns ignored), a JSON array of objects with the same keys, or JSON Lines of such objects
 * (one per line: rows appended as each λ is scored). Rates are percentages.
 */
import * as fs from 'fs';
import { WeightmixError } from '../errors';

/** One row of a metrics table: one benchmark at one λ (the paper's Table 2/3 columns). */
export interface MetricsRow {
  /** The benchmark's name. */
  benchmark: string;
  /** samples per question behind `mean`/`best` (optional) */
  k?: number;
  /** interpolation coefficient: 0 = Instruct, 1 = Thinking */
  lambda: number;
  /** Mean@k, % */
  mean: number;
  /** Pass@k or Vote@k, % (optional) */
  best?: number;
  /** Token #N: mean generated tokens */
  tokens: number;
  /** Think #R: % of responses containing `</think>` */
  thinkRatio: number;
}

export const METRICS_COLUMNS = ['benchmark', 'k', 'lambda', 'mean', 'best', 'tokens', 'think_ratio'] as const;
const REQUIRED = ['benchmark', 'lambda', 'mean', 'tokens', 'think_ratio'] as const;

/**
 * Reads a metrics table; the format follows the extension (.csv, .json, .jsonl or .ndjson), else the first character
 * (`[` a JSON array, `{` JSON Lines, anything else CSV).
 * @throws {@link WeightmixError} `FileNotFound`, `NotAFile`, `MalformedMetrics`.
 */
export async function readMetricsTable(file: string): Promise<MetricsRow[]> {
  let text: string;
  try {
    text = await fs.promises.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EISDIR') throw new WeightmixError('NotAFile', `metrics table '${file}' is not a file`);
    throw new WeightmixError('FileNotFound', `cannot read metrics table '${file}'`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lower = file.toLowerCase();
  const known = ['.csv', '.json', '.jsonl', '.ndjson'].some((ext) => lower.endsWith(ext));
  const first = text.trimStart()[0];
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson') || (!known && first === '{')) return parseMetricsJsonLines(text, file);
  const json = lower.endsWith('.json') || (!known && first === '[');
  return json ? parseMetricsJson(text, file) : parseMetricsCsv(text, file);
}

function malformed(file: string, line: number | null, msg: string): WeightmixError {
  return new WeightmixError('MalformedMetrics', line === null ? `${file}: ${msg}` : `${file}:${line}: ${msg}`);
}

/** Splits one CSV line (RFC 4180 quoting, no embedded newlines). */
function splitCsvLine(line: string, file: string, lineNo: number): string[] {
  const cells: string[] = [];
  let i = 0;
  for (;;) {
    let cell = '';
    if (line[i] === '"') {
      i++;
      for (;;) {
        if (i >= line.length) throw malformed(file, lineNo, 'unterminated quoted cell');
        if (line[i] === '"') {
          if (line[i + 1] === '"') {
            cell += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        cell += line[i++];
      }
      if (i < line.length && line[i] !== ',') throw malformed(file, lineNo, 'text after a closing quote');
    } else {
      const end = line.indexOf(',', i);
      cell = end < 0 ? line.slice(i) : line.slice(i, end);
      i = end < 0 ? line.length : end;
    }
    cells.push(cell.trim());
    if (i >= line.length) return cells;
    i++; // the comma
  }
}

export function parseMetricsCsv(text: string, file = '<csv>'): MetricsRow[] {
  const lines = text.split(/\r?\n/);
  let header: string[] | null = null;
  let headerLine = 0;
  const rows: MetricsRow[] = [];
  const where = new Map<string, number>();
  lines.forEach((raw, idx) => {
    const lineNo = idx + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const cells = splitCsvLine(line, file, lineNo);
    if (!header) {
      header = cells.map((c) => c.toLowerCase());
      headerLine = lineNo;
      for (const col of REQUIRED) {
        if (!header.includes(col))
          throw malformed(file, lineNo, `missing column '${col}' (header: ${header.join(',')}; expected ${METRICS_COLUMNS.join(',')})`);
      }
      const dup = header.find((c, i) => header!.indexOf(c) !== i);
      if (dup !== undefined) throw malformed(file, lineNo, `column '${dup}' appears twice in the header`);
      return;
    }
    if (cells.length !== header.length) {
      throw malformed(file, lineNo, `${cells.length} cells but the header at line ${headerLine} has ${header.length} columns`);
    }
    const record: Record<string, string> = {};
    header.forEach((col, i) => (record[col] = cells[i]));
    const row = toRow(
      (col) => (record[col] === undefined || record[col] === '' ? undefined : record[col]),
      (msg) => malformed(file, lineNo, msg),
      true,
    );
    checkDuplicate(row, lineNo, where, file);
    rows.push(row);
  });
  if (!header) throw malformed(file, null, `no header line (expected ${METRICS_COLUMNS.join(',')})`);
  if (rows.length === 0) throw malformed(file, null, 'no data rows');
  return rows;
}

export function parseMetricsJson(text: string, file = '<json>'): MetricsRow[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0];
    const pos = /position (\d+)/.exec(msg);
    throw malformed(file, pos ? lineAt(text, Number(pos[1])) : null, `not valid JSON (${msg})${looksLikeJsonLines(text) ? JSON_LINES_HINT : ''}`);
  }
  if (!Array.isArray(data)) {
    const oneLine = typeof data === 'object' && data !== null && looksLikeJsonLines(text) ? JSON_LINES_HINT : '';
    throw malformed(file, lineAt(text, text.length - text.trimStart().length), `expected a JSON array of metrics rows${oneLine}`);
  }
  const starts = elementStarts(text);
  return rowsOfObjects(
    data.map((item, i) => ({ item, lineNo: lineAt(text, starts[i] ?? 0) })),
    file,
  );
}

const JSON_LINES_HINT = '; one object per line is JSON Lines: name the file .jsonl';

/** Whether the first non-blank line is a JSON object of its own: a JSON Lines file given a .json name. */
function looksLikeJsonLines(text: string): boolean {
  const first = text.split(/\r?\n/).find((line) => line.trim() !== '');
  try {
    const value: unknown = JSON.parse(first ?? '');
    return typeof value === 'object' && value !== null && !Array.isArray(value);
  } catch {
    return false;
  }
}

/** JSON Lines: one metrics object per non-blank line (the keys of a JSON array's rows). */
export function parseMetricsJsonLines(text: string, file = '<jsonl>'): MetricsRow[] {
  const items: { item: unknown; lineNo: number }[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      items.push({ item: JSON.parse(line), lineNo: i + 1 });
    } catch (e) {
      throw malformed(file, i + 1, `not valid JSON (${(e as Error).message.split('\n')[0]})`);
    }
  });
  return rowsOfObjects(items, file);
}

/** Rows from parsed objects (a JSON array's elements or JSON Lines), each with the line it starts on, for messages. */
function rowsOfObjects(items: { item: unknown; lineNo: number }[], file: string): MetricsRow[] {
  const rows: MetricsRow[] = [];
  const where = new Map<string, number>();
  items.forEach(({ item, lineNo }, i) => {
    // Rows count from 1, as the lines do.
    const fail = (msg: string) => malformed(file, lineNo, `row ${i + 1}: ${msg}`);
    if (item === null || typeof item !== 'object' || Array.isArray(item)) throw fail(`expected an object, got ${JSON.stringify(item)}`);
    const obj = item as Record<string, unknown>;
    const aliasOf = (col: string) => (col === 'think_ratio' ? 'thinkRatio' : col);
    // The key as the file spells it (think_ratio or thinkRatio), for messages.
    const keyOf = (col: string) => (obj[col] === undefined && obj[aliasOf(col)] !== undefined ? aliasOf(col) : col);
    const value = (col: string): unknown => {
      const v = obj[keyOf(col)];
      return v === null ? undefined : v;
    };
    for (const col of REQUIRED) {
      if (value(col) === undefined) throw fail(`missing field '${col}'${aliasOf(col) === col ? '' : ` (or '${aliasOf(col)}')`}`);
    }
    const row = toRow(value, fail, false, (col) => `field '${keyOf(col)}'`);
    checkDuplicate(row, lineNo, where, file);
    rows.push(row);
  });
  if (rows.length === 0) throw malformed(file, null, 'no data rows');
  return rows;
}

function toRow(
  value: (col: string) => unknown,
  fail: (msg: string) => WeightmixError,
  fromText: boolean,
  label = (col: string) => `column '${col}'`,
): MetricsRow {
  const num = (col: string, check: (x: number) => boolean, expect: string): number | undefined => {
    const v = value(col);
    if (v === undefined) {
      if ((REQUIRED as readonly string[]).includes(col)) throw fail(`empty cell in ${label(col)}`);
      return undefined;
    }
    const x = fromText && typeof v === 'string' && /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(v) ? Number(v) : typeof v === 'number' ? v : NaN;
    if (!Number.isFinite(x)) throw fail(`${label(col)} is not a number: ${JSON.stringify(v)}`);
    if (!check(x)) throw fail(`${label(col)} must be ${expect}, got ${v}`);
    return x;
  };
  const benchmark = value('benchmark');
  if (typeof benchmark !== 'string' || benchmark.trim() === '') throw fail(`${label('benchmark')} must be a non-empty name, got ${JSON.stringify(benchmark)}`);
  const pct = (x: number) => x >= 0 && x <= 100;
  const row: MetricsRow = {
    benchmark: benchmark.trim(),
    lambda: num('lambda', () => true, 'a number')!,
    mean: num('mean', pct, 'a percentage in [0, 100]')!,
    tokens: num('tokens', (x) => x >= 0, 'a non-negative token count')!,
    thinkRatio: num('think_ratio', pct, 'a percentage in [0, 100]')!,
  };
  const k = num('k', (x) => Number.isSafeInteger(x) && x >= 1, 'a positive integer');
  if (k !== undefined) row.k = k;
  const best = num('best', pct, 'a percentage in [0, 100]');
  if (best !== undefined) row.best = best;
  return row;
}

function checkDuplicate(row: MetricsRow, lineNo: number, where: Map<string, number>, file: string): void {
  const key = `${row.benchmark}\u0000${row.lambda}`;
  const first = where.get(key);
  if (first !== undefined) throw malformed(file, lineNo, `second row for benchmark '${row.benchmark}' at lambda ${row.lambda} (first at line ${first})`);
  where.set(key, lineNo);
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Offsets where each element of a top-level JSON array starts (text already parsed, so valid). */
function elementStarts(text: string): number[] {
  const starts: number[] = [];
  let depth = 0;
  let inString = false;
  let expectElement = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
      continue;
    }
    if (/\s/.test(ch)) continue;
    if (depth === 1 && expectElement && ch !== ']') {
      starts.push(i);
      expectElement = false;
    }
    if (ch === '"') inString = true;
    else if (ch === '[' || ch === '{') {
      depth++;
      if (depth === 1) expectElement = true;
    } else if (ch === ']' || ch === '}') depth--;
    else if (ch === ',' && depth === 1) expectElement = true;
  }
  return starts;
}
