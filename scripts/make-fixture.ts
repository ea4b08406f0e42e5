/**
 * `weightmix fixture …` for scripts that run from the repository without a build:
 *   npx tsx scripts/make-fixture.ts --shape qwen3-4b --scale 1 --out DIR [--shards 2,3] [--seed N] [--dtype BF16]
 */
import { main } from '../lib/cli';

main([process.argv[0], 'weightmix', 'fixture', ...process.argv.slice(2)]).then((code) => {
  process.exitCode = process.exitCode || code;
});
