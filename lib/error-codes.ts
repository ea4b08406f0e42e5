/**
 * Every `WeightmixError.code`, documented once: what it means and which public functions throw it.
 * `WeightmixErrorCode` is derived from this table, so a code cannot be thrown without a line here,
 * and docs/errors.md is generated from it (`npm run check:api` fails when that page is stale).
 */

/** What one error code means and where it comes from. */
export interface ErrorCodeInfo {
  /** One sentence: what went wrong, in the user's terms. */
  readonly meaning: string;
  /** The public functions (or `weightmix` commands) that throw it. */
  readonly thrownBy: readonly string[];
}

const MERGES = ['interpolate', 'sweep', 'merge', 'mergeBatch'];
const READERS = ['openCheckpoint', 'interpolate', 'sweep', 'merge', 'diff'];
const SAFETENSORS = ['readSafetensorsHeader', ...READERS, 'verify (as a problem)'];
const NATIVE = [...MERGES, 'diff'];
/** Everything that accepts a model argument that may be a hub id. */
const HUB = ['resolveModelReference', 'openModel', 'interpolate', 'sweep', 'merge', 'mergeBatch', 'diff', 'score', 'loadTokenCounter'];

/** The table every code is documented in; its keys are the `WeightmixErrorCode` union. */
export const ERROR_CODES = {
  Aborted: {
    meaning: 'The run was cancelled through its `signal` (the error is named `AbortError`; its `cause` is `signal.reason`); nothing was published.',
    thrownBy: [...NATIVE, 'verify', 'makeCheckpointPair', 'resolveModelReference'],
  },
  ChartWriteFailed: { meaning: 'A chart could not be written to the file asked for.', thrownBy: ['renderChart', 'plotStages', 'plotLayerProfile'] },
  ConfigMismatch: {
    meaning:
      "A model's config.json disagrees with its tensors (vocab_size and hidden_size against the embedding and head, num_hidden_layers against the decoder layers, an untied model without lm_head): transformers would fail to load it, or load a head at random.",
    thrownBy: ['verify (as a problem)'],
  },
  CudaError: { meaning: 'The GPU failed during the run (a CUDA runtime error).', thrownBy: NATIVE },
  CudaOutOfMemory: { meaning: 'The GPU ran out of memory during the run.', thrownBy: NATIVE },
  CudaUnavailable: { meaning: "`device: 'cuda'` was asked for but no GPU is usable (the message says why).", thrownBy: MERGES },
  DtypeMismatch: { meaning: "Two models store a tensor in dtypes that cannot be combined (e.g. `numerics: 'mi'` over BF16 and F16).", thrownBy: MERGES },
  DuplicateTensor: { meaning: 'A model stores one tensor name in two shards.', thrownBy: READERS },
  ElementsDiffer: {
    meaning: 'Recomputed elements of an interpolation differ from what is stored: the model or its sources changed after the merge.',
    thrownBy: ['verify (as a problem)'],
  },
  FileNotFound: {
    meaning: 'A file the run needs (a shard, a generations file, a metrics table) does not exist or cannot be read.',
    thrownBy: [...READERS, 'score', 'readMetricsTable'],
  },
  FixtureExists: { meaning: 'The fixture folder already exists and `overwrite` (`--force`) was not given.', thrownBy: ['makeCheckpointPair'] },
  HeaderTooLarge: { meaning: 'A safetensors header is larger than the format allows (100 MB) or than its file.', thrownBy: SAFETENSORS },
  HeaderTooSmall: { meaning: 'A safetensors file is too short for its header.', thrownBy: SAFETENSORS },
  HubDownloadInterrupted: { meaning: 'A hub download broke off (connection lost or timed out); run again to resume it from the partial file.', thrownBy: HUB },
  HubError: {
    meaning:
      'The hub answered something weightmix cannot use (an unexpected HTTP status, a listing without a commit or with invalid hashes, too many redirects).',
    thrownBy: HUB,
  },
  HubFileNotFound: { meaning: 'A file the model needs is not in the hub repo at that revision.', thrownBy: HUB },
  HubGated: { meaning: 'The hub repo is gated: accept its conditions on the hub and give a token (`HF_TOKEN` or the token file).', thrownBy: HUB },
  HubNoModel: { meaning: 'The hub repo has no safetensors weights or tokenizer files a merge could use.', thrownBy: HUB },
  HubOffline: {
    meaning: 'A hub id is neither a folder nor in the Hugging Face cache, and `HF_HUB_OFFLINE` (1, true, yes, on) forbids downloading it.',
    thrownBy: HUB,
  },
  HubRepoNotFound: {
    meaning: 'A model argument is neither a folder nor a model repo on the hub (or it is private and no token grants access).',
    thrownBy: HUB,
  },
  HubRevisionNotFound: { meaning: 'The hub repo has no such revision (branch, tag or commit) as `@REVISION` names.', thrownBy: HUB },
  HubUnauthorized: {
    meaning:
      'The hub refused access (HTTP 401/403): the token is missing, invalid or lacks access to the repo; or the token holds a character an HTTP header cannot carry (refused before sending it).',
    thrownBy: HUB,
  },
  HubUnreachable: {
    meaning:
      'The hub cannot be reached (DNS, connection, TLS, a connection dropped mid-answer) or answers its metadata requests with HTTP 5xx or 429, and the model is not in the cache; `HF_HUB_OFFLINE=1` uses the cache only.',
    thrownBy: HUB,
  },
  HubVerificationFailed: {
    meaning: "A downloaded file's sha256 or git hash or its size differs from the hub's listing; the partial download was removed.",
    thrownBy: HUB,
  },
  IndexMismatch: {
    meaning: "A model's index (`model.safetensors.index.json`) and its shards disagree about where a tensor is.",
    thrownBy: [...READERS, 'verify (as a problem)'],
  },
  InputChanged: { meaning: 'An input file changed (shrank) while it was being read.', thrownBy: [...NATIVE, 'verify'] },
  InvalidArgument: {
    meaning: 'A value passed to a helper function is out of its range (e.g. `passAtK(n, c, k)` with c > n).',
    thrownBy: ['passAtK', 'score', 'plotLayerProfile'],
  },
  InvalidConfig: {
    meaning: "A model's `config.json` is not a JSON object of plausible size, or a value a merge reads there (`vocab_size`) is no number.",
    thrownBy: READERS,
  },
  InvalidHeader: { meaning: 'A safetensors header is not a JSON object of tensor entries.', thrownBy: SAFETENSORS },
  InvalidHeaderDeserialization: { meaning: 'A safetensors header is not valid JSON (or has duplicate keys or unsafe integers).', thrownBy: SAFETENSORS },
  InvalidHeaderStart: { meaning: "A safetensors header does not start with '{'.", thrownBy: SAFETENSORS },
  InvalidIndex: { meaning: "A model's `model.safetensors.index.json` is malformed.", thrownBy: [...READERS, 'verify (as a problem)'] },
  InvalidJson: {
    meaning: 'A JSON file (an index, a recorded recipe) is not valid strict JSON.',
    thrownBy: [...READERS, 'verify (as a problem)'],
  },
  InvalidLoraAdapter: {
    meaning: "A LoRA adapter of a recipe's `model+lora` reference is malformed or does not fit its model (the message names the tensor).",
    thrownBy: ['merge'],
  },
  InvalidOffset: { meaning: "A safetensors tensor's data offsets overlap, leave gaps or run past the file.", thrownBy: SAFETENSORS },
  InvalidRecipe: {
    meaning: 'A mergekit recipe (or a recorded weightmix recipe) is malformed: the message names the key.',
    thrownBy: ['merge', 'parseRecipe', 'readRecipeFile', 'verify (as a problem)'],
  },
  InvalidTokenizer: { meaning: "A model's `tokenizer.json` cannot be loaded by the tokenizer library.", thrownBy: ['loadTokenCounter', 'score'] },
  IoError: {
    meaning: 'The operating system refused a read or write (EIO, a permission, a failed fsync, a file where the hub cache needs a folder).',
    thrownBy: [...SAFETENSORS, 'merge', 'sweep', 'makeCheckpointPair', ...HUB],
  },
  KTooLarge: { meaning: 'Pass@k or Vote@k asks for more samples than a question has.', thrownBy: ['score', 'passAtK'] },
  MalformedGenerations: { meaning: 'A generations JSONL file has a line that is not a generation record.', thrownBy: ['score'] },
  MalformedMetrics: {
    meaning: 'A metrics table (CSV or JSON) is malformed or lacks the needed columns.',
    thrownBy: ['readMetricsTable', 'stages', 'plotStages'],
  },
  MetadataIncompleteBuffer: {
    meaning: "A safetensors file's size does not match its header: data cut short (a half-written file) or trailing bytes.",
    thrownBy: SAFETENSORS,
  },
  MisalignedSlice: { meaning: "A safetensors tensor's byte length is not its shape times its dtype's size.", thrownBy: SAFETENSORS },
  ModelNotFound: {
    meaning:
      'A model folder does not exist or holds no safetensors (a model argument that is no folder and reads as ORG/NAME is looked up on the hub instead).',
    thrownBy: [...READERS, 'parseRecipe', 'readRecipeFile', 'verify'],
  },
  ModelsDiffer: { meaning: 'The models to combine hold different tensors or layer counts.', thrownBy: [...MERGES, 'diff'] },
  NativeError: { meaning: 'The native engine failed in a way weightmix does not classify (a bug: please report it).', thrownBy: NATIVE },
  NativeMissing: {
    meaning: 'No native addon for this platform: no prebuild and no local build (`npx weightmix-build`), or `WEIGHTMIX_ADDON` names no file.',
    thrownBy: [...NATIVE, 'loadNative'],
  },
  NoSpace: {
    meaning: 'The output file system (or the hub cache) is full (ENOSPC) or over quota; nothing was published.',
    thrownBy: [...MERGES, 'makeCheckpointPair', 'resolveModelReference'],
  },
  NotAFile: {
    meaning: 'A path that must be a regular file (a shard, a sidecar, a generations file, a metrics table) is a folder or something else.',
    thrownBy: [...READERS, 'score', 'readMetricsTable'],
  },
  NothingToPlot: { meaning: 'A chart was asked for data that has nothing to draw.', thrownBy: ['weightmix diff --plot'] },
  OutOfMemory: { meaning: 'The native engine could not allocate memory.', thrownBy: NATIVE },
  OutputError: {
    meaning: 'The output folder could not be created or published, or an existing one could not be listed (the message says why).',
    thrownBy: [...MERGES, 'makeCheckpointPair'],
  },
  OutputExists: {
    meaning:
      'The output already exists (pass `force` to replace a model folder once the new one is complete; a folder of other files, or the current folder, is never replaced).',
    thrownBy: MERGES,
  },
  OutputLocked: { meaning: 'Another run is writing the same output (or fixture folder) right now.', thrownBy: [...MERGES, 'makeCheckpointPair'] },
  PartsIncomplete: {
    meaning:
      "A `--part` job's folder still holds `.weightmix-parts.json`: some of its parts have not published, or the last one stopped before removing the file.",
    thrownBy: ['verify (as a problem)'],
  },
  PlanInvalid: { meaning: 'The native engine refused a plan (a bug in weightmix: please report it).', thrownBy: NATIVE },
  RecipeNotAFile: { meaning: 'The recipe path names a folder or something else than a regular file.', thrownBy: ['merge', 'readRecipeFile'] },
  RecipeNotRecorded: {
    meaning: '`recompute` was asked for, but the model records no weightmix recipe to recompute from.',
    thrownBy: ['verify (as a problem)'],
  },
  RecipeNotFound: { meaning: 'The recipe file does not exist.', thrownBy: ['merge', 'readRecipeFile'] },
  RecipeUnreadable: { meaning: 'The recipe file exists but cannot be read.', thrownBy: ['merge', 'readRecipeFile'] },
  RecipeVariableNotSet: {
    meaning: 'A recipe model path uses `${NAME}` but the environment variable NAME is unset or empty.',
    thrownBy: ['merge', 'parseRecipe', 'readRecipeFile'],
  },
  ShapeMismatch: {
    meaning: "A tensor has different shapes in the models to combine, or the models' configs give different widths (`hidden_size`).",
    thrownBy: [...MERGES, 'diff'],
  },
  TensorInvalidInfo: {
    meaning:
      'A safetensors tensor entry is malformed: an unknown dtype, a bad shape, a name given twice, reserved or not well-formed Unicode, data of the wrong length, metadata that is not strings.',
    thrownBy: [...SAFETENSORS, 'encodeSafetensorsHeader', 'writeSafetensorsFile'],
  },
  UnsafePath: { meaning: 'A name inside a model (a shard in the index) escapes its folder (`..`, an absolute path, a link out).', thrownBy: READERS },
  UnsupportedChartFormat: {
    meaning: 'A chart file name ends in something else than `.svg` or `.png` (exit status 2, as a usage error).',
    thrownBy: ['renderChart', 'plotStages', 'plotLayerProfile'],
  },
  UnsupportedDtype: {
    meaning:
      'A tensor of a float dtype weightmix does not compute (FP8, FP6, FP4, F64, C64) would be combined from models that hold different bytes there; or values of a non-float dtype were asked to be decoded.',
    thrownBy: [...MERGES, 'verify'],
  },
  UnsupportedRecipe: {
    meaning: 'A recipe uses a mergekit feature weightmix does not implement (the message names it).',
    thrownBy: ['merge', 'parseRecipe', 'readRecipeFile'],
  },
  Usage: {
    meaning: 'An option is unknown, missing or has a bad value (exit status 2); the message names the option as the caller wrote it.',
    thrownBy: ['every public function that takes options'],
  },
  ValidationOverflow: { meaning: 'A safetensors shape or offset is past 2^53 (JavaScript cannot address it exactly).', thrownBy: SAFETENSORS },
  VerifyFailed: { meaning: '`weightmix verify` found problems (the library `verify` returns them instead).', thrownBy: ['weightmix verify'] },
} as const satisfies Record<string, ErrorCodeInfo>;

