/** The peer section: the same merge in PyTorch (peer_torch.py) against weightmix warm. */
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import type { CachedPair } from './fixtures';
import { timeCommand, warm } from './system';
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

export function runPeer(pair: CachedPair, work: string, python: string | null) {
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
  for (const variant of ['bf16', 'lerp'] as const) {
    rmOut(out);
    warm(pair.files);
    const t = timeCommand([
      python,
      path.join(__dirname, 'peer_torch.py'),
      '--instruct',
      pair.instruct,
      '--thinking',
      pair.thinking,
      '--lambda',
      '0.8',
      '-o',
      out,
      '--variant',
      variant,
    ]);
    rmOut(out);
    // The peer fsyncs every file it wrote before it reports (weightmix fdatasyncs every shard), so t.seconds, the whole
    // process, includes the data reaching the disk. Before the sync = the whole process less the script's own sync time.
    const report = JSON.parse(t.stdout.trim().split('\n').pop() ?? '{}') as { seconds?: number; seconds_unsynced?: number; sync_seconds?: number };
    const syncSeconds = typeof report.sync_seconds === 'number' ? report.sync_seconds : NaN;
    const unsynced = t.seconds - syncSeconds;
    rows.push({
      section: 'peer',
      pair: pair.spec.label,
      what: `torch ${version} ${variant === 'bf16' ? "paper's bf16 a+λ(b−a)" : 'torch.lerp f32'} warm, fsync of every shard included`,
      seconds: t.seconds,
      outBytes: pair.fileBytesPerModel,
      peakRss: t.peakRss,
      target: { limit: 15, text: 'weightmix warm ≥ 15× faster', value: t.seconds / wm },
      note:
        `${unsynced.toFixed(2)} s before the fsyncs (what save_file alone gives), ` +
        `${t.seconds.toFixed(2)} s after them (${syncSeconds.toFixed(2)} s of fsync); speed-up from the synced time ${(t.seconds / wm).toFixed(1)}×`,
    });
  }
}
