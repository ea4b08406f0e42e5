/**
 * A full-size Qwen3-4B-shaped pair (2 × 8.04 GB) whose tensor data are holes, i.e. zeros: real
 * headers, shards and sidecars, no disk used. Input for scripts/batch-memory/run.sh.
 * Usage: npx tsx scripts/batch-memory/zero-pair.ts OUT   (writes OUT/instruct and OUT/thinking)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listModelTensors, resolveModelShape } from '../../lib/fixtures/model-shapes';
import { planModelLayout } from '../../lib/fixtures/fixture-layout';
import { indexJson, writeSidecars } from '../../lib/fixtures/fixture-sidecars';

async function main(out: string) {
  const shape = resolveModelShape('qwen3-4b', { scale: 1 });
  const tensors = listModelTensors(shape);
  for (const variant of ['instruct', 'thinking'] as const) {
    const dir = path.join(out, variant);
    fs.mkdirSync(dir, { recursive: true });
    const layout = planModelLayout(tensors, 'BF16', 3);
    await writeSidecars(dir, shape, 'BF16', variant);
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), indexJson(layout));
    for (const file of layout.files) {
      const fd = fs.openSync(path.join(dir, file.fileName), 'w');
      fs.writeSync(fd, file.header, 0, file.header.length, 0);
      fs.ftruncateSync(fd, file.fileSize); // the data: a hole that reads as zeros
      fs.closeSync(fd);
    }
  }
}

if (process.argv.length !== 3) {
  process.stderr.write('usage: zero-pair.ts OUT\n');
  process.exit(2);
}
main(process.argv[2]).catch((e: Error) => {
  process.stderr.write(`zero-pair: ${e.message}\n`);
  process.exit(1);
});
