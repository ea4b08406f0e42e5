/** A string as JSON writes it, with `JSON.stringify`'s bytes; the usual tensor name, with nothing to escape, is only quoted. */

/** What JSON.stringify escapes (", \, control characters) and surrogates, which it escapes when lone. */
// eslint-disable-next-line no-control-regex -- control characters are what JSON.stringify escapes
const NEEDS_CARE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** Whether `text` is written as `"text"` with nothing escaped and holds no surrogate at all. */
export function isPlainJsonString(text: string): boolean {
  return !NEEDS_CARE.test(text);
}

/** `JSON.stringify(text)`, without the call for a plain string. */
export function jsonString(text: string): string {
  return NEEDS_CARE.test(text) ? JSON.stringify(text) : `"${text}"`;
}

/** Each of `texts` as `jsonString` writes it, with one check of them all for the usual case where none needs more than quotes. */
export function jsonStrings(texts: readonly string[]): string[] {
  if (!NEEDS_CARE.test(texts.join(''))) return texts.map((text) => `"${text}"`);
  return texts.map(jsonString);
}
