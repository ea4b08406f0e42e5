import { WeightmixError } from '../lib/errors';
import fc from 'fast-check';
import { parseJsonStrict, parseJsonStrictScanner } from '../lib/format/json-strict';

const what = 'index.json';

function parse(text: string, opts: { maxDepth?: number; unsignedIntegersOnly?: boolean } = {}): unknown {
  return parseJsonStrict(text, { what, ...opts });
}

/** The WeightmixError that parsing `text` raises (fails the test if it parses). */
function rejection(text: string, opts: { maxDepth?: number; unsignedIntegersOnly?: boolean } = {}): WeightmixError {
  try {
    parse(text, opts);
  } catch (e) {
    if (e instanceof WeightmixError) return e;
    throw e;
  }
  throw new Error(`expected ${JSON.stringify(text)} to be rejected`);
}

describe('parseJsonStrict on valid JSON', () => {
  test.each([
    ['{}'],
    ['[]'],
    ['0'],
    ['-0'],
    ['"x"'],
    ['true'],
    ['false'],
    ['null'],
    [' \t\r\n{ "a" : [ 1 , -2.5e-3 , 1E+2 , 0.5 ] , "b" : { } } \n'],
    [
      '{"Image":{"Width":800,"Height":600,"Title":"View from 15th Floor","Thumbnail":{"Url":"http://www.example.com/image/481989943","Height":125,"Width":100},"Animated":false,"IDs":[116,943,234,38793]}}',
    ],
    ['"\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0041 \\u00e9 \\ud83d\\ude00"'],
    ['"é😀 raw non-ASCII"'],
    ['9007199254740991'],
    ['-9007199254740991'],
    ['1e400'],
    ['123456789012345678901234567890.5'],
    ['{"a":{"a":{"a":1}}}'],
  ])('%s parses as JSON.parse does', (text) => {
    expect(parse(text)).toStrictEqual(JSON.parse(text));
  });

  test('lone surrogates from \\u escapes are kept, as JSON.parse keeps them', () => {
    expect(parse('"\\ud800x\\udfff"')).toBe('\ud800x\udfff');
    expect(parse('"\ud800"')).toBe('\ud800');
  });

  test('"__proto__" becomes an own data property and leaves the prototype alone', () => {
    const value = parse('{"__proto__":{"polluted":true},"constructor":1}') as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.keys(value)).toEqual(['__proto__', 'constructor']);
    expect(Object.getOwnPropertyDescriptor(value, '__proto__')?.value).toEqual({ polluted: true });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  test('nesting exactly maxDepth deep is accepted, for arrays and objects alike', () => {
    expect(parse('['.repeat(64) + ']'.repeat(64))).toBeDefined();
    expect(parse('{"a":'.repeat(63) + '[]' + '}'.repeat(63))).toBeDefined();
    expect(parse('[[1]]', { maxDepth: 2 })).toEqual([[1]]);
  });

  test('maxDepth Infinity parses 200k nested arrays without overflowing the stack', () => {
    const depth = 200_000;
    let value = parse('['.repeat(depth) + ']'.repeat(depth), { maxDepth: Infinity });
    let seen = 0;
    while (Array.isArray(value) && value.length > 0) {
      value = value[0];
      seen++;
    }
    expect(seen).toBe(depth - 1);
  });

  test('a large document (20k keys, 400 kB string of escapes) parses to the same value', () => {
    const big = { keys: Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, i])), s: '\\"\n\u00e9'.repeat(100_000) };
    const text = JSON.stringify(big);
    expect(parse(text)).toStrictEqual(big);
  });

  test('unsignedIntegersOnly accepts plain unsigned integers', () => {
    expect(parse('[0, 7, 9007199254740991]', { unsignedIntegersOnly: true })).toEqual([0, 7, 9007199254740991]);
  });
});

