/**
 * What a run leaves beside its output and the stale cleanup of a later run (lib/engine/output-leftovers.ts, through the output
 * transaction): a dead run's temporary, swapped-out and working folders and locks go, a live one's stay, a swapped-out output whose
 * target is missing is put back, a sweep's siblings are scanned too, and names near NAME_MAX are shortened. Another machine's
 * leftovers: lock-hosts.test.ts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OutputTransaction } from '../lib/engine/output';
import { leftoverStem } from '../lib/engine/output-leftovers';
import { deadPid, failure, ls, useCaseDirs, write } from './helpers/transaction-cases';

let dir: string;
useCaseDirs('wm-leftovers-', (d) => (dir = d));

describe('stale cleanup', () => {
  test("a dead run's temporary folder, swapped-out folder and lock go, with a notice each", async () => {
    const dead = deadPid();
    write(path.join(dir, `.out.weightmix-tmp-${dead}-0123abcd`, 'model.safetensors'), 'half');
    write(path.join(dir, `.out.weightmix-old-${dead}`, 'model.safetensors'), 'old');
    write(path.join(dir, 'out', 'model.safetensors'), 'current');
    write(path.join(dir, '.out.part-2-of-4.weightmix.lock'), `${dead}\n`);
    write(path.join(dir, '.out.publish.weightmix.lock'), `${dead}\n`); // a part killed while publishing
    const notices: string[] = [];
    const tx = await OutputTransaction.begin(path.join(dir, 'out'), { force: true, notice: (m) => notices.push(m) });
    expect(notices.sort()).toEqual(
      [`.out.weightmix-tmp-${dead}-0123abcd`, `.out.weightmix-old-${dead}`, '.out.part-2-of-4.weightmix.lock', '.out.publish.weightmix.lock']
        .map((n) => `removed ${path.join(dir, n)} left by an interrupted run`)
        .sort(),
    );
    expect(ls(dir)).toEqual(['.out.weightmix.lock', path.basename(tx.tempDir), 'out'].sort());
    await tx.abort();
  });

  test("a swapped-out folder whose output is missing is the user's model: it is put back", async () => {
    const dead = deadPid();
    write(path.join(dir, `.out.weightmix-old-${dead}`, 'model.safetensors'), 'old');
    const notices: string[] = [];
    const err = await failure(OutputTransaction.begin(path.join(dir, 'out'), { notice: (m) => notices.push(m) }));
    expect(err.code).toBe('OutputExists');
    expect(notices).toEqual([`restored ${path.join(dir, 'out')} from .out.weightmix-old-${dead}, left by an interrupted --force replacement`]);
    expect(ls(dir)).toEqual(['out']);
    expect(fs.readFileSync(path.join(dir, 'out', 'model.safetensors'), 'utf8')).toBe('old');
  });

  test('removeStale: false looks for no leftovers (a sweep looks once, at its first λ, for every sibling: not once per λ)', async () => {
    const dead = deadPid();
    write(path.join(dir, `.out.weightmix-tmp-${dead}-0123abcd`, 'model.safetensors'), 'half');
    const listed = jest.spyOn(fs.promises, 'readdir');
    const tx = await OutputTransaction.begin(path.join(dir, 'out'), { removeStale: false });
    expect(listed.mock.calls.filter(([at]) => at === dir)).toEqual([]);
    listed.mockRestore();
    expect(ls(dir)).toContain(`.out.weightmix-tmp-${dead}-0123abcd`);
    await tx.abort();
  });

  test("a live process's leftovers, other outputs' leftovers and unrelated files stay", async () => {
    const dead = deadPid();
    const keep = [
      '.out.weightmix-tmp-1-0123abcd',
      `.other.weightmix-tmp-${dead}-0123abcd`,
      `.outer.weightmix-tmp-${dead}-0123abcd`,
      'out.weightmix-tmp-5-ab',
      'notes',
    ];
    for (const k of keep) fs.mkdirSync(path.join(dir, k));
    const tx = await OutputTransaction.begin(path.join(dir, 'out'));
    expect(ls(dir)).toEqual([...keep, '.out.weightmix.lock', path.basename(tx.tempDir)].sort());
    await tx.abort();
    expect(ls(dir)).toEqual(keep.sort());
  });

  test("siblings: a dead sweep's leftovers beside every lambda-* go; this process's own stay beside a sibling but go beside the target", async () => {
    const dead = deadPid();
    write(path.join(dir, `.lambda-0.40.weightmix-tmp-${dead}-0123abcd`, 'x'), 'x');
    write(path.join(dir, '.lambda-0.90.weightmix.lock'), `${dead}\n`);
    const ownSibling = `.lambda-0.60.weightmix-tmp-${process.pid}-0123abcd`;
    const ownEarlier = `.lambda-0.50.weightmix-tmp-${process.pid}-deadbeef`;
    fs.mkdirSync(path.join(dir, ownSibling));
    fs.mkdirSync(path.join(dir, ownEarlier));
    const isLambda = (name: string) => /^lambda-/.test(name);
    const withoutSiblings = await OutputTransaction.begin(path.join(dir, 'lambda-0.50'));
    expect(ls(dir)).toContain(`.lambda-0.40.weightmix-tmp-${dead}-0123abcd`);
    expect(ls(dir)).not.toContain(ownEarlier);
    await withoutSiblings.abort();
    fs.mkdirSync(path.join(dir, ownEarlier));
    const tx = await OutputTransaction.begin(path.join(dir, 'lambda-0.50'), { siblings: isLambda });
    expect(ls(dir)).toEqual([ownSibling, '.lambda-0.50.weightmix.lock', path.basename(tx.tempDir)].sort());
    await tx.abort();
  });
});

describe('an output name near NAME_MAX (255 bytes)', () => {
  // 246 bytes in UTF-8: the temporary folder, the lock and the swapped-out folder beside it exceeded NAME_MAX.
  const name = `model-${'λ'.repeat(120)}`;

  test("its leftovers carry a shortened name: a --force run replaces it, and a dead run's leftovers are found", async () => {
    const stem = leftoverStem(name);
    expect(Buffer.byteLength(stem)).toBeLessThanOrEqual(180);
    expect(leftoverStem('out')).toBe('out');
    const target = path.join(dir, name);
    write(path.join(target, 'model.safetensors'), 'old');
    const dead = deadPid();
    write(path.join(dir, `.${stem}.weightmix-tmp-${dead}-0123abcd`, 'model.safetensors'), 'half');
    const notices: string[] = [];
    const tx = await OutputTransaction.begin(target, { force: true, notice: (m) => notices.push(m) });
    expect(notices).toEqual([`removed ${path.join(dir, `.${stem}.weightmix-tmp-${dead}-0123abcd`)} left by an interrupted run`]);
    write(path.join(tx.tempDir, 'model.safetensors'), 'new');
    await tx.commit();
    expect(ls(dir)).toEqual([name]);
    expect(fs.readFileSync(path.join(target, 'model.safetensors'), 'utf8')).toBe('new');
  });

  test("a swapped-out folder whose output is missing is put back under the output's whole name", async () => {
    const dead = deadPid();
    write(path.join(dir, `.${leftoverStem(name)}.weightmix-old-${dead}`, 'model.safetensors'), 'old');
    const err = await failure(OutputTransaction.begin(path.join(dir, name)));
    expect(err.code).toBe('OutputExists');
    expect(ls(dir)).toEqual([name]);
    expect(fs.readFileSync(path.join(dir, name, 'model.safetensors'), 'utf8')).toBe('old');
  });
});
