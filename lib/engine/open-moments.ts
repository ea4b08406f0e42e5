/**
 * Moments resolved in the write pass (native/local_moments.h): a `linear` recipe whose coefficients
 * depend on moments of its tensor (slerp's angle, a Gram matrix, model_stock's cosines) leaves them
 * open. The worker that holds the tensor's sources sums the pairs as the moments pass would and calls
 * back here; `resolve` (the method's own coefficients code) answers with the dest's op and weights.
 */
import { checkMomentsLength, Moments, momentsAt } from './moments-layout';

/** What a recipe leaves open: the pairs of its models to sum, and how the sums decide the tensor. */
export interface OpenMoments {
  /** Pairs of checkpoint indices (each in the recipe's `models`), in the order `resolve` gets their moments. */
  pairs: [number, number][];
  /** Elements per piece of the moments pass whose sums these must equal (its blockBytes / 4). */
  pieceElements: number;
  /** Elements of the tensor. */
  count: number;
  /** The tensor from its pairs' moments: a copy of one model or weights over some of the recipe's models. */
  resolve(moments: Moments[]): { op: 'copy'; model: number } | { op: 'linear'; models: number[]; w: number[] };
}

/** The open dests of one plan, by the callback id their params carry. */
export class OpenMomentsTable {
  private readonly answers: ((moments: Float64Array) => number[])[] = [];

  get size(): number {
    return this.answers.length;
  }

  /** The params of an open dest whose job reads the checkpoints `used` (its source list), registering how to answer it. */
  add(open: OpenMoments, used: readonly number[]): number[] {
    const source = (model: number) => {
      const s = used.indexOf(model);
      if (s < 0) throw new Error(`internal: open moments name checkpoint ${model}, which the job does not read`);
      return s;
    };
    const id = this.answers.length;
    this.answers.push((flat) => {
      checkMomentsLength(flat, open.pairs.length);
      const r = open.resolve(open.pairs.map((_, j) => momentsAt(flat, j, open.count)));
      if (r.op === 'copy') return [0, source(r.model)];
      // As plan.ts's writeDest: weights indexed by the job's source list, summed in f64.
      const w = new Array<number>(used.length).fill(0);
      r.models.forEach((m, k) => (w[source(m)] += r.w[k]));
      return [1, ...w];
    });
    return [open.pieceElements, id, open.pairs.length, ...open.pairs.flatMap(([a, b]) => [source(a), source(b)])];
  }

  /** The answer to the engine's call for dest `id` (native/local_moments.h's CoefficientsFn). */
  answer(id: number, moments: Float64Array): number[] {
    const f = this.answers[id];
    if (f === undefined) throw new Error(`internal: the engine asked for open moments ${id}, which the plan does not have`);
    return f(moments);
  }
}
