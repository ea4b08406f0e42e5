/** lib/analysis/text-table.ts: the reports' tables (diff, score, stages), byte for byte. */
import { textTable } from '../lib/analysis/text-table';

test('head, rule, rows: left columns padded at the end, the rest at the start, two spaces apart, no trailing blanks', () => {
  const head = ['name', 'n', 'rate'];
  const rows = [
    ['alpha', '3', '12.5'],
    ['b', '1234', '7'],
  ];
  expect(textTable(head, rows)).toEqual(['name      n  rate', '-----  ----  ----', 'alpha     3  12.5', 'b      1234     7']);
  expect(textTable(head, rows, 2)).toEqual(['name   n     rate', '-----  ----  ----', 'alpha  3     12.5', 'b      1234     7']);
  expect(textTable(['a', 'b'], [['x', '']])).toEqual(['a  b', '-  -', 'x']);
});
