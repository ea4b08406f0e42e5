/**
 * Headers already parsed while one run opens its models: a shard whose header bytes and file size equal one parsed
 * before (the models of a pair saved alike store the same tensors at the same offsets) takes that one's columns instead
 * of being parsed and validated again. Both were validated by the same rules on the same bytes, so the answer is the same.
 * Columns are never written once made, so two headers can share them.
 */
import type { HeaderColumns } from './header-columns';

interface ParsedHeader {
  json: Buffer;
  fileSize: number;
  columns: HeaderColumns;
  metadata: Record<string, string> | null;
}

export class HeaderMemo {
  // By header length: a lookup compares bytes only with headers of its length.
  private readonly byLength = new Map<number, ParsedHeader[]>();

  /** The columns and metadata (a copy, the caller's own) of a header with these bytes in a file of this size, if one was kept. */
  find(json: Buffer, fileSize: number): { columns: HeaderColumns; metadata: Record<string, string> | null } | undefined {
    const known = this.byLength.get(json.length)?.find((p) => p.fileSize === fileSize && p.json.equals(json));
    if (known === undefined) return undefined;
    return { columns: known.columns, metadata: known.metadata && Object.assign(Object.create(null) as Record<string, string>, known.metadata) };
  }

  /** Keeps a header parsed and validated from `json` (bytes and metadata copied: the caller may reuse its buffer, and its object stays its own). */
  keep(json: Buffer, fileSize: number, columns: HeaderColumns, metadata: Record<string, string> | null): void {
    const kept = { json: Buffer.from(json), fileSize, columns, metadata: metadata && Object.assign(Object.create(null) as Record<string, string>, metadata) };
    const same = this.byLength.get(json.length);
    if (same === undefined) this.byLength.set(json.length, [kept]);
    else same.push(kept);
  }
}
