/**
 * Locks name their host beside their pid (lib/pid-locks.ts): the parts of a --part job fill one shared folder from many
 * machines, where another machine's pid means nothing. Such a lock is judged by its age instead: its holder touches it every
 * LOCK_TIMING.refreshMs, and one untouched for LOCK_TIMING.staleMs counts as abandoned. Until then a run refuses,
 * naming the host and the lock, and a whole run's stale scan leaves it. This machine's locks, with or without a host (as an
 * earlier weightmix wrote them), are judged by their pid, and by their age too (stale-live-locks.test.ts: a pid reused after a restart).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OutputTransaction } from '../lib/engine/output';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { holderAlive, LOCK_TIMING, readLockHolder, releaseLock, takeOverLock } from '../lib/pid-locks';
import { deadPid, failure, ls, OWN_LOCK, useCaseDirs, write } from './helpers/transaction-cases';

let dir: string;
useCaseDirs('wm-lock-hosts-', (d) => (dir = d));

const OTHER = `not-${os.hostname()}`;
const HINT = `if that run is gone, its lock counts as abandoned once untouched for ${LOCK_TIMING.staleMs / 60_000} minutes, or remove`;

/** Runs `body` with locks touched every 20 ms, then with LOCK_TIMING as it was. */
async function withQuickRefresh(body: () => Promise<void>): Promise<void> {
  const saved = { ...LOCK_TIMING };
  LOCK_TIMING.refreshMs = 20;
  try {
    await body();
  } finally {
    Object.assign(LOCK_TIMING, saved);
  }
}

/** Waits long enough for several touches at the quick refresh. */
const severalTouches = () => new Promise((r) => setTimeout(r, 200));

/** Sets a file's modification time `ms` in the past. */
function age(file: string, ms: number): void {
  const past = new Date(Date.now() - ms);
  fs.utimesSync(file, past, past);
}

test('a lock reads as its pid and host; another machine’s is held while touched lately, this machine’s by its pid', () => {
  const lock = path.join(dir, 'lock');
  const dead = deadPid();
  write(lock, `${dead} ${OTHER}\n`);
  expect(readLockHolder(lock)).toMatchObject({ pid: dead, host: OTHER });
  expect(holderAlive(readLockHolder(lock)!)).toBe(true);
  age(lock, LOCK_TIMING.staleMs + 1000);
  expect(holderAlive(readLockHolder(lock)!)).toBe(false);
  write(lock, `${dead} ${os.hostname()}\n`);
  expect(holderAlive(readLockHolder(lock)!)).toBe(false);
  write(lock, `${dead}\n`);
  expect(readLockHolder(lock)).toMatchObject({ pid: dead, host: undefined });
  expect(holderAlive(readLockHolder(lock)!)).toBe(false);
  write(lock, `${dead} a host  name \n`); // the rest of the line, inner spaces kept
  expect(readLockHolder(lock)).toMatchObject({ pid: dead, host: 'a host  name' });
  write(lock, '');
  expect(readLockHolder(lock)).toMatchObject({ pid: NaN, host: undefined });
});

test("another machine's whole run: refused with its host and its lock while touched lately; abandoned, taken over", async () => {
  const target = path.join(dir, 'out');
  const lock = path.join(dir, '.out.weightmix.lock');
  const dead = deadPid(); // dead here: a lock of this machine with it would be taken over at once
  write(lock, `${dead} ${OTHER}\n`);
  const err = await failure(OutputTransaction.begin(target));
  expect([err.code, err.message]).toEqual(['OutputLocked', `another weightmix run (pid ${dead} on ${OTHER}) is writing ${target}; ${HINT} ${lock}`]);
  // A part of a --part job refuses it too.
  const part = await failure(OutputTransaction.begin(target, { mergeInto: true, lockName: 'part-1-of-2' }));
  expect([part.code, part.message]).toEqual(['OutputLocked', `a whole run of weightmix (pid ${dead} on ${OTHER}) is writing ${target}; ${HINT} ${lock}`]);
  expect(ls(dir)).toEqual(['.out.weightmix.lock']);
  expect(fs.readFileSync(lock, 'utf8')).toBe(`${dead} ${OTHER}\n`);
  age(lock, LOCK_TIMING.staleMs + 1000);
  const tx = await OutputTransaction.begin(target);
  expect(fs.readFileSync(lock, 'utf8')).toBe(OWN_LOCK);
  await tx.abort();
  expect(ls(dir)).toEqual([]);
});

