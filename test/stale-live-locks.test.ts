/**
 * A lock of this machine whose pid is alive but which went untouched for the stale time (lib/pid-locks.ts holderAlive,
 * lib/hub/blob-lock.ts): a holder touches its lock every 30 s, so the pid is another process's now (a container restarted
 * under the same hostname gives its first pids again). Such an output lock refused every run; such a blob lock made every
 * download of that file wait forever.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OutputTransaction } from '../lib/engine/output';
import { withBlobLock } from '../lib/hub/blob-lock';
import { holderAlive, LOCK_TIMING, readLockHolder } from '../lib/pid-locks';
import { dir, useTempDir } from './helpers/temp-dir';

useTempDir('wm-stale-live-locks-');

/** A lock of this host naming a live pid (this process's parent), last touched `agoMs` ago. */
function liveLock(file: string, agoMs: number): void {
  fs.writeFileSync(file, `${process.ppid} ${os.hostname()}\n`);
  const past = new Date(Date.now() - agoMs);
  fs.utimesSync(file, past, past);
}

test("an output lock: this machine's live pid holds it while touched lately, not once untouched for the stale time", () => {
  const lock = path.join(dir, 'output.weightmix.lock');
  liveLock(lock, 1000);
  expect(holderAlive(readLockHolder(lock)!)).toBe(true);
  liveLock(lock, LOCK_TIMING.staleMs + 1000);
  expect(holderAlive(readLockHolder(lock)!)).toBe(false);
});

test('a blob lock of a live pid untouched for the stale time is taken over at once; one touched lately is waited for', async () => {
  const lock = path.join(dir, 'blob.weightmix.lock');
  const timing = { refreshMs: 30_000, staleMs: 10 * 60_000, noticeMs: 60_000 };
  liveLock(lock, 2 * 3600_000);
  await expect(
    withBlobLock(
      lock,
      () => {},
      undefined,
      async () => 'fetched',
      timing,
    ),
  ).resolves.toBe('fetched');
  expect(fs.existsSync(lock)).toBe(false);
  liveLock(lock, 1000);
  const waits: number[] = [];
  const stop = new AbortController();
  setTimeout(() => stop.abort(), 300);
  await expect(
    withBlobLock(
      lock,
      (s) => waits.push(s),
      stop.signal,
      async () => 'fetched',
      timing,
    ),
  ).rejects.toMatchObject({ code: 'Aborted' });
  expect(waits).toEqual([0]);
});

test('a run whose output lock was taken over while it merged (stopped past the stale time) publishes nothing', async () => {
  const target = path.join(dir, 'out');
  const tx = await OutputTransaction.begin(target);
  fs.writeFileSync(path.join(tx.tempDir, 'config.json'), '{}');
  const lock = path.join(dir, '.out.weightmix.lock');
  // Another run took the lock over: a file of its own there, naming a live pid.
  fs.rmSync(lock);
  liveLock(lock, 0);
  await expect(tx.commit()).rejects.toMatchObject({
    code: 'OutputLocked',
    message: expect.stringMatching(/^this run's lock on .*out \(.*\.out\.weightmix\.lock\) was removed or taken over while it merged/),
  });
  await tx.abort();
  expect({ published: fs.existsSync(target), theirs: fs.readFileSync(lock, 'utf8') }).toEqual({
    published: false,
    theirs: `${process.ppid} ${os.hostname()}\n`,
  });
});
