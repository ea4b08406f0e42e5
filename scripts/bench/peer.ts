/**
 * The peer section: the same merge in PyTorch (peer_torch.py) against weightmix, warm inputs, to the disk under test and to
 * tmpfs. The speed target is the tmpfs rows': to a disk both programs wait on the same writes (on a slow one no engine can be
 * 15 × a peer that is itself near the write floor), where the target was set for fast storage, on which the engines decide.
 */
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import type { CachedPair } from './fixtures';
import { timeCommand, warm } from './system';
import { fastStorageSamples } from './fast-storage';
import { interpolateArgs, notes, rmOut, rows } from './common';
import { warmSeconds } from './disk';

export function findPython(explicit?: string): string | null {
  const candidates = [explicit, '/tmp/venv-torch/bin/python', 'python3'].filter(Boolean) as string[];
  for (const py of candidates) {
    const r = spawnSync(py, ['-c', 'import torch, safetensors; print(torch.__version__)'], { encoding: 'utf8' });
    if (r.status === 0) return py;
  }
  return null;
}

export function runPeer(pair: CachedPair, work: string, python: string | null, tmpfs: string | null) {
  if (!python) {
    notes.push('peer: skipped, no Python with torch and safetensors (`python3 -c "import torch"` failed)');
    return;
  }
  const version = spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).stdout.trim();
  let wm = warmSeconds.get(pair.dir);
  const out = path.join(work, 'out-peer');
  if (wm === undefined) {
    rmOut(out);
    warm(pair.files);
    const t = timeCommand(interpolateArgs(pair, out));
    rmOut(out);
    wm = t.seconds;
    rows.push({
      section: 'peer',
      pair: pair.spec.label,
      what: 'weightmix interpolate λ=0.8 warm',
      seconds: t.seconds,
      outBytes: pair.fileBytesPerModel,
      peakRss: t.peakRss,
    });
  }
  const torchArgs = (variant: 'bf16' | 'lerp', to: string) => [
    python,
    path.join(__dirname, 'peer_torch.py'),
    '--instruct',
    pair.instruct,
    '--thinking',
    pair.thinking,
    '--lambda',
    '0.8',
    '-o',
    to,
    '--variant',
    variant,
  ];
  const label = (variant: 'bf16' | 'lerp') => `torch ${version} ${variant === 'bf16' ? "paper's bf16 a+λ(b−a)" : 'torch.lerp f32'}`;
  for (const variant of ['bf16', 'lerp'] as const) {
    rmOut(out);
    warm(pair.files);
    const t = timeCommand(torchArgs(variant, out));
    rmOut(out);
    // The peer fsyncs every file it wrote before it reports (weightmix fdatasyncs every shard), so t.seconds, the whole
    // process, includes the data reaching the disk. Before the sync = the whole process less the script's own sync time.
    const report = JSON.parse(t.stdout.trim().split('\n').pop() ?? '{}') as { seconds?: number; seconds_unsynced?: number; sync_seconds?: number };
    const syncSeconds = typeof report.sync_seconds === 'number' ? report.sync_seconds : NaN;
    const unsynced = t.seconds - syncSeconds;
    rows.push({
      section: 'peer',
      pair: pair.spec.label,
      what: `${label(variant)} warm, fsync of every shard included`,
      seconds: t.seconds,
      outBytes: pair.fileBytesPerModel,
      peakRss: t.peakRss,
      note:
        `${unsynced.toFixed(2)} s before the fsyncs (what save_file alone gives), ` +
        `${t.seconds.toFixed(2)} s after them (${syncSeconds.toFixed(2)} s of fsync); speed-up from the synced time ${(t.seconds / wm).toFixed(1)}×`,
    });
  }
  if (!tmpfs) {
    notes.push('peer: the tmpfs rows (the speed target) skipped, no tmpfs for the outputs');
    return;
  }
  // Fast storage: each torch run paired with a weightmix run just before it, both warm → tmpfs (fsync is free there).
  for (const variant of ['bf16', 'lerp'] as const) {
    const ours = fastStorageSamples(pair, tmpfs, 1, (to) => interpolateArgs(pair, to))[0].run;
    const theirs = fastStorageSamples(pair, tmpfs, 1, (to) => torchArgs(variant, to))[0].run;
    rows.push({
      section: 'peer',
      pair: pair.spec.label,
      what: `${label(variant)} warm → ${tmpfs}, against weightmix interpolate λ=0.8 (${ours.seconds.toFixed(2)} s) just before it`,
      seconds: theirs.seconds,
      outBytes: pair.fileBytesPerModel,
      peakRss: theirs.peakRss,
      target: { limit: 15, text: 'weightmix warm → tmpfs ≥ 15× faster', value: theirs.seconds / ours.seconds },
      note: `speed-up ${(theirs.seconds / ours.seconds).toFixed(1)}× (torch ${theirs.seconds.toFixed(2)} s, weightmix ${ours.seconds.toFixed(2)} s, one pair of runs)`,
    });
  }
}
