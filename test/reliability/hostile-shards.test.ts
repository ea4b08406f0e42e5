/**
 * Every malformed safetensors file of the corpus (test/helpers/malformed.ts), as the one shard of
 * the Instruct model, through the command line: exit status 1, exactly one stderr line starting
 * `weightmix: error:` that names the file, no stack, nothing beside the output.
 *
 * A process per case would cost the CI budget (~0.3 s of CPU each), so every case runs through the
 * CLI's own `main()` in this process, and the first case of each error code also through a
 * spawned `node bin/weightmix.js`, which proves the process boundary (exit status, stderr) too.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CheckpointPair } from '../../lib/fixtures/fixture';
import { cachedPair, ensureCliBuilt, expectOneLineError, leftoversBeside, runCli, runCliInProcess, type CliResult, scratchDir } from '../helpers/cli';
import { malformedCases, type MalformedCase } from '../helpers/malformed';

let work: string;
let pair: CheckpointPair;

beforeAll(async () => {
  ensureCliBuilt();
  work = scratchDir('shards');
  pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 7 });
}, 180_000);
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const cases = malformedCases();
const firstOfEachCode = cases.filter((c, i) => cases.findIndex((d) => d.code === c.code) === i);

function modelWith(c: MalformedCase, tag: string): { model: string; out: string } {
  const dir = path.join(work, `${tag}-${c.code}--${c.name}`);
  const model = path.join(dir, 'instruct');
  fs.mkdirSync(model, { recursive: true });
  fs.writeFileSync(path.join(model, 'model.safetensors'), c.bytes);
  fs.copyFileSync(path.join(pair.instruct, 'config.json'), path.join(model, 'config.json'));
  return { model, out: path.join(dir, 'out') };
}

function expectRejected(result: CliResult, out: string): void {
  const line = expectOneLineError(result, 1);
  expect(line).toContain('model.safetensors');
  expect(leftoversBeside(out)).toEqual([]);
}

test.each(cases.map((c) => [`${c.code}--${c.name}`, c] as const))('through main(): %s', async (_, c) => {
  const { model, out } = modelWith(c, 'main');
  const result = await runCliInProcess(['interpolate', '--instruct', model, '--thinking', pair.thinking, '--lambda', '0.8', '-o', out]);
  expectRejected(result, out);
});

test.concurrent.each(firstOfEachCode.map((c) => [`${c.code}--${c.name}`, c] as const))('through a spawned CLI: %s', async (_, c) => {
  await new Promise<void>((resolve) => {
    const wait = () => (pair ? resolve() : setTimeout(wait, 50));
    wait();
  });
  const { model, out } = modelWith(c, 'spawn');
  const result = await runCli(['interpolate', '--instruct', model, '--thinking', pair.thinking, '--lambda', '0.8', '-o', out]);
  expectRejected(result, out);
});
