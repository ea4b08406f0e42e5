/** The Python huggingface_hub's environment variables, read the way it reads them, so the two share one cache. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { usageError, WeightmixError } from '../errors';
import { showValue } from '../options';

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/** The hub settings weightmix uses, as `hubEnvironment` reads them from the environment. */
export interface HubEnvironment {
  /** Base URL of the hub (`HF_ENDPOINT`), without a trailing slash. */
  endpoint: string;
  /** The cache root (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`). */
  cacheDir: string;
  /** `HF_TOKEN`, else the token file `$HF_HOME/token` (`HF_TOKEN_PATH`); never printed. */
  token?: string;
  /** `HF_HUB_OFFLINE=1` (or `TRANSFORMERS_OFFLINE=1`): never touch the network. */
  offline: boolean;
  /** `HF_HUB_ETAG_TIMEOUT` (seconds, default 10): how long a metadata request may go unanswered before the hub counts as unreachable. */
  metadataTimeoutSeconds: number;
  /** `HF_HUB_DOWNLOAD_TIMEOUT` (seconds; default 60, where huggingface_hub waits 10): how long a file's transfer may go silent before it counts as broken off (and is resumed). */
  downloadTimeoutSeconds: number;
}

/** huggingface_hub's default HF_HUB_ETAG_TIMEOUT. */
const METADATA_TIMEOUT_SECONDS = 10;
/** A transfer's silence before it counts as broken off: longer than huggingface_hub's 10 s, since a broken-off one is resumed anyway. */
const DOWNLOAD_TIMEOUT_SECONDS = 60;

const TRUE_VALUES = new Set(['1', 'on', 'yes', 'true']);

/** huggingface_hub's `_is_true`: 1, ON, YES, TRUE in any case. */
function isTrue(value: string | undefined): boolean {
  return value !== undefined && TRUE_VALUES.has(value.trim().toLowerCase());
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}

/**
 * Reads the Python `huggingface_hub`'s variables as it does (`HF_ENDPOINT`, `HF_HOME`, `HF_HUB_CACHE`,
 * `HF_TOKEN`/`HF_TOKEN_PATH`, `HF_HUB_OFFLINE`, `HF_HUB_ETAG_TIMEOUT`, `HF_HUB_DOWNLOAD_TIMEOUT`), so that weightmix and Python share one cache.
 *
 * @param env - The environment to read (default `process.env`).
 */
export function hubEnvironment(env: NodeJS.ProcessEnv = process.env): HubEnvironment {
  if (typeof env !== 'object' || env === null) throw usageError(`hubEnvironment: env must be an object of variables, got ${showValue(env)}`);
  const xdgCache = nonEmpty(env.XDG_CACHE_HOME) ?? path.join(os.homedir(), '.cache');
  const home = expandHome(nonEmpty(env.HF_HOME) ?? path.join(xdgCache, 'huggingface'));
  const cacheDir = expandHome(nonEmpty(env.HF_HUB_CACHE) ?? nonEmpty(env.HUGGINGFACE_HUB_CACHE) ?? path.join(home, 'hub'));
  const tokenPath = expandHome(nonEmpty(env.HF_TOKEN_PATH) ?? path.join(home, 'token'));
  return {
    endpoint: (nonEmpty(env.HF_ENDPOINT) ?? DEFAULT_ENDPOINT).trim().replace(/\/+$/, ''),
    cacheDir: path.resolve(cacheDir),
    token: readToken(env, tokenPath),
    // As huggingface_hub's constants: TRANSFORMERS_OFFLINE counts too.
    offline: isTrue(env.HF_HUB_OFFLINE) || isTrue(env.TRANSFORMERS_OFFLINE),
    metadataTimeoutSeconds: positiveSeconds(env.HF_HUB_ETAG_TIMEOUT) ?? METADATA_TIMEOUT_SECONDS,
    downloadTimeoutSeconds: positiveSeconds(env.HF_HUB_DOWNLOAD_TIMEOUT) ?? DOWNLOAD_TIMEOUT_SECONDS,
  };
}

/** A positive number of seconds, else undefined (the default applies, as huggingface_hub's int() would fail on it instead). */
function positiveSeconds(value: string | undefined): number | undefined {
  const x = nonEmpty(value) === undefined ? NaN : Number(value);
  return Number.isFinite(x) && x > 0 ? x : undefined;
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

function readToken(env: NodeJS.ProcessEnv, tokenPath: string): string | undefined {
  const fromEnv = nonEmpty(env.HF_TOKEN) ?? nonEmpty(env.HUGGING_FACE_HUB_TOKEN);
  if (fromEnv !== undefined) return cleanToken(fromEnv);
  try {
    return cleanToken(fs.readFileSync(tokenPath, 'utf8'));
  } catch {
    return undefined;
  }
}

/** huggingface_hub's `_clean_token`: every CR and LF dropped (a token file saved with Windows line ends), then trimmed; empty is none. */
function cleanToken(token: string): string | undefined {
  return nonEmpty(token.replace(/[\r\n]/g, '').trim());
}

/** The hub's origin, from HF_ENDPOINT: an http(s) URL, else one line saying so (a bare host name read as the hub's bad answer). */
export function endpointOrigin(env: HubEnvironment): string {
  let url: URL | undefined;
  try {
    url = new URL(env.endpoint);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new WeightmixError('HubError', `HF_ENDPOINT ${JSON.stringify(env.endpoint)} is not an http:// or https:// URL`);
  }
  return url.origin;
}

/**
 * The Authorization header's value for `token`. One that a header cannot carry (a control character, a code point past
 * U+00FF such as a typographic quote) is refused without being shown: the header's own error quoted the whole token.
 */
export function bearerOf(token: string): string {
  const bad = [...token].find((c) => {
    const p = c.codePointAt(0)!;
    return (p < 0x20 && p !== 0x09) || p === 0x7f || p > 0xff;
  });
  if (bad !== undefined) {
    const code = `U+${bad.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
    throw new WeightmixError(
      'HubUnauthorized',
      `the Hugging Face token (HF_TOKEN, or the token file under HF_HOME) holds a character an HTTP header cannot carry (${code}); it was not sent, fix the token`,
    );
  }
  return `Bearer ${token}`;
}
