/**
 * mergekit's PermutedEmbeddings (mergekit/tokenizer/embed.py), transcribed line by line over plain
 * arrays: the slow, obvious reference for lib/recipes/embedding-rows.ts + permuted-embeddings.ts.
 * Values are f64; `round` is the working dtype's rounding (each row of a model's new tensor is stored
 * in that dtype, as torch stores it); a mean is summed in f64 and rounded once.
 */

export type ReferenceSource = { model: number } | { zero: true } | { model: number; tokenId?: number; token?: string };

export interface ReferenceTokenSetting {
  source: ReferenceSource;
  force: boolean;
}

export interface ReferenceInput {
  /** The output vocabulary: token → id (ids 0 … size − 1). */
  vocab: Map<string, number>;
  /** Per model index: its own vocabulary (token → its row). */
  modelVocabs: Map<number, Map<string, number>>;
  /** Per model index: its tensor's rows. */
  tensors: Map<number, number[][]>;
  base: number | null;
  tokens: Map<string, ReferenceTokenSetting>;
  padToMultipleOf: number | null;
  round: (x: number) => number;
}

/** Per model: the rebuilt tensor's rows (already rounded). */
export function referencePermutedEmbeddings(input: ReferenceInput): Map<number, number[][]> {
  const { vocab, modelVocabs, tensors, base, round } = input;
  const models = [...new Set([...tensors.keys(), ...(base === null ? [] : [base])])];
  const p = (m: number, id: number): number => {
    const token = [...vocab].find(([, i]) => i === id)![0];
    return modelVocabs.get(m)!.get(token) ?? -1;
  };
  let vocabSize = vocab.size;
  if (input.padToMultipleOf && vocabSize % input.padToMultipleOf) vocabSize = (Math.floor(vocabSize / input.padToMultipleOf) + 1) * input.padToMultipleOf;
  const width = tensors.get(models[0])![0].length;

  // assign_embedding_sources
  const configs = new Map(input.tokens);
  const toAverage = new Set<string>();
  for (const [token, id] of vocab) {
    if (configs.has(token)) continue;
    const has = models.map((m) => p(m, id) >= 0);
    const present = has.filter((x) => x).length;
    if (present === 1) {
      configs.set(token, { source: { model: models[has.indexOf(true)] }, force: false });
      continue;
    }
    if (present === 0) {
      configs.set(token, { source: { zero: true }, force: false });
      continue;
    }
    if (base !== null && p(base, id) >= 0) {
      configs.set(token, { source: { model: base }, force: false });
      continue;
    }
    toAverage.add(token);
  }

  const defaults = new Map<string, number[]>();
  for (const [token, id] of vocab) {
    let embed = new Array<number>(width).fill(0);
    if (toAverage.has(token)) {
      let count = 0;
      for (const m of models) {
        if (p(m, id) < 0) continue;
        embed = embed.map((x, j) => x + tensors.get(m)![p(m, id)][j]);
        count++;
      }
      embed = embed.map((x) => x / count);
    } else if (configs.has(token)) {
      const source = configs.get(token)!.source;
      if ('zero' in source) {
        // zeros
      } else if ('tokenId' in source || 'token' in source) {
        const row = source.tokenId ?? modelVocabs.get(source.model)!.get(source.token!)!;
        embed = [...tensors.get(source.model)![row]];
      } else {
        embed = [...tensors.get(source.model)![p(source.model, id)]];
      }
    } else continue;
    defaults.set(token, embed);
  }

  const result = new Map<number, number[][]>();
  for (const m of models) {
    const rows: number[][] = Array.from({ length: vocabSize }, () => new Array<number>(width).fill(0));
    for (const [token, id] of vocab) {
      const force = input.tokens.get(token)?.force ?? false;
      if (p(m, id) >= 0 && !force) rows[id] = tensors.get(m)![p(m, id)].map(round);
      else rows[id] = defaults.get(token)!.map(round);
    }
    if (vocabSize > vocab.size) {
      const mean = new Array<number>(width).fill(0);
      for (let i = 0; i < vocab.size; i++) for (let j = 0; j < width; j++) mean[j] += rows[i][j];
      for (let i = vocab.size; i < vocabSize; i++) rows[i] = mean.map((x) => round(x / vocab.size));
    }
    result.set(m, rows);
  }
  return result;
}
