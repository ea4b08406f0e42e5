/**
 * One lock file per blob, so that two processes downloading the same repo never write one blob twice:
 * `open(…, 'wx')` creates it or fails; a lock whose process is gone (same host) is taken over.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WeightmixError } from '../errors';

const POLL_MS = 100;
/** A lock file still empty after this long was left by a process that died between create and write. */
const EMPTY_LOCK_STALE_MS = 10_000;

export async function withBlobLock<T>(lockFile: string, onWait: () => void, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  await fs.promises.mkdir(path.dirname(lockFile), { recursive: true });
  let waited = false;
  for (;;) {
    if (signal?.aborted) throw new WeightmixError('Aborted', 'the download was aborted');
    try {
      const fh = await fs.promises.open(lockFile, 'wx');
      await fh.writeFile(`${process.pid} ${os.hostname()}\n`);
      await fh.close();
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (isStale(lockFile)) {
      await fs.promises.rm(lockFile, { force: true });
      continue;
    }
    if (!waited) onWait();
    waited = true;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  try {
    return await fn();
  } finally {
    await fs.promises.rm(lockFile, { force: true });
  }
}

function isStale(lockFile: string): boolean {
  let text: string;
  let mtime: number;
  try {
    text = fs.readFileSync(lockFile, 'utf8');
    mtime = fs.statSync(lockFile).mtimeMs;
  } catch {
    return false;
  }
  const [pid, host] = text.trim().split(' ');
  if (!/^\d+$/.test(pid ?? '')) return Date.now() - mtime > EMPTY_LOCK_STALE_MS;
  if (host !== os.hostname()) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
}
