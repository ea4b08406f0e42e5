/** The non-tensor files of an output model: index, sidecars, config dtype and the model card. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Checkpoint, INDEX_FILE } from '../model/checkpoint';
import { confinedRealPath } from '../model/paths';
import type { PlannedModel } from './plan';
import { FloatDtype, TORCH_DTYPE_NAMES } from '../format/dtypes';

/** index.json rebuilt from what was planned and written: total_size is the tensor bytes, as HF writes it. */
export async function writeIndex(model: PlannedModel): Promise<void> {
  if (!model.indexed) return;
  const weightMap: Record<string, string> = {};
  for (const name of Object.keys(model.weightMap).sort()) weightMap[name] = model.weightMap[name];
  const doc = { metadata: { total_size: model.tensorBytes }, weight_map: weightMap };
  await fs.promises.writeFile(path.join(model.dir, INDEX_FILE), JSON.stringify(doc, null, 2) + '\n');
}

/** Copies the sidecar files (config, tokenizer, templates, …) of `from`; rewrites config's dtype when it changed. */
export async function copySidecars(from: Checkpoint, dir: string, dtype: FloatDtype | undefined): Promise<string[]> {
  const copied: string[] = [];
  for (const name of from.sidecars) {
    const src = confinedRealPath(from.dir, name, from.dir);
    const dst = path.join(dir, name);
    if (name === 'config.json' && dtype && from.config) {
      const config = { ...from.config };
      if ('dtype' in config) config.dtype = TORCH_DTYPE_NAMES[dtype];
      else config.torch_dtype = TORCH_DTYPE_NAMES[dtype];
      await fs.promises.writeFile(dst, JSON.stringify(config, null, 2) + '\n');
    } else {
      await fs.promises.copyFile(src, dst);
    }
    copied.push(name);
  }
  return copied;
}

/** Where a hub-sourced input came from (lib/hub's HubSource; declared here so that engine/ needs nothing above it). */
export interface SourceCommit {
  repo: string;
  revision: string;
  commit: string;
}

export interface ModelCard {
  title: string;
  /** `hub`: the source came from the hub; the card names its repo and commit. */
  sources: { role: string; dir: string; hub?: SourceCommit }[];
  lines: string[];
  recipe: Record<string, unknown>;
}

export async function writeModelCard(dir: string, card: ModelCard): Promise<void> {
  const front = [
    '---',
    'library_name: transformers',
    'tags:',
    '- merge',
    '- weightmix',
    'base_model:',
    ...card.sources.map((s) => `- ${s.hub?.repo ?? s.dir}`),
    '---',
  ];
  const body = [
    `# ${card.title}`,
    '',
    'Merged with [weightmix](https://www.npmjs.com/package/weightmix).',
    '',
    ...card.sources.map((s) => `- ${s.role}: ${describeSource(s)}`),
    ...card.lines.map((l) => `- ${l}`),
    '',
    '## Recipe',
    '',
    '```json',
    JSON.stringify(card.recipe, null, 2),
    '```',
    '',
  ];
  await fs.promises.writeFile(path.join(dir, 'README.md'), [...front, ...body].join('\n'));
}

/** "`ORG/NAME` at commit SHA (revision main)" for a hub source, the folder otherwise. */
function describeSource(s: { dir: string; hub?: SourceCommit }): string {
  return s.hub ? `\`${s.hub.repo}\` at commit \`${s.hub.commit}\` (revision \`${s.hub.revision}\`)` : `\`${s.dir}\``;
}

/** A source's short name: `ORG/NAME` for a hub model, the folder's name otherwise. */
export function modelName(model: { dir: string; hub?: SourceCommit }): string {
  return model.hub?.repo ?? path.basename(model.dir);
}
