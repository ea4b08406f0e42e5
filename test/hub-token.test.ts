/**
 * The token and the endpoint as huggingface_hub reads them (lib/hub/environment.ts): every CR and LF dropped from the token
 * (a token file with Windows line ends, two lines); a token an HTTP header cannot carry refused without being shown (the
 * header's error quoted it whole, blamed on the hub's answer); an HF_ENDPOINT that is no http(s) URL named as such.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hubEnvironment } from '../lib/hub/environment';
import { resolveModelReference } from '../lib/hub/resolve';
import { expectOneLineError, runCli } from './helpers/cli';
import { filesFromFolder, repoOf } from './helpers/hub-server';
import { useHubSuite } from './helpers/hub-suite';
import { dir as root, useTempDir } from './helpers/temp-dir';

useTempDir('wm-hub-token-');

const TOKEN = 'hf_secretprivatetoken';
const hub = useHubSuite(
  23,
  () => root,
  (pair) => ({ 'Org/Private': { ...repoOf(filesFromFolder(pair.instruct)), privateToken: TOKEN } }),
);
const envOf = (extra?: Record<string, string>) => hub.envOf(extra);

test('CR and LF are dropped from the token, from the environment and from the token file, as huggingface_hub does', async () => {
  expect(hubEnvironment({ HF_TOKEN: `hf_ab\r\ncd\r\n` }).token).toBe('hf_abcd');
  const env = envOf();
  fs.mkdirSync(env.HF_HOME, { recursive: true });
  fs.writeFileSync(path.join(env.HF_HOME, 'token'), `${TOKEN}\r\n`);
  expect(hubEnvironment(env).token).toBe(TOKEN);
  const source = await resolveModelReference('Org/Private', { env });
  expect(fs.existsSync(path.join(source.dir, 'config.json'))).toBe(true);
  expect(hubEnvironment({ HF_TOKEN: '\r\n' }).token).toBeUndefined();
});

test('a token a header cannot carry is refused in one line that never shows it, from the library and the command line', async () => {
  for (const token of [`hf_sec\u201Cret\u201D`, 'hf_sec\u0001ret']) {
    const env = envOf({ HF_TOKEN: token });
    const refused = resolveModelReference('Org/Private', { env });
    await expect(refused).rejects.toMatchObject({
      code: 'HubUnauthorized',
      message: expect.stringMatching(/holds a character an HTTP header cannot carry \(U\+[0-9A-F]{4}\)/),
    });
    const message = await refused.catch((e: Error) => e.message);
    expect(message).not.toContain('hf_sec');
    const cli = await runCli(['diff', 'Org/Private', 'Org/Private'], { env });
    expect(expectOneLineError(cli)).toMatch(/^weightmix: error: the Hugging Face token \(HF_TOKEN, or the token file under HF_HOME\) holds a character/);
    expect(cli.stderr + cli.stdout).not.toContain('hf_sec');
  }
});

test('an HF_ENDPOINT without http:// or https:// is named as the setting at fault, not as the hub answering badly', async () => {
  for (const endpoint of ['huggingface.co', 'ftp://127.0.0.1:9']) {
    await expect(resolveModelReference('Org/Private', { env: envOf({ HF_ENDPOINT: endpoint }) })).rejects.toMatchObject({
      code: 'HubError',
      message: `HF_ENDPOINT ${JSON.stringify(endpoint)} is not an http:// or https:// URL`,
    });
  }
});
