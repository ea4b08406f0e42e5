/**
 * What opening one model of a run leaves for opening the next (openModels' models, one after the other). Models saved
 * alike (an Instruct/Thinking pair of one architecture: the same tensors at the same offsets in the same shards, the same
 * index) are then read and checked once: the later model shares the earlier one's header columns, its table's columns and
 * its index's verdict. Each is shared only where its inputs are the same bytes or the same objects, so every answer is the
 * one a fresh open would give; on the 18,867-tensor MoE pair this saves ~30 ms of the second model's ~40 (BENCHMARKS.md).
 */
import { Buffer } from 'node:buffer';
import type { WeightMapColumns } from '../format/json-tables';
import { HeaderMemo } from '../format/header-memo';
import type { HeaderColumns } from '../format/header-columns';
import type { TensorTable } from './tensor-table';

/** A table built over shards whose headers had these columns, at these data starts. */
interface KeptTable {
  columns: readonly HeaderColumns[];
  dataStarts: readonly number[];
  table: TensorTable & { tensorBytes: number };
}

/** An index's columns, and the tables (by their columns) that the addon found to agree with it. */
interface KeptIndex {
  bytes: Buffer;
  columns: WeightMapColumns;
  agreed: { names: readonly string[]; fileIndex: Uint32Array; shardNames: readonly string[] }[];
}

export class OpenMemo {
  readonly headers = new HeaderMemo();
  private readonly tables: KeptTable[] = [];
  private readonly indexes: KeptIndex[] = [];

  /**
   * A table over shards of these columns and data starts, built before: its columns shared, its own files and shard names.
   * Undefined where none was.
   */
  sharedTable(
    columns: readonly HeaderColumns[],
    dataStarts: readonly number[],
    files: readonly string[],
    shardNames: readonly string[],
  ): (TensorTable & { tensorBytes: number }) | undefined {
    const kept = this.tables.find((t) => sameItems(t.columns, columns) && sameItems(t.dataStarts, dataStarts));
    // A table's byName stays its own (indexOfName sets it on first use).
    return kept && { ...kept.table, files, shardNames, byName: undefined };
  }

  keepTable(columns: readonly HeaderColumns[], dataStarts: readonly number[], table: TensorTable & { tensorBytes: number }): void {
    this.tables.push({ columns, dataStarts, table });
  }

  /** The columns of an index read before with these bytes, or undefined. */
  indexColumns(bytes: Buffer): WeightMapColumns | undefined {
    return this.indexes.find((i) => i.bytes.equals(bytes))?.columns;
  }

  keepIndex(bytes: Buffer, columns: WeightMapColumns): void {
    this.indexes.push({ bytes, columns, agreed: [] });
  }

  /** Whether the addon found these index columns to agree with a table of the same names, files and shard names. */
  agreed(columns: WeightMapColumns, table: TensorTable): boolean {
    const kept = this.indexes.find((i) => i.columns === columns);
    return kept?.agreed.some((a) => a.names === table.names && a.fileIndex === table.fileIndex && sameItems(a.shardNames, table.shardNames)) ?? false;
  }

  noteAgreed(columns: WeightMapColumns, table: TensorTable): void {
    this.indexes.find((i) => i.columns === columns)?.agreed.push({ names: table.names, fileIndex: table.fileIndex, shardNames: table.shardNames });
  }
}

function sameItems<T>(a: readonly T[], b: readonly T[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
