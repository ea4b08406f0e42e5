/**
 * Where each row of a model's rebuilt embed_tokens / lm_head comes from: mergekit's PermutedEmbeddings
 * (mergekit/tokenizer/embed.py), decided once per tensor. A model keeps its own row of every token it
 * holds (unless the recipe forces the token); a token it lacks takes a default row: the recipe's
 * `tokens` entry, else the only holder's row, else the base model's, else the mean over the holders
 * (none: zeros). Rows past the vocabulary (`pad_to_multiple_of`) take the mean of the model's rows above.
 */
import { WeightmixError } from '../errors';
import type { OutputVocabulary } from './tokenizer-vocabulary';
import type { TokenRowSource, TokenSetting } from './recipe-types';

/** A row built from others: one model's row, the mean of several (each [model, row]), or zeros. */
export type DefaultRow = { kind: 'row'; model: number; row: number } | { kind: 'mean'; rows: [number, number][] } | { kind: 'zero' };

/** One model's rebuilt tensor: rows [0, vocabulary) from `own` (≥ 0: the model's row) or `defaults`; rows past it: the mean of those. */
export interface ModelRows {
  model: number;
  own: Int32Array;
  defaults: Map<number, DefaultRow>;
}

/**
 * The rows of one embedding tensor for each of `models` (the tensor's sources and the base model, as
 * mergekit's set of them). `sourceRows(m)` is model m's row count of the tensor. Throws a one-line
 * message where mergekit stops on an assertion.
 */
export function embeddingRows(
  vocabulary: OutputVocabulary,
  models: number[],
  base: number | null,
  settings: ReadonlyMap<string, TokenSetting>,
  sourceRows: (model: number) => number,
  label: (model: number) => string,
): ModelRows[] {
  const { tokens, permutations } = vocabulary;
  const has = (m: number, id: number) => permutations[m][id] >= 0;
  const defaultOf = (token: string, id: number): DefaultRow => {
    const setting = settings.get(token);
    if (setting) return settingRow(setting.source, token, id);
    const holders = models.filter((m) => has(m, id));
    if (holders.length === 1) return { kind: 'row', model: holders[0], row: permutations[holders[0]][id] };
    if (holders.length === 0) return { kind: 'zero' };
    if (base !== null && has(base, id)) return { kind: 'row', model: base, row: permutations[base][id] };
    return { kind: 'mean', rows: holders.map((m) => [m, permutations[m][id]]) };
  };
  function settingRow(source: TokenRowSource, token: string, id: number): DefaultRow {
    const where = `tokenizer.tokens.${JSON.stringify(token)}`;
    if (source.kind === 'zero') return { kind: 'zero' };
    if (source.kind === 'model') {
      if (!has(source.model, id))
        throw new WeightmixError('InvalidRecipe', `${where}: the source ${label(source.model)} does not have the token (mergekit stops on this)`);
      return { kind: 'row', model: source.model, row: permutations[source.model][id] };
    }
    let row = source.tokenId;
    if (row === null) {
      const j = vocabulary.modelVocabs[source.model].get(source.token!);
      if (j === undefined) throw new WeightmixError('InvalidRecipe', `${where}: ${JSON.stringify(source.token)} is not in ${label(source.model)}'s vocabulary`);
      row = j;
    }
    if (row < 0 || row >= sourceRows(source.model))
      throw new WeightmixError('InvalidRecipe', `${where}: token id ${row} is out of range for ${label(source.model)} (${sourceRows(source.model)} rows)`);
    return { kind: 'row', model: source.model, row };
  }

  const defaults = new Map<number, DefaultRow>();
  // mergekit builds every entry's row, needed or not, and stops on one it cannot build.
  for (const token of settings.keys()) {
    const id = vocabulary.vocab.get(token)!;
    defaults.set(id, defaultOf(token, id));
  }
  const needed = (id: number) => {
    if (!defaults.has(id)) defaults.set(id, defaultOf(tokens[id]!, id));
    return defaults.get(id)!;
  };
  return models.map((m) => {
    const own = new Int32Array(tokens.length).fill(-1);
    const mine = new Map<number, DefaultRow>();
    tokens.forEach((token, id) => {
      if (token === undefined) return;
      if (has(m, id) && !settings.get(token)?.force) own[id] = permutations[m][id];
      else mine.set(id, needed(id));
    });
    return { model: m, own, defaults: mine };
  });
}
