/** The error-code union cannot drift from the source: every code thrown is documented, every documented code is thrown. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as api from '../lib/index';
import { ERROR_CODES, ERROR_CODE_NAMES, errorCodesMarkdown } from '../lib/error-codes';
import { METHODS } from '../lib/recipes/methods';

const LIB = path.join(__dirname, '..', 'lib');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

/** Codes the source gives an error: literal first arguments, both sides of a conditional first argument, the native code map, usageError. */
function codesInSource(): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const add = (code: string, file: string) => found.set(code, [...(found.get(code) ?? []), path.relative(LIB, file)]);
  for (const file of sources(LIB)) {
    if (file.endsWith('error-codes.ts')) continue;
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:WeightmixError|SafetensorsError)\(\s*'([A-Za-z]+)'/g)) add(m[1], file);
    for (const m of text.matchAll(/(?:WeightmixError|SafetensorsError)\([^,']*\?\s*'([A-Za-z]+)'\s*:\s*'([A-Za-z]+)'/g))
      [m[1], m[2]].forEach((c) => add(c, file));
    for (const m of text.matchAll(/const code = [^;]*\?\s*'([A-Za-z]+)'\s*:\s*'([A-Za-z]+)'/g)) [m[1], m[2]].forEach((c) => add(c, file));
    for (const m of text.matchAll(/problem\(\s*'([A-Za-z]+)'/g)) add(m[1], file);
    // A subclass that fixes its code (hub/fetch-blob.ts's TransferInterrupted).
    for (const m of text.matchAll(/extends WeightmixError \{[^}]*?super\(\s*'([A-Za-z]+)'/g)) add(m[1], file);
    if (/\busageError\(/.test(text)) add('Usage', file);
    const nativeMap = /const NATIVE_CODES[^{]*\{([^}]*)\}/.exec(text);
    if (nativeMap) for (const m of nativeMap[1].matchAll(/:\s*'([A-Za-z]+)'/g)) add(m[1], file);
    if (/'NativeError'/.test(text)) add('NativeError', file);
  }
  return found;
}

test('every code the source throws is in WeightmixErrorCode, and every code in it is thrown somewhere', () => {
  const found = codesInSource();
  const undocumented = [...found.keys()].filter((c) => !(c in ERROR_CODES)).map((c) => `${c} (${found.get(c)!.join(', ')})`);
  expect(undocumented).toEqual([]);
  expect(ERROR_CODE_NAMES.filter((c) => !found.has(c))).toEqual([]);
  expect(found.size).toBeGreaterThan(50);
});

test('each code is documented: a sentence, and functions that exist', () => {
  const exported = new Set(Object.keys(api));
  for (const code of ERROR_CODE_NAMES) {
    const info = ERROR_CODES[code];
    expect({ code, sentence: /^[A-Z`].+\.$/.test(info.meaning) }).toEqual({ code, sentence: true });
    const unknown = info.thrownBy.filter(
      (f) => !exported.has(f) && !/^weightmix \w+/.test(f) && f !== 'verify (as a problem)' && f !== 'every public function that takes options',
    );
    expect({ code, unknown }).toEqual({ code, unknown: [] });
  }
});

test('docs/errors.md is the table, current', () => {
  expect(fs.readFileSync(path.join(__dirname, '..', 'docs', 'errors.md'), 'utf8')).toBe(errorCodesMarkdown());
});

test('MERGE_METHOD_NAMES lists exactly the methods weightmix runs', () => {
  expect([...api.MERGE_METHOD_NAMES].sort()).toEqual(METHODS.map((m) => m.name).sort());
});
