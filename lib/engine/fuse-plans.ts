/**
 * Many outputs' write plans as one plan that reads each source tensor once: jobs that read a common
 * tensor become one job feeding every destination. Each output keeps exactly the bytes its own plan
 * writes: a copy, sparse, nearswap, ram, row_linear, della, sce or arcee_fusion destination names its sources by index (renumbered here), and a linear (or
 * lerp) destination, whose sum runs over all of its job's sources in order, keeps exactly its own plan's
 * source list; a tensor that two plans combine from different source lists is read once per list.
 */
import { InputFiles } from './input-files';
import type { NativeDest, NativeJob, NativeOutput, NativeSource } from './native';
import { MergePlan, mergePlanOf, PlannedModel } from './plan';
import { packJobColumns } from './packed-jobs';
import { remapSparseSources } from './sparse-params';
import { remapElementwiseSources } from './elementwise-params';
import { remapDellaSources } from './della-params';
import { remapSceSources } from './sce-params';
import { remapArceeFusionSources } from './arcee-fusion-params';

/** One job of one plan, its sources renumbered into the fused plan's inputs. */
interface Member {
  job: NativeJob;
  sources: NativeSource[];
  /** One key per source (input, offset, count): the same tensor of the same file has the same key in every plan. */
  keys: string[];
  outputBase: number;
  /** Where the job sits in its own plan (0..1): fused jobs keep every output's write order. */
  at: number;
  index: number;
}

/** Fused jobs: one per group of members that read a common tensor (more where linear source lists differ). */
export function fusePlans(plans: MergePlan[]): MergePlan {
  const inputs = new InputFiles();
  const outputs: NativeOutput[] = [];
  const models: PlannedModel[] = [];
  const members: Member[] = [];
  let bytesToWrite = 0;
  for (const plan of plans) {
    // Their dests' callback ids index each plan's own table: fused, they would answer from no table or from another's.
    if (plan.openMoments) throw new Error('internal: a plan with open moments is not fused');
    const outputBase = outputs.length;
    outputs.push(...plan.outputs);
    models.push(...plan.models);
    bytesToWrite += plan.bytesToWrite;
    plan.jobs.forEach((job, j) => {
      if (job.moments || job.stat) throw new Error('internal: only write plans are fused');
      const sources = job.sources.map((s) => ({ ...s, input: inputs.indexOf(plan.inputs[s.input]) }));
      // The count is part of the key: a tensor cut to its first rows (a vocabulary cut) is another read.
      members.push({
        job,
        sources,
        keys: sources.map((s) => `${s.input}:${s.offset}:${job.count}`),
        outputBase,
        at: j / plan.jobs.length,
        index: members.length,
      });
    });
  }

  // Union-find over members that share a source tensor.
  const parent = members.map((_, i) => i);
  const root = (i: number): number => {
    while (parent[i] !== i) i = parent[i] = parent[parent[i]];
    return i;
  };
  const firstReader = new Map<string, number>();
  for (const m of members) {
    for (const key of m.keys) {
      const other = firstReader.get(key);
      if (other === undefined) firstReader.set(key, m.index);
      else parent[root(m.index)] = root(other);
    }
  }
  const components = new Map<number, Member[]>();
  for (const m of members) {
    const r = root(m.index);
    const list = components.get(r);
    if (list) list.push(m);
    else components.set(r, [m]);
  }

  const fused: { job: NativeJob; at: number; index: number }[] = [];
  for (const component of components.values()) {
    for (const group of sourceGroups(component)) {
      const count = group.members[0].job.count;
      if (group.members.some((m) => m.job.count !== count)) throw new Error('internal: jobs that share a tensor disagree on its element count');
      const indexOf = new Map(group.keys.map((k, i) => [k, i]));
      const dests = group.members.flatMap((m) => m.job.dests.map((d) => remapDest(d, m, (s) => indexOf.get(m.keys[s])!)));
      fused.push({ job: { count, sources: group.sources, dests }, at: Math.min(...group.members.map((m) => m.at)), index: group.members[0].index });
    }
  }
  fused.sort((x, y) => x.at - y.at || x.index - y.index);
  return mergePlanOf({ inputs: inputs.paths, outputs, packedJobs: packJobColumns(fused.map((f) => f.job)), models, bytesToWrite });
}

interface SourceGroup {
  sources: NativeSource[];
  keys: string[];
  members: Member[];
}

/** Whether a destination's result depends on its job's whole source list (and its order). */
function usesAllSources(d: NativeDest): boolean {
  return (
    d.op !== 'copy' &&
    d.op !== 'sparse' &&
    d.op !== 'nearswap' &&
    d.op !== 'ram' &&
    d.op !== 'row_linear' &&
    d.op !== 'della' &&
    d.op !== 'sce' &&
    d.op !== 'arcee_fusion'
  );
}

/**
 * The jobs of one component: one per distinct source list of the members whose destinations use
 * every source; the other members join the first of those that holds all their sources, and the
 * rest share one job over the union of their sources.
 */
function sourceGroups(component: Member[]): SourceGroup[] {
  const groups = new Map<string, SourceGroup>();
  const loose: Member[] = [];
  for (const m of component) {
    if (!m.job.dests.some(usesAllSources)) continue;
    const key = m.keys.join('|');
    const g = groups.get(key);
    if (g) g.members.push(m);
    else groups.set(key, { sources: m.sources, keys: m.keys, members: [m] });
  }
  for (const m of component) {
    if (m.job.dests.some(usesAllSources)) continue;
    const home = [...groups.values()].find((g) => m.keys.every((k) => g.keys.includes(k)));
    if (home) home.members.push(m);
    else loose.push(m);
  }
  const out = [...groups.values()];
  if (loose.length > 0) {
    const sources: NativeSource[] = [];
    const keys: string[] = [];
    for (const m of loose) {
      m.keys.forEach((k, i) => {
        if (keys.includes(k)) return;
        keys.push(k);
        sources.push(m.sources[i]);
      });
    }
    out.push({ sources, keys, members: loose });
  }
  return out;
}

/** A member's destination in the fused job: its output renumbered, and its source indices where it names them. */
function remapDest(d: NativeDest, m: Member, to: (source: number) => number): NativeDest {
  const output = d.output + m.outputBase;
  if (d.op === 'copy') return { ...d, output, w: [to(d.w[0])] };
  if (d.op === 'sparse') return { ...d, output, params: remapSparseSources(d.params ?? [], to) };
  if (d.op === 'della') return { ...d, output, params: remapDellaSources(d.params ?? [], to) };
  if (d.op === 'sce') return { ...d, output, params: remapSceSources(d.params ?? [], to) };
  if (d.op === 'arcee_fusion') return { ...d, output, params: remapArceeFusionSources(d.params ?? [], to) };
  if (d.op === 'nearswap' || d.op === 'ram' || d.op === 'row_linear') return { ...d, output, params: remapElementwiseSources(d.op, d.params ?? [], to) };
  // A linear or lerp destination's group has exactly its own plan's source list, in order.
  return { ...d, output };
}
