/** lib/format/float-round.ts against float-bits.ts's slow obvious codecs, bit for bit. */
import { decodeFloat, encodeFloat } from '../lib/format/float-bits';
import { decodeTable, roundToBits } from '../lib/format/float-round';
import { rng } from './helpers/models';

describe.each(['BF16', 'F16'] as const)('%s', (dtype) => {
  test('the table decodes every pattern as decodeFloat does', () => {
    const t = decodeTable(dtype);
    let bad = 0;
    for (let bits = 0; bits < 65536; bits++) if (!Object.is(t[bits], decodeFloat(bits, dtype))) bad++;
    expect(bad).toBe(0);
  });
  test('rounding every value, every midpoint between neighbours and a hair either side of it, as encodeFloat does', () => {
    let bad = 0;
    for (let bits = 0; bits < 65535; bits++) {
      const x = decodeFloat(bits, dtype);
      const y = decodeFloat(bits + 1, dtype);
      const probes = [x, -x];
      if (Number.isFinite(x) && Number.isFinite(y) && Math.sign(x) === Math.sign(y)) {
        const mid = (x + y) / 2; // exact in f64
        const hair = Math.abs(mid) * 2 ** -50 + Number.MIN_VALUE;
        probes.push(mid, mid + hair, mid - hair, -mid, -(mid + hair));
      }
      for (const p of probes) if (roundToBits(p, dtype) !== encodeFloat(p, dtype)) bad++;
    }
    expect(bad).toBe(0);
  });
});

test('F32 and random f64 values over the whole range, specials included', () => {
  const next = rng(9);
  const specials = [
    0,
    -0,
    NaN,
    Infinity,
    -Infinity,
    2 ** -149,
    2 ** -150,
    3 * 2 ** -151,
    3.4028235677973366e38,
    3.4028235677973362e38,
    Number.MAX_VALUE,
    65520,
    65519.99,
    2 ** -24,
    2 ** -25,
  ];
  const xs = [...specials, ...specials.map((x) => -x)];
  for (let i = 0; i < 200000; i++) xs.push((next() - 0.5) * 2 ** Math.floor(next() * 300 - 160));
  for (const dtype of ['F32', 'BF16', 'F16'] as const) {
    const bad = xs.filter((x) => roundToBits(x, dtype) !== encodeFloat(x, dtype));
    expect({ dtype, bad: bad.slice(0, 5) }).toEqual({ dtype, bad: [] });
  }
});
