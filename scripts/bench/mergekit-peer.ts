/**
 * The peer section's mergekit rows: the paper's baselines and the everyday recipes (linear, ties, dare_ties at density 0.5,
 * recipes as tmpfs-methods.ts writes them) merged by mergekit on the CPU and by weightmix, warm inputs → tmpfs, one run each,
 * paired. Optional: only where a Python can import mergekit (`--mergekit-python`, else WEIGHTMIX_MERGEKIT_PYTHON, else the
 * peer's Python); skipped with the reason elsewhere. mergekit is never a dependency: it is installed by hand (docs/mergekit-parity.md).
 */
import { spawnSync } from 'node:child_process';
import type { CachedPair } from './fixtures';
import { fastStorageSamples } from './fast-storage';
import { cli, log, notes, rows } from './common';
import { withRecipeFiles } from './tmpfs-methods';

/** The recipes timed against mergekit: what mergekit users run every day, and the paper's baselines (TA is linear of task vectors). */
export const MERGEKIT_PEER_METHODS = ['linear', 'ties', 'dare_ties'];

/** The first of the candidates that can import mergekit, with the version it reports; null where none can. */
export function findMergekitPython(candidates: (string | null | undefined)[]): { python: string; version: string } | null {
  for (const python of candidates) {
    if (!python) continue;
    const r = spawnSync(python, ['-W', 'ignore', '-c', 'import importlib.metadata as m, mergekit.scripts.run_yaml; print(m.version("mergekit"))'], {
      encoding: 'utf8',
    });
    if (r.status === 0) return { python, version: r.stdout.trim() };
  }
  return null;
}

export function runMergekitPeer(pair: CachedPair, tmpfs: string | null, mergekit: { python: string; version: string } | null) {
  if (!mergekit) {
    notes.push('peer (mergekit): skipped, no Python that can import mergekit (--mergekit-python or WEIGHTMIX_MERGEKIT_PYTHON; install it by hand)');
    return;
  }
  if (!tmpfs) {
    notes.push('peer (mergekit): skipped, no tmpfs for the outputs');
    return;
  }
  withRecipeFiles({ ...pair, third: null }, MERGEKIT_PEER_METHODS, (method, recipe) => {
    log(`peer mergekit ${method}`);
    const ours = fastStorageSamples(pair, tmpfs, 1, (out) => cli(['merge', recipe, '-o', out]))[0].run;
    // run_yaml's defaults: the CPU, lazy loading off, one thread of torch's choosing; -W ignore: pydantic's field warnings.
    const theirs = fastStorageSamples(pair, tmpfs, 1, (out) => [mergekit.python, '-W', 'ignore', '-m', 'mergekit.scripts.run_yaml', recipe, out])[0].run;
    for (const [who, run] of [
      ['weightmix', ours],
      [`mergekit ${mergekit.version}`, theirs],
    ] as const) {
      rows.push({
        section: 'peer',
        pair: pair.spec.label,
        what: `${who} ${method} (recipe as scripts/bench/tmpfs-methods.ts writes it) warm → ${tmpfs}`,
        seconds: run.seconds,
        outBytes: pair.fileBytesPerModel,
        peakRss: run.peakRss,
        note: who === 'weightmix' ? undefined : `weightmix ${(run.seconds / ours.seconds).toFixed(1)}× faster (${ours.seconds.toFixed(2)} s)`,
      });
    }
  });
}
