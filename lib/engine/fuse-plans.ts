/**
 * Many outputs' write plans as one plan that reads each source tensor once: jobs that read a common
 * tensor become one job feeding every destination. Each output keeps exactly the bytes its own plan
 * writes: a copy, sparse, nearswap, ram, row_linear, della, sce or arcee_fusion destination names its sources by index (renumbered here), and a linear (or
 * lerp) destination, whose sum runs over all of its job's sources in order, keeps exactly its own plan's
 * source list; a tensor that two plans combine from different source lists is read once per list.
 * A job that resolves statistics from its tensor in memory (an open dest: the engine's tensor-local job) holds every
 * source of its job whole, so a fused job with one grows only while its sources fit the local pool; past that, the
 * member that would grow it reads its tensors in a job of its own.
 */
import { InputFiles } from './input-files';
import type { NativeDest, NativeJob, NativeOutput, NativeSource } from './native';
import { MergePlan, mergePlanOf, PlannedModel } from './plan';
import { packJobColumns } from './packed-jobs';
import { remapSparseSources, sparseParamsOpen } from './sparse-params';
import { ramParamsOpen, remapElementwiseSources } from './elementwise-params';
import { dellaParamsOpen, remapDellaSources } from './della-params';
import { remapSceSources, sceParamsOpen } from './sce-params';
import { arceeFusionParamsOpen, remapArceeFusionSources } from './arcee-fusion-params';
import { NATIVE_DTYPE_BYTES } from '../format/dtypes';

/** One job of one plan, its sources renumbered into the fused plan's inputs. */
interface Member {
  job: NativeJob;
  sources: NativeSource[];
  /** One key per source (input, offset, count): the same tensor of the same file has the same key in every plan. */
  keys: string[];
  /** Each source's bytes, by key. */
  bytes: number[];
  /** A dest leaves statistics open: the engine holds the job's sources whole. */
  local: boolean;
  outputBase: number;
  /** Where the job sits in its own plan (0..1): fused jobs keep every output's write order. */
  at: number;
  index: number;
}

/**
 * Fused jobs: one per group of members that read a common tensor (more where linear source lists differ, or where a
 * tensor-local job's sources would not fit the local pool: `fitsLocal(bytes)`, the recipes' fitsLocalPool).
 */
export function fusePlans(plans: MergePlan[], fitsLocal: (bytes: number) => boolean): MergePlan {
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
        bytes: sources.map((s) => job.count * NATIVE_DTYPE_BYTES[s.dtype]),
        local: job.dests.some(leavesStatisticsOpen),
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
    for (const group of sourceGroups(component, fitsLocal)) {
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
  /** Its sources' bytes, and whether a member's dest leaves statistics open (the job then holds them whole). */
  bytes: number;
  local: boolean;
}

/** Whether a destination leaves statistics for the engine to resolve from its tensor in memory (its params' open tail). */
function leavesStatisticsOpen(d: NativeDest): boolean {
  const p = d.params ?? [];
  if (d.op === 'sparse') return sparseParamsOpen(p);
  if (d.op === 'della') return dellaParamsOpen(p);
  if (d.op === 'sce') return sceParamsOpen(p);
  if (d.op === 'arcee_fusion') return arceeFusionParamsOpen(p);
  if (d.op === 'ram') return ramParamsOpen(p);
  // A linear dest's open moments never reach a fused plan (fusePlans refuses them).
  return false;
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
 * rest share jobs over the union of their sources: one, unless a tensor-local job's would outgrow the local pool.
 */
function sourceGroups(component: Member[], fitsLocal: (bytes: number) => boolean): SourceGroup[] {
  const groups = new Map<string, SourceGroup>();
  for (const m of component) {
    if (!m.job.dests.some(usesAllSources)) continue;
    const key = m.keys.join('|');
    const g = groups.get(key);
    if (g) join(g, m);
    else groups.set(key, groupOf(m));
  }
  const loose: SourceGroup[] = [];
  for (const m of component) {
    if (m.job.dests.some(usesAllSources)) continue;
    // The bytes m would add to g; with m, a job that holds its sources whole (a member local) must still fit the pool.
    const added = (g: SourceGroup) => m.keys.reduce((b, k, i) => (g.keys.includes(k) ? b : b + m.bytes[i]), 0);
    const fits = (g: SourceGroup) => !(g.local || m.local) || fitsLocal(g.bytes + added(g));
    // Of the loose jobs it fits, the one it adds the fewest bytes to (the first of equals): a tensor another holds is not read twice.
    const fewest = loose.filter(fits).reduce<SourceGroup | undefined>((best, g) => (best === undefined || added(g) < added(best) ? g : best), undefined);
    const home = [...groups.values()].find((g) => m.keys.every((k) => g.keys.includes(k)) && fits(g)) ?? fewest;
    if (home) join(home, m);
    else loose.push(groupOf(m));
  }
  return [...groups.values(), ...loose];
}

function groupOf(m: Member): SourceGroup {
  return { sources: [...m.sources], keys: [...m.keys], members: [m], bytes: m.bytes.reduce((a, b) => a + b, 0), local: m.local };
}

/** m joins g: its sources that g lacks are added in m's order. */
function join(g: SourceGroup, m: Member): void {
  g.members.push(m);
  g.local ||= m.local;
  m.keys.forEach((k, i) => {
    if (g.keys.includes(k)) return;
    g.keys.push(k);
    g.sources.push(m.sources[i]);
    g.bytes += m.bytes[i];
  });
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
