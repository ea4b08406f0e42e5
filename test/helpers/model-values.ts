/** A model's tensors read back as numbers, and their largest ulp distance from a float64 oracle (the method tests' measure). */
import { Checkpoint, openCheckpoint } from '../../lib/model/checkpoint';
import { readTensorValues } from '../../lib/format/tensor-data';
import { ulpDistance } from '../reference/merge-methods';

/** Every tensor of the model folder, by name, as numbers. */
export async function modelValues(model: string): Promise<Map<string, number[]>> {
  const c = await openCheckpoint(model);
  const m = new Map<string, number[]>();
  for (const name of c.names) m.set(name, await readTensorValues(c.tensors.get(name)!));
  return m;
}

/** Largest ulp distance over all tensors between the output and the oracle. */
export async function worstUlp(out: Checkpoint, oracle: (name: string) => number[]): Promise<number> {
  let worst = 0;
  for (const name of out.names) {
    const loc = out.tensors.get(name)!;
    const got = await readTensorValues(loc);
    const ref = oracle(name);
    expect(got.length).toBe(ref.length);
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, ulpDistance(got[i], ref[i], loc.dtype));
  }
  return worst;
}
