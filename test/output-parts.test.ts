/**
 * The output transaction for `--part` (lib/engine/output.ts, part-target.ts): parts publish file by file into one shared
 * target, and a part judges only this host's dead parts' temporary folders.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OutputTransaction } from '../lib/engine/output';
import { writeSafetensorsFile } from '../lib/format/safetensors';
import { deadPid, failure, ls, useCaseDirs, write } from './helpers/transaction-cases';

let dir: string;
useCaseDirs('wm-output-parts-', (d) => (dir = d));

/** A one-tensor shard of a job whose recorded recipe is `lambda` (a part's shard as the planner writes it), holding `value`. */
async function shard(file: string, lambda: number, value: number): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const data = Buffer.alloc(4);
  data.writeFloatLE(value);
  await writeSafetensorsFile(file, [{ name: 'model.norm.weight', dtype: 'F32', shape: [1], data }], {
    format: 'pt',
    weightmix: JSON.stringify({ method: 'interpolate', lambda, instruct: `/mnt/${value}/instruct` }),
  });
}
const valueOf = (file: string) => fs.readFileSync(file).readFloatLE(fs.readFileSync(file).length - 4);
/** Part `index` of `count` of the job whose shards `shard` writes with `lambda`. */
const job = (index: number, count: number, lambda = 0.8) => ({ index, count, recipe: JSON.stringify({ method: 'interpolate', lambda }) });