describe('parseJsonStrict rejections', () => {
  test.each([
    ['9007199254740992', 0, 'integer 9007199254740992 is beyond'],
    ['-9007199254740992', 0, 'integer -9007199254740992 is beyond'],
    ['[1, 18446744073709551615]', 4, 'integer 18446744073709551615 is beyond'],
    ['{"data_offsets":[0,9007199254740993]}', 19, 'integer 9007199254740993'],
    ['00000000000000000001', 1, 'leading zeros'],
  ])('integer %s that a double cannot hold exactly is an error, not rounded', (text, byte, reason) => {
    const e = rejection(text);
    expect(e.code).toBe('InvalidJson');
    expect(e.message.startsWith(`${what}: invalid JSON at byte ${byte}: `)).toBe(true);
    expect(e.message).toContain(reason);
  });

  test('a 100k-digit integer is rejected with a short message', () => {
    const e = rejection('1'.repeat(100_000));
    expect(e.message.length).toBeLessThan(200);
    expect(e.message).toContain('(100000 characters)');
  });

  test.each([
    ['{"a":1,"a":2}', 7, 'duplicate key "a"'],
    ['{"a":1,"\\u0061":2}', 7, 'duplicate key "a"'],
    ['[{"x":{"k":[],"k":{}}}]', 14, 'duplicate key "k"'],
    ['{"__proto__":1,"__proto__":2}', 15, 'duplicate key "__proto__"'],
  ])('duplicate keys in %s are rejected at the second key', (text, byte, reason) => {
    expect(rejection(text).message).toBe(`${what}: invalid JSON at byte ${byte}: ${reason}`);
  });

  test('nesting one deeper than maxDepth is rejected, default 64', () => {
    expect(rejection('['.repeat(65) + ']'.repeat(65)).message).toBe(`${what}: invalid JSON at byte 64: nesting deeper than 64`);
    expect(rejection('{"a":{}}', { maxDepth: 1 }).message).toBe(`${what}: invalid JSON at byte 5: nesting deeper than 1`);
    expect(rejection('['.repeat(1_000_000)).message).toContain('nesting deeper than 64');
  });

  test.each([
    [''],
    [' '],
    ['{} x'],
    ['{}{}'],
    ['1 2'],
    ['"a" "b"'],
    ['\ufeff{}'],
    ['{,}'],
    ['[1,]'],
    ['[,1]'],
    ['{"a":1,}'],
    ['{"a" 1}'],
    ['{"a":}'],
    ['{a:1}'],
    ["{'a':1}"],
    ['[1 2]'],
    ['['],
    ['{'],
    ['{"a"'],
    ['}'],
    ['"abc'],
    ['"\\x"'],
    ['"\\u12"'],
    ['"\\u12G4"'],
    ['"\\'],
    ['"tab\there"'],
    ['"nul\u0000"'],
    ['01'],
    ['-01'],
    ['1.'],
    ['.5'],
    ['+1'],
    ['-'],
    ['1e'],
    ['1e+'],
    ['0x10'],
    ['NaN'],
    ['Infinity'],
    ['-Infinity'],
    ['tru'],
    ['nul'],
    ['True'],
    ['undefined'],
    ['\u00a0{}'],
  ])('%j is not JSON', (text) => {
    expect(() => JSON.parse(text)).toThrow(SyntaxError);
    const e = rejection(text);
    expect(e.code).toBe('InvalidJson');
    expect(e.message).toMatch(new RegExp(`^${what.replace('.', '\\.')}: invalid JSON at byte \\d+: [^\\n]+$`));
  });

  test('error positions count UTF-8 bytes, not UTF-16 units', () => {
    expect(rejection('{"é😀": x}').message).toBe(`${what}: invalid JSON at byte 11: unexpected character "x"`);
  });

  test('messages stay on one line for control characters and long keys', () => {
    expect(rejection('"a\nb"').message).toBe(`${what}: invalid JSON at byte 2: unescaped control character "\\n" in string`);
    const longKey = 'k\n'.repeat(1000);
    const e = rejection(JSON.stringify({ [longKey]: 1 }).replace('}', `,${JSON.stringify(longKey)}:2}`));
    expect(e.message).not.toContain('\n');
    expect(e.message.length).toBeLessThan(200);
  });

  test.each([['-1'], ['1.0'], ['1e2'], ['-0'], ['[0, 2.5]']])('unsignedIntegersOnly rejects %s', (text) => {
    expect(rejection(text, { unsignedIntegersOnly: true }).message).toContain('expected an unsigned integer');
  });

  test('a bad maxDepth is a programming error, not a JSON error', () => {
    expect(() => parse('1', { maxDepth: 0 })).toThrow(RangeError);
    expect(() => parse('1', { maxDepth: 1.5 })).toThrow(RangeError);
    expect(() => parse('1', { maxDepth: NaN })).toThrow(RangeError);
  });
});

