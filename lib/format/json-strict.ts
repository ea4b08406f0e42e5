import { WeightmixError } from '../errors';

/** Options of `parseJsonStrict`; `what` names the input in error messages ("model.safetensors: header"). */
export interface JsonStrictOptions {
  what: string;
  /** Deepest allowed nesting of arrays and objects (default 64); `[]` is depth 1. */
  maxDepth?: number;
  /** Accept only numbers written as non-negative integers (no sign, fraction or exponent), as in size fields. */
  unsignedIntegersOnly?: boolean;
}

const DEFAULT_MAX_DEPTH = 64;
// Longer digit strings cannot be below 2^53, so they are rejected without converting them.
const MAX_SAFE_DIGITS = 16;
const NUMBER = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
const HEX4 = /[0-9a-fA-F]{4}/y;
// eslint-disable-next-line no-control-regex -- JSON forbids raw control characters in strings: this class stops at them
const PLAIN_CHARS = /[^"\\\x00-\x1f]*/y;
const PREVIEW_CHARS = 40;

type ObjectFrame = { kind: 'object'; members: Record<string, unknown>; key: string; keyAt: number };
type Frame = { kind: 'array'; items: unknown[] } | ObjectFrame;

/**
 * Parses untrusted JSON (RFC 8259) in one linear pass without recursion. Unlike `JSON.parse` it
 * rejects integers that a double cannot hold exactly, duplicate object keys and nesting deeper than
 * `maxDepth`. Every failure is a `WeightmixError` with code 'InvalidJson' whose one-line message
 * names `opts.what` and the UTF-8 byte position.
 */
export function parseJsonStrict(text: string, opts: JsonStrictOptions): unknown {
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;
  if (!(maxDepth >= 1) || !(Number.isInteger(maxDepth) || maxDepth === Infinity)) {
    throw new RangeError(`parseJsonStrict: maxDepth must be an integer >= 1 or Infinity, got ${maxDepth}`);
  }
  const unsignedIntegersOnly = opts.unsignedIntegersOnly === true;
  const vouched = parseWithJsonParse(text, maxDepth, unsignedIntegersOnly);
  if (vouched !== undefined) return vouched.value;
  return new StrictJsonParser(text, opts.what, maxDepth, unsignedIntegersOnly).parseDocument();
}

/**
 * The one-pass scanner alone: what `parseJsonStrict` falls back to whenever its fast path cannot
 * vouch for the input, and the reference the tests compare that fast path with.
 */
export function parseJsonStrictScanner(text: string, opts: JsonStrictOptions): unknown {
  return new StrictJsonParser(text, opts.what, opts.maxDepth ?? DEFAULT_MAX_DEPTH, opts.unsignedIntegersOnly === true).parseDocument();
}

// String tokens; in text that JSON.parse accepted, every '"' the search reaches opens one.
const STRING_TOKEN = /"[^"\\]*(?:\\.[^"\\]*)*"/g;
// Outside strings, a '-' or a fraction or exponent marks a number that is not an unsigned integer literal.
const SIGN_OR_FRACTION = /-|[0-9][.eE]/;
const TWO_TO_53 = 2 ** 53;

/**
 * The fast path (a CLI run parses headers before the scanner's code is warm; JSON.parse needs no
 * warming): JSON.parse, then two checks that together rule out everything JSON.parse accepts but
 * the strict rules reject. With the strings taken out of the text, its colons count the keys
 * written (a duplicate key leaves fewer members than that) and signs and fractions are visible; a
 * walk of the result counts members, depth and numbers of magnitude 2^53 or more. Undefined means
 * "not vouched for": the scanner then decides, with its exact error message.
 */
function parseWithJsonParse(text: string, maxDepth: number, unsignedIntegersOnly: boolean): { value: unknown } | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const outsideStrings = text.replace(STRING_TOKEN, '');
  if (unsignedIntegersOnly && SIGN_OR_FRACTION.test(outsideStrings)) return undefined;
  let keysWritten = 0;
  for (let at = outsideStrings.indexOf(':'); at !== -1; at = outsideStrings.indexOf(':', at + 1)) keysWritten++;
  return countMembersWithinLimits(value, maxDepth) === keysWritten ? { value } : undefined;
}

/** Object members in the tree, or -1 when it nests deeper than maxDepth or holds a number of magnitude 2^53 or more. */
function countMembersWithinLimits(root: unknown, maxDepth: number): number {
  let members = 0;
  const pending: unknown[] = [root];
  const depths: number[] = [0];
  while (pending.length > 0) {
    const value = pending.pop();
    const depth = depths.pop()!;
    if (typeof value === 'number') {
      if (!(Math.abs(value) < TWO_TO_53)) return -1;
    } else if (typeof value === 'object' && value !== null) {
      if (depth >= maxDepth) return -1;
      const children = Array.isArray(value) ? value : Object.values(value);
      if (children !== value) members += children.length;
      for (const child of children) {
        pending.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return members;
}

class StrictJsonParser {
  private pos = 0;

  constructor(
    private readonly text: string,
    private readonly what: string,
    private readonly maxDepth: number,
    private readonly unsignedIntegersOnly: boolean,
  ) {}

  parseDocument(): unknown {
    const value = this.parseValue();
    this.skipWhitespace();
    if (this.pos < this.text.length) this.fail(`unexpected ${this.describeNext()} after the JSON value`);
    return value;
  }

  /** Values are parsed with an explicit stack so that no input can overflow the call stack. */
  private parseValue(): unknown {
    const stack: Frame[] = [];
    for (;;) {
      this.skipWhitespace();
      let value: unknown;
      const c = this.text.charCodeAt(this.pos);
      if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
        if (stack.length >= this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`);
        this.pos++;
        this.skipWhitespace();
        if (c === 0x7b && this.text.charCodeAt(this.pos) === 0x7d /* } */) {
          this.pos++;
          value = {};
        } else if (c === 0x5b && this.text.charCodeAt(this.pos) === 0x5d /* ] */) {
          this.pos++;
          value = [];
        } else {
          if (c === 0x7b) {
            const frame: ObjectFrame = { kind: 'object', members: {}, key: '', keyAt: 0 };
            this.readMemberKey(frame);
            stack.push(frame);
          } else {
            stack.push({ kind: 'array', items: [] });
          }
          continue;
        }
      } else {
        value = this.parseScalar();
      }
      // Attach the finished value to its container, closing every container that ends here.
      for (;;) {
        const frame = stack[stack.length - 1];
        if (frame === undefined) return value;
        if (frame.kind === 'array') frame.items.push(value);
        else this.addMember(frame, value);
        this.skipWhitespace();
        const next = this.text.charCodeAt(this.pos);
        const close = frame.kind === 'array' ? 0x5d : 0x7d;
        if (next === 0x2c /* , */) {
          this.pos++;
          if (frame.kind === 'object') this.readMemberKey(frame);
          break;
        }
        if (next !== close) {
          this.fail(`expected ',' or '${String.fromCharCode(close)}' but found ${this.describeNext()}`);
        }
        this.pos++;
        stack.pop();
        value = frame.kind === 'array' ? frame.items : frame.members;
      }
    }
  }

  /** Reads `"key" :` of the next object member into the frame. */
  private readMemberKey(frame: ObjectFrame): void {
    this.skipWhitespace();
    frame.keyAt = this.pos;
    if (this.text.charCodeAt(this.pos) !== 0x22) this.fail(`expected a string key but found ${this.describeNext()}`);
    frame.key = this.parseString();
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) !== 0x3a /* : */) this.fail(`expected ':' but found ${this.describeNext()}`);
    this.pos++;
  }

  private addMember(frame: ObjectFrame, value: unknown): void {
    const { members, key } = frame;
    if (Object.prototype.hasOwnProperty.call(members, key)) {
      this.fail(`duplicate key ${preview(key, true)}`, frame.keyAt);
    }
    // Plain assignment of "__proto__" would replace the prototype; JSON.parse defines an own property.
    if (key === '__proto__') {
      Object.defineProperty(members, key, { value, writable: true, enumerable: true, configurable: true });
    } else {
      members[key] = value;
    }
  }

  private parseScalar(): unknown {
    const c = this.text.charCodeAt(this.pos);
    if (c === 0x22) return this.parseString();
    if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) return this.parseNumber();
    if (this.text.startsWith('true', this.pos)) return this.literal(4, true);
    if (this.text.startsWith('false', this.pos)) return this.literal(5, false);
    if (this.text.startsWith('null', this.pos)) return this.literal(4, null);
    return this.fail(`unexpected ${this.describeNext()}`);
  }

  private literal<T>(length: number, value: T): T {
    this.pos += length;
    return value;
  }

  private parseNumber(): number {
    const start = this.pos;
    NUMBER.lastIndex = start;
    const match = NUMBER.exec(this.text);
    if (match === null) return this.fail('invalid number');
    const literal = match[0];
    const after = this.text.charCodeAt(start + literal.length);
    if (after >= 0x30 && after <= 0x39) this.fail('leading zeros are not allowed in numbers', start + literal.length);
    const isInteger = match[1] === undefined && match[2] === undefined;
    if (this.unsignedIntegersOnly && (!isInteger || literal.startsWith('-'))) {
      this.fail(`expected an unsigned integer but found ${preview(literal)}`);
    }
    const digits = literal.startsWith('-') ? literal.length - 1 : literal.length;
    const value = Number(literal);
    if (isInteger && (digits > MAX_SAFE_DIGITS || !Number.isSafeInteger(value))) {
      this.fail(`integer ${preview(literal)} is beyond ±(2^53-1) and cannot be represented exactly`);
    }
    this.pos += literal.length;
    return value;
  }

  private parseString(): string {
    const start = this.pos;
    const text = this.text;
    let out = '';
    let runStart = ++this.pos;
    for (;;) {
      PLAIN_CHARS.lastIndex = this.pos;
      PLAIN_CHARS.test(text);
      this.pos = PLAIN_CHARS.lastIndex;
      if (this.pos >= text.length) this.fail('unterminated string', start);
      const c = text.charCodeAt(this.pos);
      if (c === 0x22) {
        out += text.slice(runStart, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) this.fail(`unescaped control character ${JSON.stringify(text[this.pos])} in string`);
      out += text.slice(runStart, this.pos);
      out += this.parseEscape();
      runStart = this.pos;
    }
  }

  /** Decodes the escape at `pos` (a backslash); lone surrogates from \u escapes are kept, as JSON.parse does. */
  private parseEscape(): string {
    const escapeAt = this.pos;
    const c = this.text[this.pos + 1];
    this.pos += 2;
    switch (c) {
      case '"':
        return '"';
      case '\\':
        return '\\';
      case '/':
        return '/';
      case 'b':
        return '\b';
      case 'f':
        return '\f';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case 't':
        return '\t';
      case 'u': {
        HEX4.lastIndex = this.pos;
        if (!HEX4.test(this.text)) this.fail('invalid \\u escape: expected 4 hex digits', escapeAt);
        const code = parseInt(this.text.slice(this.pos, this.pos + 4), 16);
        this.pos += 4;
        return String.fromCharCode(code);
      }
      default:
        return this.fail(c === undefined ? 'unterminated string' : `invalid escape ${JSON.stringify(`\\${c}`)}`, escapeAt);
    }
  }

  private skipWhitespace(): void {
    const text = this.text;
    let pos = this.pos;
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      pos++;
    }
    this.pos = pos;
  }

  private describeNext(): string {
    if (this.pos >= this.text.length) return 'end of input';
    return describeChar(String.fromCodePoint(this.text.codePointAt(this.pos)!));
  }

  private fail(reason: string, at: number = this.pos): never {
    // Byte positions are computed only on failure, so the success path stays a single pass.
    const byte = Buffer.byteLength(this.text.slice(0, at), 'utf8');
    throw new WeightmixError('InvalidJson', `${this.what}: invalid JSON at byte ${byte}: ${reason}`);
  }
}

/** A character as it appears in a one-line message: JSON-quoted so control characters stay visible. */
function describeChar(ch: string): string {
  return `character ${JSON.stringify(ch)}`;
}

/** Untrusted text, length-limited for a one-line message; `quote` JSON-quotes text that may hold control characters. */
function preview(s: string, quote = false): string {
  const head = s.length <= PREVIEW_CHARS ? s : s.slice(0, PREVIEW_CHARS);
  const shown = quote ? JSON.stringify(head) : head;
  return s.length <= PREVIEW_CHARS ? shown : `${shown}… (${s.length} characters)`;
}
