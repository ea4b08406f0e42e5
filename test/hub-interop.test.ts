/**
 * Interop with the Python `huggingface_hub` and `tokenizers` libraries (optional): a cache written by
 * Python (downloaded from the local hub imitation) used offline by weightmix; a cache written by
 * weightmix read by Python with local_files_only=True; token counts of a tokenizer Python trains and
 * saves. Python comes from $WEIGHTMIX_HUB_PYTHON, else the first of /work/venv-hub/bin/python, /tmp/venv-interop/bin/python
 * (scripts/interop-venv.sh's, which CI makes: transformers brings both libraries) and python3 that imports the module;
 * without huggingface_hub (or tokenizers) the cases are skipped with the reason printed.
 */
import { execFile, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { cachedPair, scratchDir } from './helpers/cli';
import { filesFromFolder, HubServer, repoOf, startHubServer } from './helpers/hub-server';
import { resolveModelReference } from '../lib/hub/resolve';
import { loadTokenCounter } from '../lib/analysis/tokenizer';

function probe(module: string): { python?: string; version?: string; reason?: string } {
  const candidates = process.env.WEIGHTMIX_HUB_PYTHON
    ? [process.env.WEIGHTMIX_HUB_PYTHON]
    : ['/work/venv-hub/bin/python', '/tmp/venv-interop/bin/python', 'python3'];
  const tried: string[] = [];
  for (const python of candidates) {
    const r = spawnSync(python, ['-c', `import ${module}; print(${module}.__version__)`], { encoding: 'utf8', timeout: 60_000 });
    if (r.status === 0) return { python, version: r.stdout.trim() };
    tried.push(`${python}: ${r.error?.message ?? (r.stderr || '').trim().split('\n').pop()}`);
  }
  return { reason: `no python with ${module} (set WEIGHTMIX_HUB_PYTHON); tried ${tried.join('; ')}` };
}

const hub = probe('huggingface_hub');
const tok = probe('tokenizers');
for (const [name, p] of [
  ['huggingface_hub', hub],
  ['tokenizers', tok],
] as const) {
  if (p.python) console.log(`hub-interop.test: ${name} ${p.version} from ${p.python}`);
  else console.warn(`hub-interop.test: ${name} cases skipped: ${p.reason}`);
}
const withHub = hub.python ? test : test.skip;
const withTokenizers = tok.python ? test : test.skip;

/** Python, asynchronously: the hub imitation runs in this process and must keep answering. */
async function python(exe: string, code: string, env: Record<string, string>): Promise<string> {
  try {
    const r = await promisify(execFile)(exe, ['-c', code], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });
    return r.stdout.trim();
  } catch (e) {
    throw new Error(`python failed: ${(e as { stderr?: string }).stderr ?? e}`);
  }
}

let server: HubServer;
let work: string;
let pair: { instruct: string };

beforeAll(async () => {
  if (!hub.python && !tok.python) return;
  pair = await cachedPair({ shape: 'tiny', shards: [2, 1], seed: 13 });
  work = scratchDir('hub-interop');
  server = await startHubServer({ 'Org/Instruct': repoOf(filesFromFolder(pair.instruct, { 'pytorch_model.bin': 'x' }), ['v1']) });
}, 120_000);

afterAll(async () => {
  await server?.close();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const shards = (dir: string) =>
  fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors'))
    .sort()
    .map((f) => fs.readFileSync(path.join(dir, f)).toString('base64'));

withHub(
  'a cache written by huggingface_hub (hf snapshot_download) is used offline by weightmix',
  async () => {
    const cache = path.join(work, 'py-cache');
    const env = {
      HF_ENDPOINT: server.endpoint,
      HF_HOME: path.join(work, 'py-home'),
      HF_HUB_CACHE: cache,
      HF_HUB_DISABLE_XET: '1',
      HF_HUB_DISABLE_PROGRESS_BARS: '1',
      HF_TOKEN: '',
      HF_HUB_OFFLINE: '0',
    };
    const dir = await python(
      hub.python!,
      "from huggingface_hub import snapshot_download\nprint(snapshot_download('Org/Instruct', revision='v1', allow_patterns=['*.safetensors', '*.json', '*.txt']))",
      env,
    );
    server.log.length = 0;
    const r = await resolveModelReference('Org/Instruct@v1', { env: { ...env, HF_HUB_OFFLINE: '1' } });
    expect(r.dir).toBe(dir);
    expect(r.hub?.commit).toBe(server.repos.get('Org/Instruct')!.refs.v1);
    expect(server.log).toEqual([]);
    expect(shards(r.dir)).toEqual(shards(pair.instruct));
  },
  120_000,
);

withHub(
  'a cache written by weightmix is read by huggingface_hub with local_files_only=True',
  async () => {
    const cache = path.join(work, 'wm-cache');
    const env = { HF_ENDPOINT: server.endpoint, HF_HOME: path.join(work, 'wm-home'), HF_HUB_CACHE: cache, HF_TOKEN: '', HF_HUB_OFFLINE: '0' };
    const r = await resolveModelReference('Org/Instruct', { env });
    const code = [
      'from huggingface_hub import snapshot_download, hf_hub_download, scan_cache_dir',
      "print(snapshot_download('Org/Instruct', local_files_only=True))",
      "print(hf_hub_download('Org/Instruct', 'config.json', local_files_only=True))",
      'info = scan_cache_dir()',
      'print(len(info.warnings), sorted(r.repo_id for r in info.repos))',
    ].join('\n');
    const out = (await python(hub.python!, code, { ...env, HF_ENDPOINT: 'http://127.0.0.1:9', HF_HUB_OFFLINE: '1' })).split('\n');
    expect(out[0]).toBe(r.dir);
    expect(out[1]).toBe(path.join(r.dir, 'config.json'));
    expect(out[2]).toBe("0 ['Org/Instruct']");
  },
  120_000,
);

withTokenizers(
  'token counts match the Python tokenizers library on a tokenizer it trains and saves',
  async () => {
    const dir = path.join(work, 'trained');
    fs.mkdirSync(dir, { recursive: true });
    const texts = [
      'Hello world, this is a test.',
      'naïve café — 東京 123 4567',
      '<think>\nreasoning…</think> The answer is \\boxed{42}.',
      '   spaces   and\ttabs\n\nnewlines',
      'emoji 🙂 and ünïcödé',
    ];
    const code = [
      'import json, sys',
      'from tokenizers import Tokenizer, models, trainers, pre_tokenizers, decoders',
      't = Tokenizer(models.BPE())',
      't.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)',
      't.decoder = decoders.ByteLevel()',
      "trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=['<|endoftext|>', '<think>', '</think>'], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())",
      `corpus = ${JSON.stringify(texts)} * 20 + ['the quick brown fox jumps over the lazy dog'] * 50`,
      't.train_from_iterator(corpus, trainer)',
      `t.save(${JSON.stringify(path.join(dir, 'tokenizer.json'))})`,
      `print(json.dumps([len(t.encode(x, add_special_tokens=False).ids) for x in ${JSON.stringify(texts)}]))`,
    ].join('\n');
    const expected = JSON.parse(await python(tok.python!, code, {}));
    const counter = await loadTokenCounter(dir);
    expect(texts.map((t) => counter.count(t))).toEqual(expected);
  },
  120_000,
);
