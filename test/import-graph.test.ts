/**
 * The import graph of lib/: every import, export-from and import() of every lib/**\/*.ts file,
 * type-only ones too (they tie modules together for a reader as much as for the compiler).
 * No cycles, and layers point downward: format/ imports nothing from another lib/ folder, and
 * each folder imports only folders of lower layers (LAYERS).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

const LIB = path.join(__dirname, '..', 'lib');

function libFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return libFiles(p);
    return e.name.endsWith('.ts') ? [p] : [];
  });
}

/** lib-relative file → the lib-relative files it imports (relative specifiers only; packages are not ours). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of libFiles(LIB)) {
    const { importedFiles } = ts.preProcessFile(fs.readFileSync(file, 'utf8'), true, false);
    const targets = importedFiles
      .map((f) => f.fileName)
      .filter((spec) => spec.startsWith('.'))
      .map((spec) => {
        const base = path.resolve(path.dirname(file), spec);
        const hit = [`${base}.ts`, path.join(base, 'index.ts')].find((p) => fs.existsSync(p));
        if (!hit) throw new Error(`${path.relative(LIB, file)} imports ${spec}, which is no lib/ file`);
        return path.relative(LIB, hit);
      });
    graph.set(path.relative(LIB, file), [...new Set(targets)]);
  }
  return graph;
}

/** Every cycle's nodes in import order (one cycle per strongly connected component), found by Tarjan's algorithm. */
function findCycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component = new Set<string>();
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.add(w);
    } while (w !== v);
    if (component.size > 1 || (graph.get(v) ?? []).includes(v)) cycles.push(cycleWithin(graph, component, v));
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return cycles;
}

/** One cycle through `start` inside a strongly connected component (breadth-first: the shortest). */
function cycleWithin(graph: ReadonlyMap<string, readonly string[]>, component: ReadonlySet<string>, start: string): string[] {
  const from = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!component.has(w)) continue;
      if (w === start) {
        const cycle = [v];
        while (cycle[0] !== start) cycle.unshift(from.get(cycle[0])!);
        return cycle;
      }
      if (!from.has(w)) {
        from.set(w, v);
        queue.push(w);
      }
    }
  }
  throw new Error(`internal: ${start} is on no cycle`);
}

/** The layers of lib/, lowest first: a folder may import folders of lower layers only. */
const LAYERS: Record<string, number> = {
  format: 0,
  // The library's option check (validate-options.ts): imports none of the layers (only errors.ts at lib/'s top),
  // so every front door above it can check its options: engine/, hub/, fixtures/ and the analyses.
  api: 1,
  model: 2,
  fixtures: 2,
  engine: 3,
  hub: 3,
  interpolation: 4,
  recipes: 4,
  analysis: 4,
  commands: 5,
};

const show = (cycle: string[]) => [...cycle, cycle[0]].join(' → ');

describe('the import graph of lib/', () => {
  const graph = importGraph();

  test('the cycle finder finds and names a cycle (and a self-import), and passes a graph without one', () => {
    const g = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts', 'd.ts']],
      ['c.ts', ['a.ts']],
      ['d.ts', []],
      ['e.ts', ['e.ts']],
    ]);
    expect(findCycles(g).map(show).sort()).toEqual(['a.ts → b.ts → c.ts → a.ts', 'e.ts → e.ts']);
    expect(
      findCycles(
        new Map([
          ['a.ts', ['b.ts']],
          ['b.ts', []],
        ]),
      ),
    ).toEqual([]);
  });

  test('reads every file under lib/ and its imports (a sanity floor: the graph is not empty)', () => {
    expect(graph.size).toBeGreaterThan(50);
    expect(graph.get('index.ts')).toContain('errors.ts');
  });

  test('has no import cycle, type-only imports included', () => {
    expect(findCycles(graph).map(show)).toEqual([]);
  });

  test('format/ imports nothing from another lib/ folder (errors.ts at the top is shared by every layer)', () => {
    const upward = [...graph]
      .filter(([file]) => file.startsWith('format/'))
      .flatMap(([file, targets]) => targets.filter((t) => !t.startsWith('format/') && t !== 'errors.ts').map((t) => `${file} → ${t}`));
    expect(upward).toEqual([]);
  });

  test("every folder imports only folders of lower layers (files at lib/'s top are outside the layers)", () => {
    const folderOf = (file: string) => (file.includes('/') ? file.slice(0, file.indexOf('/')) : null);
    const folders = new Set([...graph.keys()].map(folderOf).filter((f) => f !== null));
    expect([...folders].sort()).toEqual(Object.keys(LAYERS).sort());
    const upward = [...graph].flatMap(([file, targets]) => {
      const from = folderOf(file);
      return targets
        .filter((t) => {
          const to = folderOf(t);
          return from !== null && to !== null && to !== from && LAYERS[to] >= LAYERS[from];
        })
        .map((t) => `${file} → ${t}`);
    });
    expect(upward).toEqual([]);
  });
});
