/** The safetensors format's named errors, and how they show untrusted names, shapes and values in one line. */
import { usageError, WeightmixError } from '../errors';

const MAX_SHOWN_DIMS = 8;
const MAX_SHOWN_NAME_CHARS = 80;

/** Codes named after the Rust crate's `SafeTensorError` variants. */
export type SafetensorsErrorCode =
  | 'HeaderTooLarge'
  | 'HeaderTooSmall'
  | 'InvalidHeaderStart'
  | 'InvalidHeader'
  | 'InvalidHeaderDeserialization'
  | 'InvalidOffset'
  | 'TensorInvalidInfo'
  | 'ValidationOverflow'
  | 'MisalignedSlice'
  | 'MetadataIncompleteBuffer'
  | 'IoError';

/** A malformed or unreadable safetensors file; the message is one line, `<file>: <what>`. */
export class SafetensorsError extends WeightmixError {
  /** Named after the Rust crate's `SafeTensorError` variant. */
  declare readonly code: SafetensorsErrorCode;

  constructor(code: SafetensorsErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, options);
    this.name = 'SafetensorsError';
  }
}

/** Errors from the operating system (ENOENT, EISDIR, EIO…), as opposed to bugs; duck-typed because `instanceof Error` fails across realms (jest). */
export function isSystemError(e: unknown): e is NodeJS.ErrnoException {
  return typeof e === 'object' && e !== null && typeof (e as NodeJS.ErrnoException).syscall === 'string';
}

export function ioError(path: string, action: string, cause: NodeJS.ErrnoException): SafetensorsError {
  const reason = cause.message;
  return new SafetensorsError('IoError', `${path}: ${action}: ${reason}`, { cause });
}

export function shapeError(file: string, what: string): SafetensorsError {
  return new SafetensorsError('InvalidHeaderDeserialization', `${file}: ${what}`);
}

export function describeJson(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** A tensor or key name from an untrusted file, JSON-quoted (one line) and length-limited. */
export function showName(name: string): string {
  return name.length <= MAX_SHOWN_NAME_CHARS ? JSON.stringify(name) : `${JSON.stringify(name.slice(0, MAX_SHOWN_NAME_CHARS))}… (${name.length} characters)`;
}

export function showShape(shape: readonly number[]): string {
  const shown = shape.slice(0, MAX_SHOWN_DIMS).join(', ');
  return shape.length <= MAX_SHOWN_DIMS ? `[${shown}]` : `[${shown}, … (${shape.length} dimensions)]`;
}

/** A JavaScript caller's wrong argument types as one usage error, not a TypeError from deep inside. */
export function checkPath(fn: string, path: unknown): asserts path is string {
  if (typeof path !== 'string' || path === '' || path.includes('\0')) throw usageError(`${fn}: path must be a file path, got ${describeArgument(path)}`);
}

export function checkTensorList(fn: string, tensors: unknown, withData = false): void {
  const fields = withData ? '{name, dtype, shape, data}' : '{name, dtype, shape}';
  if (!Array.isArray(tensors)) throw usageError(`${fn}: tensors must be an array of ${fields}, got ${describeArgument(tensors)}`);
  tensors.forEach((t: unknown, i) => {
    const entry = t as { name?: unknown; shape?: unknown; data?: unknown } | null;
    const ok = typeof entry === 'object' && entry !== null && typeof entry.name === 'string' && Array.isArray(entry.shape);
    if (!ok || (withData && !Buffer.isBuffer(entry.data))) throw usageError(`${fn}: tensors[${i}] must be ${fields}, got ${describeArgument(t)}`);
  });
}

function describeArgument(value: unknown): string {
  return value === undefined ? 'nothing' : (JSON.stringify(value) ?? String(value));
}
