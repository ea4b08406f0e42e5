/** The write pass's default block size: 1 MiB when every output is on tmpfs (cache-sized copies), else 8 MiB; never a different byte. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultWriteBlockBytes, MEMORY_BLOCK_BYTES } from '../lib/engine/block-bytes';
import { DEFAULT_BLOCK_BYTES } from '../lib/options';
import { interpolate } from '../lib/interpolation/interpolate';
import { makeCheckpointPair } from '../lib/fixtures/fixture';
import { testIf } from './helpers/skip';

/** Mount points by file-system type, from /proc/mounts (independent of statfs). */
function mountType(dir: string): string | undefined {
  let best: { point: string; type: string } | undefined;
  const real = fs.realpathSync(dir);
  for (const line of fs.readFileSync('/proc/mounts', 'utf8').split('\n')) {
    const [, point, type] = line.split(' ');
    if (point === undefined || type === undefined) continue;
    const inside = real === point || real.startsWith(point.endsWith('/') ? point : `${point}/`);
    if (inside && (best === undefined || point.length >= best.point.length)) best = { point, type };
  }
  return best?.type;
}

const hasProcMounts = fs.existsSync('/proc/mounts');
const shmIsTmpfs = hasProcMounts && fs.existsSync('/dev/shm') && mountType('/dev/shm') === 'tmpfs';
const diskTmp = os.tmpdir();
const tmpIsOnDisk = hasProcMounts && !['tmpfs', 'ramfs'].includes(mountType(diskTmp) ?? 'tmpfs');

const made: string[] = [];
afterAll(() => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
function tempIn(parent: string): string {
  const d = fs.mkdtempSync(path.join(parent, 'weightmix-block-'));
  made.push(d);
  return d;
}

describe('defaultWriteBlockBytes', () => {
  test('no folder, or one that does not exist: the disk default', async () => {
    expect(await defaultWriteBlockBytes([])).toBe(DEFAULT_BLOCK_BYTES);
    expect(await defaultWriteBlockBytes([path.join(diskTmp, 'weightmix-no-such-folder', 'x')])).toBe(DEFAULT_BLOCK_BYTES);
  });

  testIf(shmIsTmpfs, '/dev/shm is not a tmpfs mount here')('a folder on tmpfs: 1 MiB', async () => {
    expect(MEMORY_BLOCK_BYTES).toBe(1 << 20);
    expect(await defaultWriteBlockBytes([tempIn('/dev/shm'), tempIn('/dev/shm')])).toBe(MEMORY_BLOCK_BYTES);
  });

  testIf(shmIsTmpfs && tmpIsOnDisk, 'needs /dev/shm on tmpfs and the temporary folder on a disk')(
    'a folder on disk, alone or beside one on tmpfs: 8 MiB',
    async () => {
      expect(await defaultWriteBlockBytes([tempIn(diskTmp)])).toBe(DEFAULT_BLOCK_BYTES);
      expect(await defaultWriteBlockBytes([tempIn('/dev/shm'), tempIn(diskTmp)])).toBe(DEFAULT_BLOCK_BYTES);
    },
  );
});

testIf(shmIsTmpfs, '/dev/shm is not a tmpfs mount here')(
  'interpolate to tmpfs with the default blocks writes the bytes an explicit 8 MiB block writes',
  async () => {
    const root = tempIn(diskTmp);
    // 4B-shaped at scale 8: the embedding and head (about 12 MB each) span many 1 MiB blocks.
    const pair = await makeCheckpointPair({ dir: root, shape: 'qwen3-4b', scale: 8, layers: 2, seed: 7 });
    const inMemory = path.join(tempIn('/dev/shm'), 'out');
    const explicit = path.join(root, 'out');
    await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.3, output: inMemory });
    await interpolate({ instruct: pair.instruct, thinking: pair.thinking, lambda: 0.3, output: explicit, blockBytes: DEFAULT_BLOCK_BYTES });
    const shards = fs.readdirSync(explicit).filter((f) => f.endsWith('.safetensors'));
    expect(shards.length).toBeGreaterThan(0);
    for (const f of shards) expect(fs.readFileSync(path.join(inMemory, f)).equals(fs.readFileSync(path.join(explicit, f)))).toBe(true);
  },
  120_000,
);