test('a part of a --part job on another machine: a whole run refuses (even with --force) and its stale scan leaves that lock', async () => {
  const target = path.join(dir, 'out');
  const partLock = path.join(dir, '.out.part-2-of-3.weightmix.lock');
  const dead = deadPid();
  write(partLock, `${dead} ${OTHER}\n`);
  const err = await failure(OutputTransaction.begin(target, { force: true }));
  expect([err.code, err.message]).toEqual(['OutputLocked', `part 2/3 of a --part job (pid ${dead} on ${OTHER}) is writing ${target}; ${HINT} ${partLock}`]);
  expect(ls(dir)).toEqual(['.out.part-2-of-3.weightmix.lock']);
  // This machine's dead part, its host named, is a leftover: a whole run removes it and takes the output.
  write(partLock, `${dead} ${os.hostname()}\n`);
  const tx = await OutputTransaction.begin(target);
  expect(fs.readFileSync(path.join(dir, '.out.weightmix.lock'), 'utf8')).toBe(OWN_LOCK);
  await tx.abort();
  expect(ls(dir)).toEqual([]);
});

test("a sweep's stale scan leaves another machine's lock on a λ it does not write while touched lately, and removes it once abandoned", async () => {
  const sweep = path.join(dir, 'sweep');
  fs.mkdirSync(sweep);
  const siblings = (name: string) => name.startsWith('lambda-');
  const theirs = path.join(sweep, '.lambda-0.90.weightmix.lock');
  write(theirs, `${deadPid()} ${OTHER}\n`);
  const first = await OutputTransaction.begin(path.join(sweep, 'lambda-0.20'), { siblings });
  await first.abort();
  expect(ls(sweep)).toEqual(['.lambda-0.90.weightmix.lock']);
  age(theirs, LOCK_TIMING.staleMs + 1000);
  const second = await OutputTransaction.begin(path.join(sweep, 'lambda-0.20'), { siblings });
  await second.abort();
  expect(ls(sweep)).toEqual([]);
});

