/** mapInOrder (lib/model/map-in-order.ts): a few calls at once, results and failures as a one-at-a-time loop gives them. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { mapInOrder } from '../lib/model/map-in-order';
import { openCheckpoint } from '../lib/model/checkpoint';
import { writeSafetensorsFile } from '../lib/format/safetensors';
import { dir, useTempDir } from './helpers/temp-dir';

useTempDir('wm-map-in-order-');

const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('mapInOrder', () => {
  test('results in item order whatever order the calls end in; never more than the limit at once', async () => {
    for (const limit of [1, 2, 4, 20]) {
      const items = Array.from({ length: 13 }, (_, i) => i);
      let running = 0;
      let most = 0;
      const got = await mapInOrder(items, limit, async (i) => {
        running++;
        most = Math.max(most, running);
        await tick((i * 7) % 5); // later items often end first
        running--;
        return i * i;
      });
      expect(got).toEqual(items.map((i) => i * i));
      expect(most).toBe(Math.min(limit, items.length));
    }
  });

  test('fails with the first failing item in item order, though a later one failed sooner', async () => {
    const calls: number[] = [];
    const failing = mapInOrder([0, 1, 2, 3], 4, async (i) => {
      calls.push(i);
      if (i === 1) {
        await tick(20);
        throw new Error('item 1');
      }
      if (i === 3) throw new Error('item 3');
      return i;
    });
    await expect(failing).rejects.toThrow('item 1');
    expect(calls.sort()).toEqual([0, 1, 2, 3]);
  });

  test('items after a failure are not started; those before it still are, and their failure wins', async () => {
    const calls: number[] = [];
    await expect(
      mapInOrder([0, 1, 2, 3, 4, 5], 1, async (i) => {
        calls.push(i);
        if (i >= 2) throw new Error(`item ${i}`);
        return i;
      }),
    ).rejects.toThrow('item 2');
    expect(calls).toEqual([0, 1, 2]);
  });

  test('no items: no call, an empty result', async () => {
    const fn = jest.fn(async (i: number) => i);
    await expect(mapInOrder([], 4, fn)).resolves.toEqual([]);
    expect(fn).not.toHaveBeenCalled();
  });
});

describe('openCheckpoint reads shard headers a few at a time', () => {
  test('two broken shards: the error names the first, as reading them one by one did', async () => {
    const model = path.join(dir, 'broken');
    fs.mkdirSync(model);
    const names = [1, 2, 3, 4, 5].map((s) => `model-0000${s}-of-00005.safetensors`);
    const weightMap: Record<string, string> = {};
    for (const [s, name] of names.entries()) {
      await writeSafetensorsFile(path.join(model, name), [{ name: `t${s}`, dtype: 'F32', shape: [2], data: Buffer.alloc(8) }]);
      weightMap[`t${s}`] = name;
    }
    fs.writeFileSync(path.join(model, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    fs.writeFileSync(path.join(model, names[1]), Buffer.from('{"bad": 1}')); // no length prefix
    fs.truncateSync(path.join(model, names[4]), 4);
    for (let i = 0; i < 5; i++) await expect(openCheckpoint(model)).rejects.toThrow(names[1]);
  });
});
