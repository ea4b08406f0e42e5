/**
 * HF_HUB_DOWNLOAD_TIMEOUT, as huggingface_hub reads it (lib/hub/environment.ts): how long a file's transfer may go silent before it
 * counts as broken off and is resumed. It was a fixed 60 s.
 */
import { resolveModelReference } from '../lib/hub/resolve';

import { useHubSuite } from './helpers/hub-suite';
import { dir as root, useTempDir } from './helpers/temp-dir';

useTempDir('wm-hub-timeout-');

const hub = useHubSuite(28, () => root);

test('a transfer silent for HF_HUB_DOWNLOAD_TIMEOUT seconds is broken off, resumed, and reported with the setting', async () => {
  const env = hub.envOf({ HF_HUB_DOWNLOAD_TIMEOUT: '1' });
  hub.server.stalls.push({ path: 'model-00001-of-00002.safetensors', afterBytes: 1000 });
  const notices: string[] = [];
  const started = Date.now();
  await expect(resolveModelReference('Org/Model', { env, onNotice: (m) => notices.push(m) })).rejects.toMatchObject({
    code: 'HubDownloadInterrupted',
    message: expect.stringContaining('(no data for 1 s, HF_HUB_DOWNLOAD_TIMEOUT)'),
  });
  expect(notices.filter((m) => m.includes('resuming')).length).toBe(2);
  expect(Date.now() - started).toBeLessThan(20_000);
}, 60_000);
