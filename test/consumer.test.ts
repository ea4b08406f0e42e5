/**
 * The package as a dependent gets it: `npm pack`'s tarball unpacked into a fresh project (as npm
 * install would, with the repository's own dependencies linked in: the registry is not needed),
 * type-checked under a strict nodenext configuration (exactOptionalPropertyTypes, skipLibCheck off)
 * and run from both ESM and CommonJS. The tarball holds no compiled addon, so the runtime checks
 * point WEIGHTMIX_ADDON at this repository's build.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ERROR_CODE_NAMES } from '../lib/index';
import { ensureCliBuilt, ROOT, scratchDir } from './helpers/cli';

const TSC = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const ADDON = path.join(ROOT, 'build', 'Release', 'weightmix.node');
let project: string;

/** Every type the root exports, read from lib/index.ts's `export type { … }` lines. */
function exportedTypeNames(): string[] {
  const index = fs.readFileSync(path.join(ROOT, 'lib', 'index.ts'), 'utf8');
  return [...index.matchAll(/^export type \{([^}]*)\}/gm)].flatMap((m) =>
    m[1]
      .split(',')
      .map((n) => n.trim())
      .filter(Boolean),
  );
}

beforeAll(() => {
  ensureCliBuilt();
  project = scratchDir('consumer');
  const packed = JSON.parse(execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', project], { cwd: ROOT, encoding: 'utf8' })) as {
    filename: string;
  }[];
  const pkg = path.join(project, 'node_modules', 'weightmix');
  fs.mkdirSync(pkg, { recursive: true });
  execFileSync('tar', ['-xzf', path.join(project, packed[0].filename), '-C', pkg, '--strip-components=1']);
  const manifest = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const dep of [...Object.keys(manifest.dependencies), '@types/node']) {
    const link = path.join(project, 'node_modules', dep);
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(path.join(ROOT, 'node_modules', dep), link);
  }
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  const compilerOptions = {
    module: 'nodenext',
    moduleResolution: 'nodenext',
    target: 'es2022',
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: false,
    noEmit: true,
    types: ['node'],
  };
  fs.writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['positive.mts', 'positive.cts'] }));
  fs.writeFileSync(path.join(project, 'tsconfig.negative.json'), JSON.stringify({ compilerOptions, files: ['negative.mts'] }));
}, 180_000);
afterAll(() => fs.rmSync(project, { recursive: true, force: true }));

const tsc = (config: string) => spawnSync(process.execPath, [TSC, '-p', config], { cwd: project, encoding: 'utf8' });

test('a strict nodenext project names every exported type, switches exhaustively on error codes, and narrows recipes', () => {
  const types = exportedTypeNames();
  expect(types).toEqual(
    expect.arrayContaining([
      'WeightmixErrorCode',
      'DiffReport',
      'DiffOptions',
      'MergeOptions',
      'RecipeMergeSummary',
      'ScoreReport',
      'StageReport',
      'MetricsRow',
      'ModuleClass',
      'Numerics',
      'Recipe',
    ]),
  );
  const positive = [
    `import { interpolate, isWeightmixError, ERROR_CODES, type ${types.join(', type ')} } from 'weightmix';`,
    `export type Every = [${types.join(', ')}];`,
    'export function explain(code: WeightmixErrorCode): string {',
    '  switch (code) {',
    ...ERROR_CODE_NAMES.map((c) => `    case '${c}': return ERROR_CODES['${c}'].meaning;`),
    '    default: { const unreachable: never = code; return unreachable; }',
    '  }',
    '}',
    'export async function run(options: InterpolateOptions): Promise<string> {',
    '  try { return (await interpolate(options)).outputs.join(); }',
    '  catch (e) {',
    '    if (!isWeightmixError(e)) throw e;',
    '    // @ts-expect-error a misspelled code does not compile',
    "    if (e.code === 'OutputExist') return 'never';",
    '    return explain(e.code);',
    '  }',
    '}',
    'export function lambdaOf(r: RecordedRecipe): number | null {',
    "  return r.method === 'interpolate' ? r.lambda : r.recipe === undefined ? null : 0;",
    '}',
    "export const dtype: InterpolateOptions['dtype'] = 'bf16';",
    '',
  ].join('\n');
  fs.writeFileSync(path.join(project, 'positive.mts'), positive);
  fs.writeFileSync(
    path.join(project, 'positive.cts'),
    "import weightmix = require('weightmix');\nexport const code: weightmix.WeightmixErrorCode = 'Usage';\nexport const f: typeof weightmix.merge = weightmix.merge;\n",
  );
  const r = tsc('tsconfig.json');
  expect(r.stdout + r.stderr).toBe('');
  expect(r.status).toBe(0);
}, 120_000);

