/**
 * Download throughput from the local hub imitation (test/helpers/hub-server.ts, in a process of its
 * own): weightmix's downloader (resolve → redirect → sha256-verified blob in the cache) against `curl`
 * of the same file, in the same run, and node:http reading it into nothing (the floor of a Node client). Usage: `npx tsx scripts/hub-throughput.ts [GB=1] [DIR=/dev/shm]`.
 * Loopback only.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { hubFile, hubFileOnDisk, repoOf, startHubServer } from '../test/helpers/hub-server';
import { resolveModelReference } from '../lib/hub/resolve';

/** Child mode: serve `file` as Bench/Big and print the endpoint. */
async function serve(file: string) {
  const big = await hubFileOnDisk('model.safetensors', file);
  const server = await startHubServer({ 'Bench/Big': repoOf([big, hubFile('config.json', Buffer.from('{"model_type": "qwen3"}\n'))]) });
  console.log(server.endpoint);
}

async function measure() {
  const gb = Number(process.argv[2] ?? '1');
  const base = fs.mkdtempSync(path.join(process.argv[3] ?? '/dev/shm', 'weightmix-hub-throughput-'));
  const file = path.join(base, 'model.safetensors');
  execFileSync('head', ['-c', String(Math.round(gb * 2 ** 30)), '/dev/urandom'], { stdio: ['ignore', fs.openSync(file, 'w'), 'inherit'] });
  const child = spawn(process.execPath, [...process.execArgv, __filename, 'serve', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const endpoint = await new Promise<string>((resolve, reject) => {
      child.stdout!.setEncoding('utf8').once('data', (d: string) => resolve(d.trim()));
      child.once('exit', (code) => reject(new Error(`server exited ${code}`)));
    });
    const url = `${endpoint}/Bench/Big/resolve/main/model.safetensors`;
    const curlOut = path.join(base, 'curl.out');
    const size = fs.statSync(file).size;
    const rows: Record<string, number[]> = { curl: [], nodeHttpDiscard: [], weightmix: [] };
    const sha = ((await (await fetch(`${endpoint}/api/models/Bench/Big/tree/main`)).json()) as { lfs: { oid: string } }[])[0].lfs.oid;
    for (let round = 0; round < 2; round++) {
      let t = process.hrtime.bigint();
      await promisify(execFile)('curl', ['-sSfL', '-o', curlOut, url]);
      rows.curl.push(Number(process.hrtime.bigint() - t) / 1e9);
      fs.rmSync(curlOut);
      // The floor of any Node client: node:http reading the same bytes from the "CDN" and dropping them.
      t = process.hrtime.bigint();
      await new Promise<void>((resolve, reject) =>
        http.get(`${endpoint}/cdn/${sha}/model.safetensors`, (res) => res.on('data', () => {}).on('end', resolve)).on('error', reject),
      );
      rows.nodeHttpDiscard.push(Number(process.hrtime.bigint() - t) / 1e9);
      const cache = path.join(base, 'cache');
      t = process.hrtime.bigint();
      await resolveModelReference('Bench/Big', { env: { HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache, HF_TOKEN: '' } });
      rows.weightmix.push(Number(process.hrtime.bigint() - t) / 1e9);
      fs.rmSync(cache, { recursive: true });
    }
    const report = Object.fromEntries(Object.entries(rows).map(([k, s]) => [k, s.map((x) => ({ seconds: +x.toFixed(3), MBps: Math.round(size / 1e6 / x) }))]));
    console.log(JSON.stringify({ bytes: size, ...report }));
  } finally {
    child.kill();
    fs.rmSync(base, { recursive: true, force: true });
  }
}

(process.argv[2] === 'serve' ? serve(process.argv[3]) : measure()).catch((e) => {
  console.error(e);
  process.exit(1);
});