describe('per-file publish (--part)', () => {
  test('parts publish their files into one shared target; existing shards are refused without --force and replaced with it', async () => {
    const target = path.join(dir, 'out');
    const dead = deadPid();
    const otherMachine = `.out.weightmix-tmp-${dead}-0123abcd`;
    fs.mkdirSync(path.join(dir, otherMachine)); // a part elsewhere: not ours to judge
    const shards = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    const p1 = await OutputTransaction.begin(target, { mergeInto: true, lockName: 'part-1-of-2' });
    const p2 = await OutputTransaction.begin(target, { mergeInto: true, lockName: 'part-2-of-2' });
    p1.partOf(shards, job(1, 2));
    p2.partOf(shards, job(2, 2));
    await shard(path.join(p1.tempDir, 'model-00001-of-00002.safetensors'), 0.8, 1);
    write(path.join(p1.tempDir, 'config.json'), '{"a":1}');
    await shard(path.join(p2.tempDir, 'model-00002-of-00002.safetensors'), 0.8, 2);
    write(path.join(p2.tempDir, 'config.json'), '{"a":1}');
    await p2.commit();
    // Part 1's shard is not there yet: the folder records the job's part count.
    expect(ls(target)).toEqual(['.weightmix-parts.json', 'config.json', 'model-00002-of-00002.safetensors']);
    await p1.commit();
    expect(ls(target)).toEqual(['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(ls(dir)).toEqual([otherMachine, 'out'].sort());

    const again = await OutputTransaction.begin(target, { mergeInto: true, lockName: 'part-1-of-2' });
    again.partOf(shards, job(1, 2, 0.5));
    // A part of another job (λ 0.5): its recipe differs from the shards there.
    await shard(path.join(again.tempDir, 'model-00001-of-00002.safetensors'), 0.5, 3);
    write(path.join(again.tempDir, 'config.json'), '{"a":1}'); // every part writes the same sidecars
    const err = await failure(again.commit());
    expect(err.code).toBe('OutputExists');
    expect(err.message).toBe(
      `${path.join(target, 'model-00001-of-00002.safetensors')} is a shard of another merge (use --force, or force: true in the API, to replace it)`,
    );
    await again.abort();
    expect(valueOf(path.join(target, 'model-00001-of-00002.safetensors'))).toBe(1);

    // The same job's part again, its inputs reached by another path (the recipe records it): a restart, published.
    const restarted = await OutputTransaction.begin(target, { mergeInto: true, lockName: 'part-2-of-2' });
    restarted.partOf(shards, job(2, 2));
    await shard(path.join(restarted.tempDir, 'model-00002-of-00002.safetensors'), 0.8, 2);
    write(path.join(restarted.tempDir, 'config.json'), '{"a":1}');
    await restarted.commit();

    const forced = await OutputTransaction.begin(target, { mergeInto: true, force: true, lockName: 'part-1-of-2' });
    forced.partOf(shards, job(1, 2, 0.5));
    await shard(path.join(forced.tempDir, 'model-00001-of-00002.safetensors'), 0.5, 3);
    await forced.commit();
    expect(valueOf(path.join(target, 'model-00001-of-00002.safetensors'))).toBe(3);
    expect(valueOf(path.join(target, 'model-00002-of-00002.safetensors'))).toBe(2);
    // The new job's part 2 has not run: the old model's shard 2 is there under its name (its config, which this part does not
    // write, is gone), and the job is not complete.
    expect(ls(target)).toEqual(['.weightmix-parts.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']);
    expect(ls(dir)).toEqual([otherMachine, 'out'].sort());
  });
});

test('a part of another count is refused while the job is incomplete (it assigns the shards otherwise), before its merge; with --force too unless its recipe is new', async () => {
  const target = path.join(dir, 'out');
  const shards = ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'];
  const first = await OutputTransaction.begin(target, { mergeInto: true, lockName: 'part-1-of-2' });
  first.partOf(shards, job(1, 2));
  await shard(path.join(first.tempDir, shards[0]), 0.8, 1);
  await first.commit();
  expect(JSON.parse(fs.readFileSync(path.join(target, '.weightmix-parts.json'), 'utf8'))).toEqual({
    parts: 2,
    recipe: '{"method":"interpolate","lambda":0.8}',
  });
  const before = ls(target);

  const refused = `${target} is being filled by a job of 2 parts, and this is part 2/3: parts of another count assign the shards otherwise and would leave some unwritten; run every part with the same count, `;
  // The hint names what would help: --force starts a new job only for another recipe; this job's own part is refused with it too.
  const removeHint = `or remove ${path.join(target, '.weightmix-parts.json')} to start the job again with 3`;
  const other = await OutputTransaction.begin(target, { mergeInto: true, lockName: 'part-2-of-3' });
  expect(() => other.partOf(shards, job(2, 3, 0.5))).toThrow(refused + 'or use --force (force: true in the API) to replace the model');
  expect(() => other.partOf(shards, job(2, 3))).toThrow(refused + removeHint);
  await other.abort();
  const forcedSame = await OutputTransaction.begin(target, { mergeInto: true, force: true, lockName: 'part-2-of-3' });
  expect(() => forcedSame.partOf(shards, job(2, 3))).toThrow(refused + removeHint);
  await forcedSame.abort();
  expect(ls(target)).toEqual(before);

  // A file where the folder was is no job in progress, and no folder parts could fill: begin refuses it (it failed only when publishing).
  const file = path.join(dir, 'a-file');
  write(file, 'x');
  await expect(OutputTransaction.begin(file, { mergeInto: true, lockName: 'part-1-of-2' })).rejects.toMatchObject({
    code: 'OutputExists',
    message: expect.stringMatching(/a-file is a file, not a model folder/),
  });
  expect(fs.readFileSync(file, 'utf8')).toBe('x');

  // --force with a new recipe starts a new job: the old job's shards stay until its parts replace them, and the count is the new one's.
  const forced = await OutputTransaction.begin(target, { mergeInto: true, force: true, lockName: 'part-2-of-3' });
  forced.partOf(shards, job(2, 3, 0.5));
  await shard(path.join(forced.tempDir, shards[1]), 0.5, 2);
  await forced.commit();
  expect(JSON.parse(fs.readFileSync(path.join(target, '.weightmix-parts.json'), 'utf8'))).toEqual({
    parts: 3,
    recipe: '{"method":"interpolate","lambda":0.5}',
  });
  for (const [i, shardName] of [shards[0], shards[2]].entries()) {
    const next = await OutputTransaction.begin(target, { mergeInto: true, force: true, lockName: `part-${[1, 3][i]}-of-3` });
    next.partOf(shards, job([1, 3][i], 3, 0.5));
    await shard(path.join(next.tempDir, shardName), 0.5, 5);
    await next.commit();
  }
  // Every shard is the new job's: complete, and the count's file gone.
  expect(ls(target)).toEqual(shards);
});

describe('stale cleanup of parts', () => {
  test("a part removes this host's dead parts' temporary folders (they stayed forever), never another host's or a live one's", async () => {
    const target = path.join(dir, 'out');
    const probe = await OutputTransaction.begin(target, { mergeInto: true, lockName: 'part-1-of-2' });
    const [, mark] = /^\.out\.weightmix-tmp-\d+-(h[0-9a-f]{8})[0-9a-f]{8}$/.exec(path.basename(probe.tempDir))!;
    await probe.abort();
    const dead = deadPid();
    const killed = `.out.weightmix-tmp-${dead}-${mark}0123abcd`;
    const elsewhere = `.out.weightmix-tmp-${dead}-h00000000${'0123abcd'}`;
    for (const n of [killed, elsewhere]) write(path.join(dir, n, 'model-00001-of-00002.safetensors'), 'half');
    const notices: string[] = [];
    const tx = await OutputTransaction.begin(target, { mergeInto: true, lockName: 'part-1-of-2', notice: (m) => notices.push(m) });
    expect(notices).toEqual([`removed ${path.join(dir, killed)} left by an interrupted run`]);
    const other = await OutputTransaction.begin(target, { mergeInto: true, lockName: 'part-2-of-2' });
    expect(ls(dir)).toEqual(expect.arrayContaining([elsewhere, path.basename(tx.tempDir), path.basename(other.tempDir)]));
    await other.abort();
    await tx.abort();
    // A whole run on the same output leaves another machine's part temporary folder too (it removed it as a dead run's).
    const whole = await OutputTransaction.begin(target);
    expect(ls(dir)).toContain(elsewhere);
    await whole.abort();
  });

  test("a part removes this host's dead runs' working folders (a killed recipe part's adapted tensors and vocabularies), never a live one's or another host's", async () => {
    const target = path.join(dir, 'out');
    const probe = await OutputTransaction.begin(target);
    const [, host] = /^\.out\.weightmix-tmp-\d+-w([0-9a-f]{8})[0-9a-f]{8}$/.exec(path.basename(probe.tempDir))!;
    await probe.abort();
    const other = host === '01234567' ? '89abcdef' : '01234567';
    const dead = deadPid();
    const killed = [`.out.weightmix-lora-${dead}-w${host}Ab12Cd`, `.out.weightmix-vocab-${dead}-w${host}Ef34Gh`];
    const kept = [
      `.out.weightmix-lora-${process.ppid}-w${host}Ab12Cd`,
      `.out.weightmix-vocab-${dead}-w${other}Ef34Gh`,
      `.out.weightmix-lora-${dead}-h${host}Ab12Cd`,
    ];
    for (const n of [...killed, ...kept]) write(path.join(dir, n, 'model-00001-of-00002.safetensors'), 'adapted');
    const notices: string[] = [];
    const tx = await OutputTransaction.begin(target, { mergeInto: true, lockName: 'part-1-of-2', notice: (m) => notices.push(m) });
    expect(notices.sort()).toEqual(killed.map((n) => `removed ${path.join(dir, n)} left by an interrupted run`).sort());
    expect(ls(dir)).toEqual([...kept, path.basename(tx.tempDir), '.out.part-1-of-2.weightmix.lock'].sort());
    await tx.abort();
  });
});