test('a misspelled error code, option or dtype fails to compile', () => {
  fs.writeFileSync(
    path.join(project, 'negative.mts'),
    [
      "import { interpolate, type WeightmixErrorCode } from 'weightmix';",
      "export const code: WeightmixErrorCode = 'OutputExist';",
      "export const run = () => interpolate({ instruct: 'a', thinking: 'b', lambda: 0.5, output: 'o', skipModule: 'attn' });",
      "export const dtype = () => interpolate({ instruct: 'a', thinking: 'b', lambda: 0.5, output: 'o', dtype: 'fp8' });",
      '',
    ].join('\n'),
  );
  const r = tsc('tsconfig.negative.json');
  expect(r.status).not.toBe(0);
  const errors = r.stdout.split('\n').filter((l) => l.includes('error TS'));
  expect(errors.map((l) => /^negative\.mts\((\d+),\d+\): error (TS\d+)/.exec(l)?.slice(1, 3))).toEqual([
    ['2', 'TS2820'], // not assignable: did you mean 'OutputExists'?
    ['3', 'TS2561'], // unknown property: did you mean 'skipModules'?
    ['4', 'TS2322'], // 'fp8' is no dtype name
  ]);
}, 120_000);

test('ESM named imports and require() both work, and the runtime contract holds from the package', () => {
  const script = (imports: string) =>
    [
      imports,
      'const results = {};',
      "results.functions = ['interpolate', 'sweep', 'merge', 'diff', 'verify', 'openCheckpoint', 'parseRecipe', 'readRecipeFile'].every((n) => typeof api[n] === 'function');",
      'const settle = (p) => p.then(() => null, (e) => ({ name: e.name, code: e.code, message: e.message, cause: e.cause }));',
      'results.noOptions = await settle(api.interpolate());',
      "results.unknownKey = await settle(api.interpolate({ instruct: 'a', thinking: 'b', lambda: 0.5, output: 'o', skipModule: 'attn' }));",
      'results.openCheckpoint = await settle(api.openCheckpoint(42));',
      "results.abort = await settle(api.diff({ a: 'a', b: 'b', signal: AbortSignal.abort('why') }));",
      "results.missing = await settle(api.verify({ dir: '/nonexistent/weightmix' }));",
      'console.log(JSON.stringify(results));',
    ].join('\n');
  fs.writeFileSync(
    path.join(project, 'runtime.mjs'),
    script(
      "import * as api from 'weightmix';\nimport { interpolate } from 'weightmix';\nif (typeof interpolate !== 'function') throw new Error('no named export');",
    ),
  );
  fs.writeFileSync(path.join(project, 'runtime.cjs'), `(async () => {\n${script("const api = require('weightmix');")}\n})();`);
  const env = {
    ...process.env,
    WEIGHTMIX_ADDON: fs.existsSync(path.join(project, 'node_modules', 'weightmix', 'build', 'Release', 'weightmix.node')) ? '' : ADDON,
  };
  for (const file of ['runtime.mjs', 'runtime.cjs']) {
    const r = spawnSync(process.execPath, [file], { cwd: project, encoding: 'utf8', env });
    expect({ file, stderr: r.stderr, status: r.status }).toEqual({ file, stderr: '', status: 0 });
    expect(JSON.parse(r.stdout)).toEqual({
      functions: true,
      noOptions: { name: 'WeightmixError', code: 'Usage', message: 'interpolate(options): options must be an object, got undefined' },
      unknownKey: { name: 'WeightmixError', code: 'Usage', message: "interpolate: unknown option 'skipModule' (did you mean 'skipModules'?)" },
      openCheckpoint: { name: 'WeightmixError', code: 'Usage', message: 'openCheckpoint(dir): dir must be a model folder path, got 42' },
      abort: { name: 'AbortError', code: 'Aborted', message: 'the diff was aborted', cause: 'why' },
      missing: { name: 'WeightmixError', code: 'ModelNotFound', message: 'model folder not found: /nonexistent/weightmix' },
    });
  }
}, 60_000);
