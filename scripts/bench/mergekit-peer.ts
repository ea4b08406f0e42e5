/**
 * The peer section's mergekit rows: the paper's baselines and the everyday recipes (linear, ties, dare_ties at density 0.5,
 * recipes as tmpfs-methods.ts writes them) merged by mergekit on the CPU and by weightmix, warm inputs → tmpfs, one run each,
 * paired. Optional: only where a Python can import mergekit (`--mergekit-python`, else WEIGHTMIX_MERGEKIT_PYTHON, else the
 * peer's Python); skipped with the reason elsewhere. mergekit is never a dependency: it is installed by hand (docs/mergekit-parity.md).
 */
import { spawnSync } from 'node:child_process';
import type { CachedPair } from './fixtures';
import { fastStorageSamples } from './fast-storage';
import { Interrupted, type Timed } from './system';
import { cli, log, notes, rows } from './common';
import { withRecipeFiles } from './tmpfs-methods';

/** The recipes timed against mergekit: what mergekit users run every day, and the paper's baselines (TA is linear of task vectors). */
export const MERGEKIT_PEER_METHODS = ['linear', 'ties', 'dare_ties'];

type MergekitPython = { python: string; version: string } | { reason: string };

/** mergekit's version where `python` can import it, else null. */
function mergekitVersion(python: string): string | null {
  const r = spawnSync(python, ['-W', 'ignore', '-c', 'import importlib.metadata as m, mergekit.scripts.run_yaml; print(m.version("mergekit"))'], {
    encoding: 'utf8',
  });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** The Python named by --mergekit-python (never passed over for another), else the first of the others that can import mergekit. */
export function findMergekitPython(explicit: string | undefined, others: (string | null | undefined)[]): MergekitPython {
  for (const python of explicit ? [explicit] : others) {
    if (!python) continue;
    const version = mergekitVersion(python);
    if (version !== null) return { python, version };
  }
  return explicit
    ? { reason: `--mergekit-python ${explicit} cannot import mergekit` }
    : { reason: 'no Python that can import mergekit (--mergekit-python or WEIGHTMIX_MERGEKIT_PYTHON; install it by hand)' };
}

export function runMergekitPeer(pair: CachedPair, tmpfs: string | null, mergekit: MergekitPython) {
  if ('reason' in mergekit) {
    notes.push(`peer (mergekit): skipped, ${mergekit.reason}`);
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
    let theirs: Timed;
    try {
      theirs = fastStorageSamples(pair, tmpfs, 1, (out) => [mergekit.python, '-W', 'ignore', '-m', 'mergekit.scripts.run_yaml', recipe, out])[0].run;
    } catch (e) {
      if (e instanceof Interrupted) throw e;
      // mergekit is optional: its failure (a recipe it refuses, memory) is noted, and the bench goes on.
      notes.push(`peer (mergekit): ${method} failed: ${(e as Error).message.split('\n')[0]}`);
      return;
    }
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
