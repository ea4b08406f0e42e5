/**
 * A full disk while a hub download writes (lib/hub/fetch-blob.ts, snapshot-download.ts): a short write (part of a batch
 * taken by a nearly full disk) was counted whole, and the run blamed "another process" for the file's size; the other
 * transfers' partial blobs were kept for a resume, and so kept the disk full for the next run.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeWhole } from '../lib/hub/fetch-blob';
import { resolveModelReference } from '../lib/hub/resolve';
import { isolatedHubEnv } from './helpers/hub-server';
import { useHubSuite } from './helpers/hub-suite';
import { dir as root, useTempDir } from './helpers/temp-dir';

useTempDir('wm-hub-disk-full-');

test('a short write goes on with the rest, and a write that takes nothing is ENOSPC', async () => {
  const taken: Buffer[] = [];
  const handle = (writes: number[]) => ({
    writev: async (chunks: Buffer[]) => {
      const all = Buffer.concat(chunks).subarray(0, writes.shift());
      taken.push(all);
      return { bytesWritten: all.length, buffers: chunks };
    },
    write: async (buffer: Buffer, offset: number, length: number) => {
      const n = Math.min(length, writes.shift()!);
      taken.push(buffer.subarray(offset, offset + n));
      return { bytesWritten: n, buffer };
    },
  });
  const chunks = [Buffer.from('abcdef'), Buffer.from('ghij')];
  await writeWhole(handle([3, 4, 10]) as never, chunks, 10);
  expect(Buffer.concat(taken).toString()).toBe('abcdefghij');
  await expect(writeWhole(handle([3, 0]) as never, chunks, 10)).rejects.toMatchObject({ code: 'ENOSPC' });
});

describe('a full disk mid-download', () => {
  const hub = useHubSuite(25, () => root);

  test("removes the partial blobs of the run's other transfers too", async () => {
    if (!fs.existsSync('/dev/full')) return console.warn('hub-disk-full.test: skipped: no /dev/full on this system');
    const env = isolatedHubEnv(hub.server.endpoint, path.join(root, 'home'));
    const files = hub.server.repos.get('Org/Model')!.commits[hub.server.repos.get('Org/Model')!.refs.main];
    const [full, stalled] = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'].map((p) => files.find((f) => f.path === p)!);
    // One shard's transfer file is /dev/full (every write fails with ENOSPC); the other stalls midway, its partial on disk.
    hub.server.stalls.push({ path: stalled.path, afterBytes: 1000 });
    const blobs = path.join(root, 'home', 'hub', 'models--Org--Model', 'blobs');
    fs.mkdirSync(blobs, { recursive: true });
    fs.symlinkSync('/dev/full', path.join(blobs, `${full.sha256}.incomplete`));
    await expect(resolveModelReference('Org/Model', { env })).rejects.toMatchObject({
      code: 'NoSpace',
      message: expect.stringMatching(/^no space left for Org\/Model: model-00001-of-00002.safetensors .*the partial files were removed$/),
    });
    expect(fs.readdirSync(blobs).filter((b) => b.endsWith('.incomplete'))).toEqual([]);
  }, 60_000);

  test("leaves the partial blob of a file whose lock another live process holds (it is that process's to write)", async () => {
    if (!fs.existsSync('/dev/full')) return console.warn('hub-disk-full.test: skipped: no /dev/full on this system');
    const home = path.join(root, 'home-other');
    const env = isolatedHubEnv(hub.server.endpoint, home);
    const files = hub.server.repos.get('Org/Model')!.commits[hub.server.repos.get('Org/Model')!.refs.main];
    const [full, other] = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'].map((p) => files.find((f) => f.path === p)!);
    const blobs = path.join(home, 'hub', 'models--Org--Model', 'blobs');
    const locks = path.join(home, 'hub', '.locks', 'models--Org--Model');
    fs.mkdirSync(blobs, { recursive: true });
    fs.mkdirSync(locks, { recursive: true });
    fs.symlinkSync('/dev/full', path.join(blobs, `${full.sha256}.incomplete`));
    fs.writeFileSync(path.join(locks, `${other.sha256}.weightmix.lock`), `${process.ppid} ${os.hostname()}\n`);
    const partial = path.join(blobs, `${other.sha256}.incomplete`);
    fs.writeFileSync(partial, Buffer.alloc(500));
    await expect(resolveModelReference('Org/Model', { env })).rejects.toMatchObject({ code: 'NoSpace' });
    expect(fs.existsSync(partial)).toBe(true);
  }, 60_000);
});
