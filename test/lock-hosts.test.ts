/**
 * Locks name their host beside their pid (lib/leftovers.ts): the parts of a --part job fill one shared folder from many
 * machines, where another machine's pid means nothing. Such a lock is never judged stale here: a run refuses while it is
 * there, naming the host and the file to remove, and a whole run's stale scan leaves it. This machine's locks, with or
 * without a host (as an earlier weightmix wrote them), are judged by their pid as before.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OutputTransaction } from '../lib/engine/output';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { holderAlive, readLockHolder } from '../lib/leftovers';
import { deadPid, failure, ls, OWN_LOCK, useCaseDirs, write } from './helpers/transaction-cases';

let dir: string;
useCaseDirs('wm-lock-hosts-', (d) => (dir = d));

const OTHER = `not-${os.hostname()}`;

test('a lock reads as its pid and host; one of another machine is held whatever its pid, one of this machine by its pid', () => {
  const lock = path.join(dir, 'lock');
  const dead = deadPid();
  write(lock, `${dead} ${OTHER}\n`);
  expect(readLockHolder(lock)).toMatchObject({ pid: dead, host: OTHER });
  expect(holderAlive(readLockHolder(lock)!)).toBe(true);
  write(lock, `${dead} ${os.hostname()}\n`);
  expect(holderAlive(readLockHolder(lock)!)).toBe(false);
  write(lock, `${dead}\n`);
  expect(readLockHolder(lock)).toMatchObject({ pid: dead, host: undefined });
  expect(holderAlive(readLockHolder(lock)!)).toBe(false);
  write(lock, '');
  expect(readLockHolder(lock)).toMatchObject({ pid: NaN, host: undefined });
});

test("another machine's whole run: refused with its host and the lock to remove if it is gone; the lock stays", async () => {
  const target = path.join(dir, 'out');
  const lock = path.join(dir, '.out.weightmix.lock');
  const dead = deadPid(); // dead here: a lock of this machine with it would be taken over
  write(lock, `${dead} ${OTHER}\n`);
  const err = await failure(OutputTransaction.begin(target));
  expect([err.code, err.message]).toEqual([
    'OutputLocked',
    `another weightmix run (pid ${dead} on ${OTHER}) is writing ${target}; if that run is no longer running, remove ${lock}`,
  ]);
  // A part of a --part job refuses it too.
  const part = await failure(OutputTransaction.begin(target, { mergeInto: true, lockName: 'part-1-of-2' }));
  expect([part.code, part.message]).toEqual([
    'OutputLocked',
    `a whole run of weightmix (pid ${dead} on ${OTHER}) is writing ${target}; if that run is no longer running, remove ${lock}`,
  ]);
  expect(ls(dir)).toEqual(['.out.weightmix.lock']);
  expect(fs.readFileSync(lock, 'utf8')).toBe(`${dead} ${OTHER}\n`);
});

test("a part of a --part job on another machine: a whole run refuses (even with --force) and its stale scan leaves that part's lock", async () => {
  const target = path.join(dir, 'out');
  const partLock = path.join(dir, '.out.part-2-of-3.weightmix.lock');
  const dead = deadPid();
  write(partLock, `${dead} ${OTHER}\n`);
  const err = await failure(OutputTransaction.begin(target, { force: true }));
  expect([err.code, err.message]).toEqual([
    'OutputLocked',
    `part 2/3 of a --part job (pid ${dead} on ${OTHER}) is writing ${target}; if that run is no longer running, remove ${partLock}`,
  ]);
  expect(ls(dir)).toEqual(['.out.part-2-of-3.weightmix.lock']);
  // This machine's dead part, its host named, is a leftover: a whole run removes it and takes the output.
  write(partLock, `${dead} ${os.hostname()}\n`);
  const tx = await OutputTransaction.begin(target);
  expect(fs.readFileSync(path.join(dir, '.out.weightmix.lock'), 'utf8')).toBe(OWN_LOCK);
  await tx.abort();
  expect(ls(dir)).toEqual([]);
});

test("another machine's fixture run: refused, naming the lock to remove if that run is gone", async () => {
  const lock = path.join(dir, '.weightmix-fixture.lock');
  const dead = deadPid();
  write(lock, `${dead} ${OTHER}\n`);
  await expect(makeCheckpointPair({ dir, shape: 'tiny' })).rejects.toMatchObject({
    code: 'OutputLocked',
    message: `another fixture run (pid ${dead} on ${OTHER}) is writing ${dir}; if that run is no longer running, remove ${lock}`,
  });
  expect(ls(dir)).toEqual(['.weightmix-fixture.lock']);
});
