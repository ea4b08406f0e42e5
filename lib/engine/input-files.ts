import type { NativeDtype, NativeSource } from './native';

/** The input files of a native plan: each path listed once and addressed by its index. */
export class InputFiles {
  readonly paths: string[] = [];
  private readonly index = new Map<string, number>();

  indexOf(file: string): number {
    let i = this.index.get(file);
    if (i === undefined) {
      i = this.paths.push(file) - 1;
      this.index.set(file, i);
    }
    return i;
  }

  /** A tensor's place in a file as a plan source (its file listed here). */
  source(at: { file: string; offset: number; dtype: NativeDtype }): NativeSource {
    return { input: this.indexOf(at.file), offset: at.offset, dtype: at.dtype };
  }
}