/** What parsing gives: the value, or the one-line error message. */
function outcome(parser: typeof parseJsonStrict, text: string, opts: { maxDepth?: number; unsignedIntegersOnly?: boolean }): unknown {
  try {
    return { value: parser(text, { what, ...opts }) };
  } catch (e) {
    if (e instanceof WeightmixError) return { error: e.message };
    throw e;
  }
}

// JSON texts built to hit every rule JSON.parse does not enforce: keys from a tiny alphabet (so
// duplicates are common, also spelled with \u escapes), numbers at and beyond 2^53, signs,
// fractions and exponents, colons and escaped quotes inside strings, deep nesting, odd whitespace.
const ws = fc.constantFrom('', '', ' ', '\n\t ', '\r');
const jsonString = fc
  .array(fc.constantFrom('a', 'b', ':', '\\"', '\\\\', '\\u0061', '\\ud800', ',', '{', '-', '1.5', 'é', '😀', '\\n', '__proto__'), { maxLength: 4 })
  .map((parts) => `"${parts.join('')}"`);
const jsonNumber = fc.constantFrom(
  '0',
  '-0',
  '7',
  '1.0',
  '1e2',
  '2E-3',
  '-12',
  '0.5',
  '9007199254740991',
  '9007199254740992',
  '-9007199254740991',
  '-9007199254740993',
  '18446744073709551615',
  '123456789012345678901234567890.5',
  '1e400',
  '4096',
);
const jsonText: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    jsonNumber,
    jsonString,
    fc.constantFrom('true', 'false', 'null'),
    fc.tuple(fc.array(tie('value'), { maxLength: 4 }), ws).map(([items, w]) => `[${w}${items.join(`${w},`)}]`),
    fc
      .tuple(fc.array(fc.tuple(jsonString, tie('value')), { maxLength: 4 }), ws)
      .map(([members, w]) => `{${members.map(([k, v]) => `${w}${k}${w}:${v}`).join(',')}${w}}`),
  ),
})).value;

describe('parseJsonStrict fast path (JSON.parse plus checks) against the scanner alone', () => {
  test('same value or same error on random texts, in both number modes and at every depth limit', () => {
    fc.assert(
      fc.property(jsonText, fc.boolean(), fc.integer({ min: 1, max: 6 }), (text, unsignedIntegersOnly, maxDepth) => {
        const opts = { unsignedIntegersOnly, maxDepth };
        expect(outcome(parseJsonStrict, text, opts)).toStrictEqual(outcome(parseJsonStrictScanner, text, opts));
      }),
      { numRuns: 3000 },
    );
  });

  test.each([
    ['{"a":1,"a":2}'],
    ['{"a:":1,"b":{"c":2,"c":3}}'],
    ['{"x\\":":1,"x\\":":2}'],
    ['[1,2.0]'],
    ['{"n":-0}'],
    ['[9007199254740993]'],
    ['{"k":"v:1","w":[1e2]}'],
  ])('%s: the fast path hands over to the scanner, which decides as before', (text) => {
    for (const unsignedIntegersOnly of [false, true]) {
      const opts = { unsignedIntegersOnly };
      expect(outcome(parseJsonStrict, text, opts)).toStrictEqual(outcome(parseJsonStrictScanner, text, opts));
    }
  });
});
