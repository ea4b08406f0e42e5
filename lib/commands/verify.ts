/** `weightmix verify OUT [--recompute [--samples N]]`: check a merged model; exit 1 with one line when it fails. */
import type { Command } from 'commander';
import { usageError, WeightmixError } from '../errors';
import type { VerifyReport } from '../analysis/verify';
import { abortOnSignals } from './signals';
import { plural } from '../plural';

interface VerifyCliOptions {
  recompute?: boolean;
  samples?: string;
  seed?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('verify')
    .description('check a merged model: shard headers, index against shards, the recorded recipe; with --recompute, sampled elements bit for bit')
    .argument('<dir>', 'model folder')
    .option(
      '--recompute',
      'recompute sampled elements from the source models the recipe records, and compare bit for bit (interpolate and sweep outputs; merge outputs get the structural checks only, and the report says so)',
    )
    .option('--samples <n>', 'elements recomputed per tensor, or "all" (default 64; the first and the last always)')
    .option('--seed <n>', 'which elements are sampled (default 0)')
    .option('--json', 'print the report as JSON')
    .action(async (dir: string, opts: VerifyCliOptions) => {
      if (!opts.recompute && (opts.samples !== undefined || opts.seed !== undefined))
        throw usageError('--samples and --seed apply only with --recompute (nothing is sampled without it)');
      // Loaded on use (cli.ts): the checks and the engine cost every other command's start-up.
      const { parseSamples, parseSeed, verify } = await import('../analysis/verify');
      const signals = abortOnSignals();
      let report: VerifyReport;
      try {
        report = await verify({
          dir,
          recompute: opts.recompute === true,
          samples: opts.samples === undefined ? undefined : parseSamples(opts.samples),
          seed: opts.seed === undefined ? undefined : parseSeed(opts.seed),
          signal: signals.signal,
        });
      } finally {
        signals.dispose();
      }
      process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatVerifyReport(report));
      if (!report.ok) {
        const more = report.problems.length > 1 ? ` (and ${report.problems.length - 1} more problem${report.problems.length > 2 ? 's' : ''})` : '';
        throw new WeightmixError('VerifyFailed', `verification failed: ${report.problems[0]?.message ?? 'recomputed elements differ'}${more}`);
      }
    });
}

/** The human-readable report `verify` prints. */
export function formatVerifyReport(r: VerifyReport): string {
  const lines: string[] = [];
  if (!r.opened) {
    // Its shard count and recipe are unknown: a damaged weightmix output is not "not a weightmix output".
    lines.push(`FAILED ${r.dir}: the model did not open, so its tensors and recorded recipe were not read`);
    for (const p of r.problems) lines.push(`problem: ${p.message}`);
    return `${lines.join('\n')}\n`;
  }
  lines.push(
    `${r.ok ? 'verified' : 'FAILED'} ${r.dir}: ${plural(r.shards, 'shard file')}, ${r.tensors} tensors, ${r.tensorBytes} bytes of tensor data${r.indexed ? ', index' : ''}`,
  );
  const rec = r.recipe;
  if (!rec) lines.push('recipe: none recorded (not a weightmix output; structure checked only)');
  else if (rec.method === 'interpolate') {
    lines.push(
      `recipe: interpolate λ = ${rec.lambda}, numerics ${rec.numerics}, ${rec.selection}; Instruct ${rec.instruct}, Thinking ${rec.thinking} (weightmix ${rec.weightmix})`,
    );
  } else lines.push(`recipe: ${rec.method} (weightmix ${rec.weightmix})`);
  if (r.recomputed) {
    const m = r.recomputed;
    lines.push(
      `recomputed ${m.elements} elements of ${m.tensors} tensors from the sources: ` +
        (m.mismatchCount === 0 ? 'all identical, bit for bit' : `${m.mismatchCount} differ`),
    );
  }
  if (r.recomputeSkipped) lines.push(`values not recomputed: ${r.recomputeSkipped}`);
  for (const p of r.problems) lines.push(`problem: ${p.message}`);
  return `${lines.join('\n')}\n`;
}
