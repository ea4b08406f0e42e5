/** Which tensors get λ: `--layers` ranges and `--modules` / `--skip-modules` classes. */
import { usageError } from '../errors';
import { classifyTensor, MODULE_CLASSES, parseLayerRanges, parseModuleList, type SelectableModule } from './tensor-names';

export interface Selection {
  /** Inclusive decoder-layer ranges; when set, tensors outside decoder layers are not selected. */
  layers?: [number, number][];
  /** Module classes that get λ (default: all, including unclassified tensors). */
  modules?: SelectableModule[];
  /** Module classes that keep the Instruct weights. */
  skipModules?: SelectableModule[];
}

/** Which tensors get λ; the others keep the Instruct weights, byte for byte. Default: every tensor. */
export interface SelectionInput {
  /** Inclusive decoder-layer ranges: `"12-35"`, `"0-3,30-35"` or `[[12, 35]]`; tensors outside the layers are then not selected. */
  layers?: string | [number, number][];
  /** Only these module classes: `"attn,mlp"` or `['attn', 'mlp']`. */
  modules?: string | SelectableModule[];
  /** Every module class but these (excludes `modules`). */
  skipModules?: string | SelectableModule[];
}

/** `name` spells an option as the front door does: `--skip-modules` on the command line, `skipModules` in the API. */
export function parseSelection(input: SelectionInput, name: (key: string) => string = (k) => `--${k === 'skipModules' ? 'skip-modules' : k}`): Selection {
  if (input.modules !== undefined && input.skipModules !== undefined) {
    throw usageError(`${name('modules')} and ${name('skipModules')} exclude each other: give one`);
  }
  const sel: Selection = {};
  if (input.layers !== undefined)
    sel.layers = parseLayerRanges(typeof input.layers === 'string' ? input.layers : layerRangesText(input.layers, name('layers')));
  if (input.modules !== undefined) sel.modules = moduleClasses(input.modules, name('modules'));
  if (input.skipModules !== undefined) sel.skipModules = moduleClasses(input.skipModules, name('skipModules'));
  return sel;
}

/** A module list as the command line's text (parseModuleList checks its classes) or the API's array of class names. */
function moduleClasses(list: unknown, name: string): SelectableModule[] {
  if (typeof list === 'string') return parseModuleList(list);
  if (!Array.isArray(list) || list.length === 0 || !list.every((m) => typeof m === 'string')) {
    throw usageError(
      `${name} must be a comma list like "attn,mlp" or a non-empty array of module classes (${MODULE_CLASSES.join(', ')}), got ${JSON.stringify(list)}`,
    );
  }
  const unknown = list.find((m) => !(MODULE_CLASSES as readonly string[]).includes(m));
  if (unknown !== undefined) throw usageError(`${name}: unknown module class ${JSON.stringify(unknown)} (accepted: ${MODULE_CLASSES.join(', ')})`);
  return list as SelectableModule[];
}

/** The API's [first, last] pairs as the command line's text, so that both are checked alike (integers, first ≤ last). */
function layerRangesText(ranges: unknown, name: string): string {
  const pair = (r: unknown) => Array.isArray(r) && r.length === 2 && r.every((x) => typeof x === 'number');
  if (!Array.isArray(ranges) || !ranges.every(pair)) throw usageError(`${name} must be text like "12-35" or [first, last] pairs of layer indices`);
  return (ranges as [number, number][]).map(([a, b]) => `${a}-${b}`).join(',');
}

/** Whether the selection picks every tensor (none was given): no name to classify (a MoE model has tens of thousands). */
export function selectsAll(sel: Selection): boolean {
  return !sel.layers && !sel.modules && !sel.skipModules;
}

export function isSelected(name: string, sel: Selection): boolean {
  if (selectsAll(sel)) return true;
  const role = classifyTensor(name);
  if (sel.layers) {
    if (role.layer === null) return false;
    if (!sel.layers.some(([a, b]) => role.layer! >= a && role.layer! <= b)) return false;
  }
  if (sel.modules) return (sel.modules as string[]).includes(role.module);
  if (sel.skipModules) return !(sel.skipModules as string[]).includes(role.module);
  return true;
}

/** Refuses ranges that name layers the model does not have: a typo would otherwise merge nothing. */
export function checkLayersExist(sel: Selection, layerCount: number, name = '--layers'): void {
  for (const [a, b] of sel.layers ?? []) {
    if (b >= layerCount) throw usageError(`${name} ${a}-${b} is outside the model's ${layerCount} layers (0-${layerCount - 1})`);
  }
}

/** Refuses a skipped module class the model has none of: skipping it would change nothing, silently (a tied model's head). */
export function checkSkippedModulesExist(sel: Selection, names: readonly string[], name = '--skip-modules'): void {
  for (const m of sel.skipModules ?? []) {
    if (names.some((n) => classifyTensor(n).module === m)) continue;
    const tied = m === 'head' ? ` (${TIED_HEAD}; skip embed to keep it)` : '';
    throw usageError(`${name} ${m}: the model has no ${m} tensor, so skipping it would change nothing${tied}`);
  }
}

const TIED_HEAD = 'its embeddings are tied, tie_word_embeddings: embed_tokens is its head';

/** For a selection that matches no tensor: the modules it names that the model has none of, and why for a tied head ('' if none). */
export function absentModulesNote(sel: Selection, names: readonly string[]): string {
  const absent = (sel.modules ?? []).filter((m) => !names.some((n) => classifyTensor(n).module === m));
  if (absent.length === 0) return '';
  const tied = absent.includes('head') ? `; ${TIED_HEAD}, select embed to interpolate it` : '';
  return ` (the model has no ${absent.join(' or ')} tensor${tied})`;
}

export function describeSelection(sel: Selection): string {
  const parts: string[] = [];
  const whole = sel.modules || sel.skipModules ? 'all layers' : 'all tensors';
  parts.push(sel.layers ? `layers ${sel.layers.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(',')}` : whole);
  if (sel.modules) parts.push(`modules ${sel.modules.join(',')}`);
  if (sel.skipModules) parts.push(`except modules ${sel.skipModules.join(',')}`);
  return parts.join(', ');
}
