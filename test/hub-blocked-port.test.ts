/**
 * HF_ENDPOINT on a port Node's fetch refuses (the Fetch standard's blocked ports; huggingface_hub connects to any): the
 * one-line error names the port and what to do, instead of fetch's bare "bad port". Nothing listens there: fetch refuses
 * before it connects, so no server is needed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expectOneLineError, runCli, scratchDir } from './helpers/cli';
import { isolatedHubEnv } from './helpers/hub-server';
import { resolveModelReference } from '../lib/hub/resolve';

let work: string;
beforeAll(() => {
  work = scratchDir('blocked-port');
});
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const refused = (port: number) =>
  new RegExp(
    `^cannot reach the hub at http://127\\.0\\.0\\.1:${port} \\(Node's fetch refuses port ${port}, one of the Fetch standard's blocked ports: serve the hub on another port\\); set HF_HUB_OFFLINE=1 to use the cache only$`,
  );

test('a blocked port: the API and the CLI say which and why, and nothing is written', async () => {
  for (const port of [6000, 10080]) {
    const env = isolatedHubEnv(`http://127.0.0.1:${port}`, path.join(work, `home-${port}`));
    await expect(resolveModelReference('Org/Model', { env })).rejects.toMatchObject({ code: 'HubUnreachable', message: expect.stringMatching(refused(port)) });
  }
  const out = path.join(work, 'out');
  const cli = await runCli(['interpolate', '--instruct', 'Org/A', '--thinking', 'Org/B', '--lambda', '0.5', '-o', out], {
    env: isolatedHubEnv('http://127.0.0.1:6000', path.join(work, 'home-cli')),
  });
  expect(expectOneLineError(cli)).toMatch(new RegExp(`^weightmix: error: ${refused(6000).source.slice(1)}`));
  expect(fs.existsSync(out)).toBe(false);
});
