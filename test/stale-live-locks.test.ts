/**
 * A lock of this machine whose pid is alive but which went untouched for the stale time (lib/pid-locks.ts holderAlive,
 * lib/hub/blob-lock.ts): a holder touches its lock every 30 s, so the pid is another process's now (a container restarted
 * under the same hostname gives its first pids again). Such an output lock refused every run; such a blob lock made every
 * download of that file wait forever. A lock that names which process its pid is (Linux: pid namespace, boot and start time,
 * lib/process-identity.ts) is judged by that instead: held at any age while that process lives (a run stopped by Ctrl-Z keeps
 * its output), gone at once where the pid is another process's.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OutputTransaction } from '../lib/engine/output';
import { withBlobLock } from '../lib/hub/blob-lock';
import { holderAlive, LOCK_TIMING, ownLockText, readLockHolder } from '../lib/pid-locks';
import { ownProcessIdentity, processIdentity } from '../lib/process-identity';
import { deadPid } from './helpers/transaction-cases';
import { dir, useTempDir } from './helpers/temp-dir';

useTempDir('wm-stale-live-locks-');

/** A lock of this host naming a live pid (this process's parent), last touched `agoMs` ago. */
function liveLock(file: string, agoMs: number): void {
  fs.writeFileSync(file, `${process.ppid} ${os.hostname()}\n`);
  const past = new Date(Date.now() - agoMs);
  fs.utimesSync(file, past, past);
}

/** A lock of this host naming `pid` (this process's parent, a live one) and, on a second line, which process that is. */
function namedLock(file: string, agoMs: number, namespace: string, start: string, pid: number = process.ppid, boot: string = parent!.boot): void {
  fs.writeFileSync(file, `${pid} ${os.hostname()}\nprocess ${namespace} ${boot} ${start}\n`);
  const past = new Date(Date.now() - agoMs);
  fs.utimesSync(file, past, past);
}

const BLOB_TIMING = { refreshMs: 30_000, staleMs: 10 * 60_000, noticeMs: 60_000 };

/** A download under the blob lock `file` runs at once, the lock taken over, and leaves no lock behind. */
async function expectTakenOver(file: string): Promise<void> {
  await expect(
    withBlobLock(
      file,
      () => {},
      undefined,
      async () => 'fetched',
      BLOB_TIMING,
    ),
  ).resolves.toBe('fetched');
  expect(fs.existsSync(file)).toBe(false);
}

const parent = processIdentity(process.ppid);
if (parent === undefined) console.log(`skipping the locks that name their process: /proc says nothing of pid ${process.ppid} on ${process.platform}`);
const withProc = parent === undefined ? test.skip : test;

withProc("an output lock naming its process: held at any age while that process lives, not once its pid is another's", () => {
  const lock = path.join(dir, 'output.weightmix.lock');
  namedLock(lock, 2 * 3600_000, parent!.namespace, parent!.start);
  expect(holderAlive(readLockHolder(lock)!)).toBe(true);
  namedLock(lock, 1000, parent!.namespace, String(BigInt(parent!.start) + 1n));
  expect(holderAlive(readLockHolder(lock)!)).toBe(false);
  // The same pid, namespace and start in an earlier boot: its run died with that boot.
  namedLock(lock, 1000, parent!.namespace, parent!.start, process.ppid, '00000000-0000-4000-8000-000000000000');
  expect(holderAlive(readLockHolder(lock)!)).toBe(false);
  // Another pid namespace's (another container's): its pid means nothing here, alive or dead, so the age decides as for another
  // machine's lock.
  for (const pid of [process.ppid, deadPid()]) {
    namedLock(lock, 1000, 'pid:[1]', parent!.start, pid);
    expect(holderAlive(readLockHolder(lock)!)).toBe(true);
    namedLock(lock, LOCK_TIMING.staleMs + 1000, 'pid:[1]', parent!.start, pid);
    expect(holderAlive(readLockHolder(lock)!)).toBe(false);
  }
});

withProc("this process's own lock names it, and holds", () => {
  const lock = path.join(dir, 'own.weightmix.lock');
  fs.writeFileSync(lock, ownLockText());
  const holder = readLockHolder(lock)!;
  expect({ pid: holder.pid, host: holder.host, process: holder.process }).toEqual({ pid: process.pid, host: os.hostname(), process: ownProcessIdentity() });
  const past = new Date(Date.now() - 2 * 3600_000);
  fs.utimesSync(lock, past, past);
  expect(holderAlive(readLockHolder(lock)!)).toBe(true);
});

withProc('a lock naming a process that has exited (a zombie its parent has not reaped) is not held', async () => {
  // sh forks a child that exits at once, then becomes `sleep`, which never reaps it.
  const parentOfZombie = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const zombie = Number((await once(parentOfZombie.stdout, 'data'))[0].toString().trim());
    let now = processIdentity(zombie);
    for (let i = 0; i < 200 && now !== undefined && !now.exited; i++) {
      await new Promise((r) => setTimeout(r, 10));
      now = processIdentity(zombie);
    }
    expect(now?.exited).toBe(true);
    const lock = path.join(dir, 'zombie.weightmix.lock');
    namedLock(lock, 1000, now!.namespace, now!.start, zombie);
    expect(holderAlive(readLockHolder(lock)!)).toBe(false);
  } finally {
    parentOfZombie.kill();
  }
});

withProc('a blob lock naming another pid namespace is waited for while touched, whatever its pid', async () => {
  const lock = path.join(dir, 'elsewhere-blob.weightmix.lock');
  namedLock(lock, 1000, 'pid:[1]', parent!.start, deadPid());
  const stop = new AbortController();
  setTimeout(() => stop.abort(), 300);
  await expect(
    withBlobLock(
      lock,
      () => {},
      stop.signal,
      async () => 'fetched',
      BLOB_TIMING,
    ),
  ).rejects.toMatchObject({ code: 'Aborted' });
  expect(fs.existsSync(lock)).toBe(true);
});

withProc('a blob lock naming its process is taken over at once where its pid is another process now', async () => {
  const lock = path.join(dir, 'named-blob.weightmix.lock');
  namedLock(lock, 1000, parent!.namespace, String(BigInt(parent!.start) + 1n));
  await expectTakenOver(lock);
});

test("an output lock: this machine's live pid holds it while touched lately, not once untouched for the stale time", () => {
  const lock = path.join(dir, 'output.weightmix.lock');
  liveLock(lock, 1000);
  expect(holderAlive(readLockHolder(lock)!)).toBe(true);
  liveLock(lock, LOCK_TIMING.staleMs + 1000);
  expect(holderAlive(readLockHolder(lock)!)).toBe(false);
});

test('a blob lock of a live pid untouched for the stale time is taken over at once; one touched lately is waited for', async () => {
  const lock = path.join(dir, 'blob.weightmix.lock');
  liveLock(lock, 2 * 3600_000);
  await expectTakenOver(lock);
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
      BLOB_TIMING,
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