test("another machine's whole-run folders: a sweep leaves them while their output's lock is touched lately, removes them once it is abandoned", async () => {
  const sweep = path.join(dir, 'sweep');
  fs.mkdirSync(sweep);
  const siblings = (name: string) => name.startsWith('lambda-');
  const dead = deadPid();
  const probe = await OutputTransaction.begin(path.join(dir, 'probe'));
  const mine = path.basename(probe.tempDir);
  await probe.abort();
  const [, ours] = /-w([0-9a-f]{8})[0-9a-f]{8}$/.exec(mine)!;
  const theirs = ours === '01234567' ? '89abcdef' : '01234567'; // another host's mark
  const lock = path.join(sweep, '.lambda-0.90.weightmix.lock');
  write(lock, `${dead} ${OTHER}\n`);
  const temp = `.lambda-0.90.weightmix-tmp-${dead}-w${theirs}0123abcd`;
  const aside = `.lambda-0.90.weightmix-old-${dead}-w${theirs}`;
  const adapted = `.lambda-0.90.weightmix-lora-${dead}-w${theirs}Ab12Cd`; // a working folder: made before its run's lock
  for (const f of [temp, aside, adapted]) write(path.join(sweep, f, 'model.safetensors'), 'theirs');
  write(path.join(sweep, 'lambda-0.90', 'model.safetensors'), 'published'); // its old output swapped out, the new one in place
  const first = await OutputTransaction.begin(path.join(sweep, 'lambda-0.20'), { siblings });
  await first.abort();
  expect(ls(sweep)).toEqual([aside, adapted, '.lambda-0.90.weightmix.lock', temp, 'lambda-0.90'].sort());
  age(lock, LOCK_TIMING.staleMs + 1000);
  const second = await OutputTransaction.begin(path.join(sweep, 'lambda-0.20'), { siblings });
  await second.abort();
  expect(ls(sweep)).toEqual([adapted, 'lambda-0.90'].sort());
  // This host's marked folders are judged by their pid, whatever the lock: a dead run's go, a live one's working folder stays.
  write(lock, `${dead} ${OTHER}\n`);
  const own = `.lambda-0.90.weightmix-tmp-${dead}-w${ours}0123abcd`;
  const ownAdapted = `.lambda-0.90.weightmix-lora-${dead}-w${ours}Ab12Cd`;
  const liveAdapted = `.lambda-0.90.weightmix-vocab-${process.ppid}-w${ours}Ef34Gh`;
  for (const f of [own, ownAdapted, liveAdapted]) write(path.join(sweep, f, 'model.safetensors'), 'ours');
  const third = await OutputTransaction.begin(path.join(sweep, 'lambda-0.20'), { siblings });
  await third.abort();
  expect(ls(sweep)).toEqual([adapted, liveAdapted, '.lambda-0.90.weightmix.lock', 'lambda-0.90'].sort());
});

test("another machine's output swapped out by an interrupted --force run is put back once that run's lock is abandoned", async () => {
  const sweep = path.join(dir, 'sweep');
  fs.mkdirSync(sweep);
  const siblings = (name: string) => name.startsWith('lambda-');
  const dead = deadPid();
  const lock = path.join(sweep, '.lambda-0.90.weightmix.lock');
  write(lock, `${dead} ${OTHER}\n`);
  const aside = `.lambda-0.90.weightmix-old-${dead}-w01234567`;
  write(path.join(sweep, aside, 'model.safetensors'), 'the user model');
  const first = await OutputTransaction.begin(path.join(sweep, 'lambda-0.20'), { siblings });
  await first.abort();
  expect(ls(sweep)).toEqual([aside, '.lambda-0.90.weightmix.lock'].sort());
  age(lock, LOCK_TIMING.staleMs + 1000);
  const notices: string[] = [];
  const second = await OutputTransaction.begin(path.join(sweep, 'lambda-0.20'), { siblings, notice: (m) => notices.push(m) });
  await second.abort();
  expect(ls(sweep)).toEqual(['lambda-0.90']);
  expect(fs.readFileSync(path.join(sweep, 'lambda-0.90', 'model.safetensors'), 'utf8')).toBe('the user model');
  expect(notices).toContain(`restored ${path.join(sweep, 'lambda-0.90')} from ${aside}, left by an interrupted --force replacement`);
});

test("another machine's temporary folder beside this run's own output: gone with the lock this run took over", async () => {
  const target = path.join(dir, 'out');
  const lock = path.join(dir, '.out.weightmix.lock');
  const dead = deadPid();
  write(lock, `${dead} ${OTHER}\n`);
  age(lock, LOCK_TIMING.staleMs + 1000);
  const temp = `.out.weightmix-tmp-${dead}-w${'fedcba98'}0123abcd`;
  write(path.join(dir, temp, 'model.safetensors'), 'half');
  const tx = await OutputTransaction.begin(target);
  expect(ls(dir)).toEqual(['.out.weightmix.lock', path.basename(tx.tempDir)].sort());
  await tx.abort();
  expect(ls(dir)).toEqual([]);
});

