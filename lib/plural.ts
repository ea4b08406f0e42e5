/** A count and its noun for messages: "1 shard file", "3 shard files". */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
