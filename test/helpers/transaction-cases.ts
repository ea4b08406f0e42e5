/** What the output-transaction tests share: a fresh folder per case, a dead pid, and listings of what a case left. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WeightmixError } from '../../lib/errors';
import { ownLockText } from '../../lib/pid-locks';
import { dir as root, useTempDir } from './temp-dir';

/** A fresh folder for every test case under a temporary root, handed to `use` before each case. */
export function useCaseDirs(prefix: string, use: (dir: string) => void): void {
  let counter = 0;
  useTempDir(prefix);
  beforeEach(() => {
    const dir = path.join(root, `case-${counter++}`);
    fs.mkdirSync(dir);
    use(dir);
  });
}

/** What a lock this process takes holds: its pid and host, and which process that is where /proc says. */
export const OWN_LOCK = ownLockText();

/** A pid that no process has now: a child that has already exited. */
export function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  expect(r.pid).toBeGreaterThan(0);
  return r.pid!;
}

export const ls = (d: string) => fs.readdirSync(d).sort();

export const write = (file: string, text: string) => {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
};

/** The WeightmixError a promise rejects with. */
export async function failure(p: Promise<unknown>): Promise<WeightmixError> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(WeightmixError);
  return err as WeightmixError;
}
