/**
 * The output transaction (lib/engine/output.ts) on its own: begin / commit / abort, the lock, the
 * --force swap, refusal of a target that is or holds an input (stale cleanup: output-leftovers.test.ts; per-file
 * publishing for `--part`: output-parts.test.ts). Every case checks the whole folder beside the
 * target afterwards, so a leftover temporary folder or lock fails it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../lib/errors';
import { OutputTransaction, refuseRunningParts } from '../lib/engine/output';
import { oldFolderName } from '../lib/engine/output-leftovers';
import { deadPid, failure, ls, OWN_LOCK, useCaseDirs, write } from './helpers/transaction-cases';
import { EMPTY_LOCK_STALE_MS } from '../lib/pid-locks';

let dir: string;
useCaseDirs('wm-output-', (d) => (dir = d));

describe('begin / commit / abort', () => {
  test('begin makes a temporary folder and a lock beside the target; commit publishes the folder and leaves nothing else', async () => {
    const target = path.join(dir, 'out');
    const tx = await OutputTransaction.begin(target);
    expect(tx.target).toBe(target);
    expect(path.dirname(tx.tempDir)).toBe(dir);
    // The pid, this host's mark for a whole run (output-leftovers.ts: `w` and 8 hex digits), a random suffix.
    expect(path.basename(tx.tempDir)).toMatch(new RegExp(`^\\.out\\.weightmix-tmp-${process.pid}-w[0-9a-f]{8}[0-9a-f]{8}$`));
    expect(ls(dir)).toEqual(['.out.weightmix.lock', path.basename(tx.tempDir)].sort());
    expect(fs.readFileSync(path.join(dir, '.out.weightmix.lock'), 'utf8')).toBe(OWN_LOCK);
    write(path.join(tx.tempDir, 'model.safetensors'), 'new');
    write(path.join(tx.tempDir, 'sub', 'x.json'), '{}');
    expect(fs.existsSync(target)).toBe(false);
    await tx.commit();
    expect(ls(dir)).toEqual(['out']);
    expect(ls(target)).toEqual(['model.safetensors', 'sub']);
    expect(fs.readFileSync(path.join(target, 'model.safetensors'), 'utf8')).toBe('new');
    await tx.abort(); // after commit: nothing to undo
    expect(ls(target)).toEqual(['model.safetensors', 'sub']);
    await expect(tx.commit()).rejects.toThrow('internal: transaction already finished');
  });

  test('abort removes the temporary folder, the lock and the parent folders begin created; twice is harmless', async () => {
    const target = path.join(dir, 'a', 'b', 'out');
    const tx = await OutputTransaction.begin(target);
    expect(ls(path.join(dir, 'a', 'b')).length).toBe(2);
    write(path.join(tx.tempDir, 'model.safetensors'), 'half');
    await tx.abort();
    await tx.abort();
    expect(ls(dir)).toEqual([]);
  });

  test('abort keeps parent folders that existed before or hold other files', async () => {
    fs.mkdirSync(path.join(dir, 'a'));
    const target = path.join(dir, 'a', 'b', 'out');
    const tx = await OutputTransaction.begin(target);
    write(path.join(dir, 'a', 'b', 'other'), 'x');
    await tx.abort();
    expect(ls(dir)).toEqual(['a']);
    expect(ls(path.join(dir, 'a', 'b'))).toEqual(['other']);
  });

  test('an existing target without --force: OutputExists at begin, and nothing is left behind', async () => {
    write(path.join(dir, 'out', 'model.safetensors'), 'old');
    const err = await failure(OutputTransaction.begin(path.join(dir, 'out')));
    expect(err.code).toBe('OutputExists');
    expect(err.message).toBe(
      `output ${path.join(dir, 'out')} already exists (use --force, or force: true in the API, to replace it once the new one is complete)`,
    );
    expect(ls(dir)).toEqual(['out']);
  });

  test('a target that appears during the run is not replaced without --force', async () => {
    const target = path.join(dir, 'out');
    const tx = await OutputTransaction.begin(target);
    write(path.join(target, 'theirs'), 'x');
    const err = await failure(tx.commit());
    expect(err.code).toBe('OutputExists');
    expect(err.message).toBe(`output ${target} appeared while merging; not replacing it`);
    await tx.abort();
    expect(ls(dir)).toEqual(['out']);
    expect(ls(target)).toEqual(['theirs']);
  });

  test('an abort signal that fires before the rename stops the publish', async () => {
    const target = path.join(dir, 'out');
    const tx = await OutputTransaction.begin(target);
    const ac = new AbortController();
    ac.abort();
    const err = await failure(tx.commit(ac.signal));
    expect(err.code).toBe('Aborted');
    await tx.abort();
    expect(ls(dir)).toEqual([]);
  });
});

describe('several outputs published all or none (a batch, a sweep)', () => {
  async function three(force = false) {
    const targets = ['a', 'b', 'c'].map((n) => path.join(dir, n));
    const txs: OutputTransaction[] = [];
    for (const t of targets) {
      const tx = await OutputTransaction.begin(t, { force });
      write(path.join(tx.tempDir, 'model.safetensors'), `new ${path.basename(t)}`);
      txs.push(tx);
    }
    return { targets, txs };
  }

  test('all published, nothing else left', async () => {
    const { targets, txs } = await three();
    await OutputTransaction.commitAll(txs);
    expect(ls(dir)).toEqual(['a', 'b', 'c']);
    for (const t of targets) expect(fs.readFileSync(path.join(t, 'model.safetensors'), 'utf8')).toBe(`new ${path.basename(t)}`);
  });

  test('a target that appeared meanwhile: none published, the others swap nothing out under --force', async () => {
    write(path.join(dir, 'a', 'model.safetensors'), 'old a');
    const { txs } = await three(true);
    // c is begun without --force; its target then appears.
    await txs[2].abort();
    txs[2] = await OutputTransaction.begin(path.join(dir, 'c'));
    write(path.join(dir, 'c', 'theirs'), 'x');
    const err = await failure(OutputTransaction.commitAll(txs));
    expect(err.code).toBe('OutputExists');
    expect(fs.readFileSync(path.join(dir, 'a', 'model.safetensors'), 'utf8')).toBe('old a');
    expect(fs.existsSync(path.join(dir, 'b'))).toBe(false);
    for (const tx of [...txs].reverse()) await tx.abort();
    expect(ls(dir)).toEqual(['a', 'c']);
  });

  test('an abort signal during the syncs publishes none', async () => {
    const { txs } = await three();
    const ac = new AbortController();
    ac.abort();
    const err = await failure(OutputTransaction.commitAll(txs, ac.signal));
    expect(err.code).toBe('Aborted');
    for (const tx of [...txs].reverse()) await tx.abort();
    expect(ls(dir)).toEqual([]);
  });

  test('a rename that fails puts back the outputs published before it, and the old one under --force', async () => {
    write(path.join(dir, 'a', 'model.safetensors'), 'old a');
    const { txs } = await three(true);
    // c's old output cannot be moved aside: the folder it would go to is taken (a non-empty folder of that name).
    write(path.join(dir, 'c', 'model.safetensors'), 'old c');
    const aside = path.join(dir, oldFolderName('c'));
    write(path.join(aside, 'x'), 'x');
    const err = await failure(OutputTransaction.commitAll(txs));
    expect(err.code).toBe('OutputError');
    expect(err.message).toMatch(/^cannot move .*c aside to replace it: /);
    fs.rmSync(aside, { recursive: true });
    expect(fs.readFileSync(path.join(dir, 'a', 'model.safetensors'), 'utf8')).toBe('old a');
    expect(fs.existsSync(path.join(dir, 'b'))).toBe(false);
    expect(fs.readFileSync(path.join(dir, 'c', 'model.safetensors'), 'utf8')).toBe('old c');
    for (const tx of [...txs].reverse()) await tx.abort();
    expect(ls(dir)).toEqual(['a', 'c']);
  });

  test('a folder sync that fails after every rename: reported, and the outputs stay published with nothing left beside them', async () => {
    write(path.join(dir, 'a', 'model.safetensors'), 'old a');
    const { targets, txs } = await three(true);
    const open = fs.promises.open;
    const failing = jest
      .spyOn(fs.promises, 'open')
      .mockImplementation((p, ...rest) => (p === dir ? Promise.reject(Object.assign(new Error('EIO: i/o error, open'), { code: 'EIO' })) : open(p, ...rest)));
    let err: WeightmixError;
    try {
      err = await failure(OutputTransaction.commitAll(txs));
    } finally {
      failing.mockRestore();
    }
    expect([err.code, err.message]).toEqual([
      'OutputError',
      'the outputs are published, but a folder holding them could not be synced to disk: EIO: i/o error, open',
    ]);
    for (const tx of [...txs].reverse()) await tx.abort();
    expect(fs.readdirSync(dir).sort()).toEqual(['a', 'b', 'c']);
    for (const t of targets) expect(fs.readdirSync(t)).toEqual(['model.safetensors']);
    for (const t of targets) expect(fs.readFileSync(path.join(t, 'model.safetensors'), 'utf8')).toBe(`new ${path.basename(t)}`);
  });
});

describe('--force', () => {
  test('the old output stays whole until commit, then is swapped out and removed', async () => {
    const target = path.join(dir, 'out');
    write(path.join(target, 'model.safetensors'), 'old');
    write(path.join(target, 'stale.json'), 'old');
    const tx = await OutputTransaction.begin(target, { force: true });
    write(path.join(tx.tempDir, 'model.safetensors'), 'new');
    expect(ls(target)).toEqual(['model.safetensors', 'stale.json']);
    await tx.commit();
    expect(ls(dir)).toEqual(['out']);
    expect(ls(target)).toEqual(['model.safetensors']);
    expect(fs.readFileSync(path.join(target, 'model.safetensors'), 'utf8')).toBe('new');
  });

  test('an aborted --force run leaves the old output as it was', async () => {
    const target = path.join(dir, 'out');
    write(path.join(target, 'model.safetensors'), 'old');
    const tx = await OutputTransaction.begin(target, { force: true });
    write(path.join(tx.tempDir, 'model.safetensors'), 'new');
    await tx.abort();
    expect(ls(dir)).toEqual(['out']);
    expect(fs.readFileSync(path.join(target, 'model.safetensors'), 'utf8')).toBe('old');
  });

  test('a file where the output folder goes is never replaced, not even with --force; a file on the way to it is named', async () => {
    const file = path.join(dir, 'model.safetensors');
    write(file, "the user's file");
    for (const force of [false, true]) {
      const err = await failure(OutputTransaction.begin(file, { force }));
      expect([err.code, err.message]).toEqual([
        'OutputExists',
        `output ${file} is a file, not a model folder: it is never replaced, not even with --force; choose another output path`,
      ]);
    }
    const below = await failure(OutputTransaction.begin(path.join(file, 'lambda-0.50')));
    expect([below.code, below.message]).toEqual(['OutputError', `cannot create ${file}: ${file} is a file, not a folder`]);
    expect(ls(dir)).toEqual(['model.safetensors']);
    expect(fs.readFileSync(file, 'utf8')).toBe("the user's file");
  });
});

describe('the lock', () => {
  test('a second transaction on the same target in this process: OutputLocked, the first unharmed', async () => {
    const target = path.join(dir, 'out');
    const tx = await OutputTransaction.begin(target);
    const err = await failure(OutputTransaction.begin(target));
    expect(err.code).toBe('OutputLocked');
    expect(err.message).toBe(`this process is already writing ${target}`);
    await tx.commit();
    expect(ls(dir)).toEqual(['out']);
  });

  test('a lock held by another live process: OutputLocked naming its pid', async () => {
    // pid 1 is always alive (kill(1, 0) answers EPERM to a non-root process, which counts as alive).
    write(path.join(dir, '.out.weightmix.lock'), '1\n');
    const err = await failure(OutputTransaction.begin(path.join(dir, 'out')));
    expect(err.code).toBe('OutputLocked');
    expect(err.message).toBe(`another weightmix run (pid 1) is writing ${path.join(dir, 'out')}`);
    expect(ls(dir)).toEqual(['.out.weightmix.lock']);
  });

  test('a lock whose process died is taken over', async () => {
    write(path.join(dir, '.out.weightmix.lock'), `${deadPid()}\n`);
    const tx = await OutputTransaction.begin(path.join(dir, 'out'));
    expect(fs.readFileSync(path.join(dir, '.out.weightmix.lock'), 'utf8')).toBe(OWN_LOCK);
    await tx.commit();
    expect(ls(dir)).toEqual(['out']);
  });

  test('a lock still without its pid is a run between creating and writing it: refused while fresh, taken over once stale', async () => {
    const lock = path.join(dir, '.out.weightmix.lock');
    write(lock, '');
    const err = await failure(OutputTransaction.begin(path.join(dir, 'out')));
    expect([err.code, err.message]).toEqual(['OutputLocked', `another weightmix run is writing ${path.join(dir, 'out')}`]);
    expect(fs.readFileSync(lock, 'utf8')).toBe('');
    const past = new Date(Date.now() - EMPTY_LOCK_STALE_MS - 1000);
    fs.utimesSync(lock, past, past);
    const tx = await OutputTransaction.begin(path.join(dir, 'out'));
    expect(fs.readFileSync(lock, 'utf8')).toBe(OWN_LOCK);
    await tx.abort();
  });

  test('a whole run and a --part job on one output exclude each other (they take different locks)', async () => {
    const target = path.join(dir, 'out');
    // pid 1 is always alive: a part of a job, then a whole run, held by another process.
    write(path.join(dir, '.out.part-2-of-3.weightmix.lock'), '1\n');
    const whole = await failure(OutputTransaction.begin(target, { force: true }));
    expect([whole.code, whole.message]).toEqual(['OutputLocked', `part 2/3 of a --part job (pid 1) is writing ${target}; try again once it is done`]);
    // A part lock of another output beside it is no reason to refuse.
    const other = await OutputTransaction.begin(path.join(dir, 'other'));
    await other.abort();
    fs.rmSync(path.join(dir, '.out.part-2-of-3.weightmix.lock'));
    write(path.join(dir, '.out.weightmix.lock'), '1\n');
    const part = await failure(OutputTransaction.begin(target, { mergeInto: true, lockName: 'part-1-of-3' }));
    expect([part.code, part.message]).toEqual(['OutputLocked', `a whole run of weightmix (pid 1) is writing ${target}; try again once it is done`]);
    expect(ls(dir)).toEqual(['.out.weightmix.lock']);
    // A dead part's lock is a leftover: a whole run takes the output and removes it.
    fs.rmSync(path.join(dir, '.out.weightmix.lock'));
    write(path.join(dir, '.out.part-2-of-3.weightmix.lock'), `${deadPid()}\n`);
    const tx = await OutputTransaction.begin(target);
    await tx.abort();
    expect(ls(dir)).toEqual([]);
  });

  test('a sweep looks for --part jobs once all its λ are locked: a part of a later λ is refused, or refuses it; other λ do not count', async () => {
    const sweep = path.join(dir, 'sweep');
    const lambda = (x: string) => path.join(sweep, `lambda-${x}`);
    const siblings = (name: string) => name.startsWith('lambda-');
    const first = await OutputTransaction.begin(lambda('0.20'), { siblings, checkParts: false });
    // A part of a later λ starts between the sweep's first and second begin: it finds no whole lock there yet.
    const partTx = await OutputTransaction.begin(lambda('0.40'), { mergeInto: true, lockName: 'part-1-of-2', removeStale: false });
    const second = await OutputTransaction.begin(lambda('0.40'), { removeStale: false, checkParts: false });
    // The sweep's one look, with every λ locked, finds it (the part's lock is this process's here).
    expect(() => refuseRunningParts([lambda('0.20'), lambda('0.40')])).toThrow(
      expect.objectContaining({ code: 'OutputLocked', message: `this process is already writing ${lambda('0.40')} (part 1/2 of a --part job)` }),
    );
    // A part lock of a λ the sweep does not write does not refuse it.
    expect(() => refuseRunningParts([lambda('0.20')])).not.toThrow();
    for (const tx of [second, partTx, first]) await tx.abort();
  });

  test('parts lock separately (lockName), so two parts of one job array run at once', async () => {
    const target = path.join(dir, 'out');
    const a = await OutputTransaction.begin(target, { mergeInto: true, lockName: 'part-1-of-2' });
    const b = await OutputTransaction.begin(target, { mergeInto: true, lockName: 'part-2-of-2' });
    expect(ls(dir).filter((n) => n.endsWith('.lock'))).toEqual(['.out.part-1-of-2.weightmix.lock', '.out.part-2-of-2.weightmix.lock']);
    await b.abort();
    await a.abort();
    expect(ls(dir)).toEqual([]);
  });
});

describe('a target that is or holds an input', () => {
  const refusal = async (target: string, reads: string[]) => {
    const err = await failure(OutputTransaction.begin(target, { force: true, reads }));
    expect(err.code).toBe('Usage');
    expect(err.exitCode).toBe(2);
    return err.message;
  };

  test('the target itself, a folder holding an input, and either through a symlink are refused before anything is made', async () => {
    const model = path.join(dir, 'models', 'a');
    write(path.join(model, 'model.safetensors'), 'x');
    expect(await refusal(model, [model])).toBe(`the output ${model} is one of the inputs of this merge; choose another output folder`);
    const file = path.join(model, 'model.safetensors');
    expect(await refusal(path.join(dir, 'models'), [file])).toBe(
      `the output ${path.join(dir, 'models')} holds ${file}, which is one of the inputs of this merge; choose another output folder`,
    );
    fs.symlinkSync(path.join(dir, 'models'), path.join(dir, 'link'));
    expect(await refusal(path.join(dir, 'link', 'a'), [file])).toMatch(/holds .*model\.safetensors, which is one of the inputs/);
    expect(await refusal(path.join(dir, 'models'), [path.join(dir, 'link', 'a')])).toMatch(/^the output .* holds /);
    expect(ls(dir)).toEqual(['link', 'models']);
    expect(ls(path.join(dir, 'models'))).toEqual(['a']);
  });

  test('a neighbour with a common prefix, or a folder inside an input, is not an input', async () => {
    const model = path.join(dir, 'a');
    write(path.join(model, 'model.safetensors'), 'x');
    for (const target of [path.join(dir, 'ab'), path.join(dir, 'a-merged'), path.join(model, 'merged')]) {
      const tx = await OutputTransaction.begin(target, { reads: [model] });
      await tx.abort();
    }
    expect(ls(dir)).toEqual(['a']);
    expect(ls(model)).toEqual(['model.safetensors']);
  });
});