/** Every code a `WeightmixError` can carry; switch on it exhaustively. */
export type WeightmixErrorCode = keyof typeof ERROR_CODES;

/** The codes in alphabetical order. */
export const ERROR_CODE_NAMES: readonly WeightmixErrorCode[] = Object.freeze(Object.keys(ERROR_CODES).sort() as WeightmixErrorCode[]);

/** docs/errors.md: the table above as a page. */
export function errorCodesMarkdown(): string {
  const lines = [
    '# Error codes',
    '',
    '<!-- Generated from lib/error-codes.ts by `npm run api:update`; edit that table, not this page. -->',
    '',
    'Every error weightmix throws for something a user can cause is a `WeightmixError` whose `code` is one of',
    '`WeightmixErrorCode` below (`exitCode` is 1, or 2 for `Usage` and `UnsupportedChartFormat`; the CLI prints the message as one line).',
    'Anything else thrown is a bug.',
    '',
    '| code | meaning | thrown by |',
    '|---|---|---|',
  ];
  for (const code of ERROR_CODE_NAMES) {
    const info: ErrorCodeInfo = ERROR_CODES[code];
    lines.push(`| \`${code}\` | ${info.meaning.replace(/\|/g, '\\|')} | ${[...new Set(info.thrownBy)].map((f) => `\`${f}\``).join(', ')} |`);
  }
  return lines.join('\n') + '\n';
}