test('a holder touches its lock every LOCK_TIMING.refreshMs, and stops once it is released', () =>
  withQuickRefresh(async () => {
    const lock = path.join(dir, '.out.weightmix.lock');
    const tx = await OutputTransaction.begin(path.join(dir, 'out'));
    age(lock, 3_600_000);
    await severalTouches();
    expect(readLockHolder(lock)!.ageMs).toBeLessThan(60_000);
    await tx.abort();
    expect(ls(dir)).toEqual([]);
    // Released: a file made there since (another run's) is not touched.
    write(lock, `${deadPid()} ${OTHER}\n`);
    age(lock, 3_600_000);
    await severalTouches();
    expect(readLockHolder(lock)!.ageMs).toBeGreaterThan(3_000_000);
  }));

test("another machine's fixture run: refused, naming its lock", async () => {
  const lock = path.join(dir, '.weightmix-fixture.lock');
  const dead = deadPid();
  write(lock, `${dead} ${OTHER}\n`);
  await expect(makeCheckpointPair({ dir, shape: 'tiny' })).rejects.toMatchObject({
    code: 'OutputLocked',
    message: `another fixture run (pid ${dead} on ${OTHER}) is writing ${dir}; ${HINT} ${lock}`,
  });
  expect(ls(dir)).toEqual(['.weightmix-fixture.lock']);
});

describe('taking over a stale lock (takeOverLock): only the file judged stale goes', () => {
  test('the lock judged stale is removed; one that replaced it meanwhile stays, as it was; one already gone is no error', async () => {
    const lock = path.join(dir, 'lock');
    write(lock, `${deadPid()} ${os.hostname()}\n`);
    await takeOverLock(lock, readLockHolder(lock)!.judged);
    expect(ls(dir)).toEqual([]);
    // Judged stale, then taken over by another run before this one acts: that run's fresh lock is not removed.
    write(lock, `${deadPid()} ${os.hostname()}\n`);
    const judged = readLockHolder(lock)!.judged;
    fs.rmSync(lock);
    write(lock, OWN_LOCK);
    await takeOverLock(lock, judged);
    expect(ls(dir)).toEqual(['lock']);
    expect(fs.readFileSync(lock, 'utf8')).toBe(OWN_LOCK);
    fs.rmSync(lock);
    await takeOverLock(lock, judged);
    expect(ls(dir)).toEqual([]);
  });

  test('two runs started together on one stale lock: one takes the output, the other is refused', async () => {
    const target = path.join(dir, 'out');
    write(path.join(dir, '.out.weightmix.lock'), `${deadPid()} ${os.hostname()}\n`);
    const outcomes = await Promise.allSettled([OutputTransaction.begin(target), OutputTransaction.begin(target)]);
    const won = outcomes.filter((o): o is PromiseFulfilledResult<OutputTransaction> => o.status === 'fulfilled');
    expect(won).toHaveLength(1);
    expect((outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult).reason.code).toBe('OutputLocked');
    await won[0].value.abort();
    expect(ls(dir)).toEqual([]);
  });

  test('releasing a lock this process does not hold leaves the file', async () => {
    const lock = path.join(dir, '.out.weightmix.lock');
    write(lock, `${deadPid()} ${OTHER}\n`);
    await releaseLock(lock);
    expect(ls(dir)).toEqual(['.out.weightmix.lock']);
  });

  test("a run whose lock was taken over leaves the new holder's lock when it ends, and does not touch it", () =>
    withQuickRefresh(async () => {
      const lock = path.join(dir, '.out.weightmix.lock');
      const tx = await OutputTransaction.begin(path.join(dir, 'out'));
      // Taken over by another machine (this run judged abandoned there): a new file at the same path.
      fs.rmSync(lock);
      write(lock, `${deadPid()} ${OTHER}\n`);
      age(lock, 3_600_000);
      await severalTouches();
      expect(readLockHolder(lock)!.ageMs).toBeGreaterThan(3_000_000);
      await tx.abort();
      expect(ls(dir)).toEqual(['.out.weightmix.lock']);
    }));
});
