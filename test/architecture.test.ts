import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { describe, it } from 'node:test';
import { packageRoot } from '../src/backends/package-root.js';

/**
 * The layers of `src/`, lowest first. A module may import its own layer and the layers below it, never one above:
 * the dependency points one way, so each layer can be read, tested and replaced knowing only what is beneath it.
 * Folders that share a layer may import each other as long as no two folders end up importing each other (the
 * folder-cycle test below). The README's Layout section is the same map in words.
 *
 * A new top-level folder under `src/` fails this test until it is given a layer here.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['errors'], // RingKernelError and its codes
  ['wire'], // binary contracts shared with C: frames, rings, control block, messages, layouts
  ['kernel'], // the kernel model: definition, device specs, priority, latency histogram, state codec, lifecycle
  ['telemetry'], // span records, telemetry rings, the exporter
  ['executor'], // the host ↔ executor protocol and the executor shell every backend implements
  ['backends', 'worker', 'bridge'], // devices' drivers and executors (worker: the CPU's), transfer strategies
  ['devices', 'operations', 'supervision', 'cluster'], // placement and migration, health and metrics, supervisors, nodes of a NATS cluster
  ['runtime'], // the runtime, its builder and kernel handles
  ['actors'], // XState integration: fromKernel
  ['index.ts', 'cuda.ts', 'webgpu.ts', 'cluster.ts', 'internal.ts'], // the package's entries
];

/**
 * The one import allowed to point up: the supervisor's public methods (`launch`, `children`) hand the user the
 * runtime's `KernelHandle<In, Out>`, typed by the kernel's messages, which no port declared below the runtime can
 * carry. It is type-only — erased, so the supervisor never loads the runtime — and everything the supervisor does
 * goes through ports (`SupervisorHost`, the handle's supervision methods, `relaunch`).
 */
const ALLOWED_UPWARD = { importer: 'supervision/supervisor.ts', targetPart: 'runtime', typeOnly: true } as const;

/**
 * The most lines a file of `src/` may have. Past it a file has more than one job you can say in a line (the
 * handle's hot paths and its cold ones, a facade and its parts): split it along the seams its callers use.
 */
const MAX_FILE_LINES = 800;

/** Lines as an editor numbers them: a final newline ends the last line, it does not start another. */
function lineCount(text: string): number {
  if (text.length === 0) return 0;
  const newlines = text.split('\n').length - 1;
  return text.endsWith('\n') ? newlines : newlines + 1;
}

/** One import of one module: the specifier as written, and whether the compiler erases it. */
interface ImportRef {
  readonly specifier: string;
  readonly typeOnly: boolean;
}

/**
 * The imports of a TypeScript module: static `import` / `export … from` (multi-line included), `import(…)` with a
 * literal, and worker entries (`new URL('./x.js', import.meta.url)`). Comments are skipped. `import type` and
 * `export type` are type-only (erased, so they do not load the module); `import { type A }` is not — under
 * `verbatimModuleSyntax` it still loads the module.
 */
function parseImports(source: string): ImportRef[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const refs: ImportRef[] = [];
  const statement = /^\s*(?:import|export)\s+(type\s+)?(?:[\w$*{}\s,]+?\s+from\s+)?['"]([^'"]+)['"]/gm;
  for (const match of code.matchAll(statement)) {
    refs.push({ specifier: match[2] ?? '', typeOnly: match[1] !== undefined });
  }
  for (const match of code.matchAll(/(?<![\w$.])import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
    refs.push({ specifier: match[1] ?? '', typeOnly: false });
  }
  for (const match of code.matchAll(/new URL\(\s*['"](\.{1,2}\/[^'"]+\.js)['"]\s*,\s*import\.meta\.url\s*\)/g)) {
    refs.push({ specifier: match[1] ?? '', typeOnly: false });
  }
  return refs;
}

/** A module of `src/` and what it imports from inside the package, as paths relative to `src/`. */
interface SourceModule {
  readonly path: string;
  readonly imports: readonly { readonly target: string; readonly typeOnly: boolean }[];
}

const root = packageRoot();
const srcRoot = join(root, 'src');

function listSources(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return listSources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

const toPosix = (path: string) => path.split(sep).join('/');

const modules: SourceModule[] = listSources(srcRoot).map((file) => {
  const imports = parseImports(readFileSync(file, 'utf8'))
    .filter((ref) => ref.specifier.startsWith('.'))
    .map((ref) => {
      const resolved = normalize(join(dirname(file), ref.specifier)).replace(/\.js$/, '.ts');
      return { target: toPosix(relative(srcRoot, resolved)), typeOnly: ref.typeOnly };
    });
  return { path: toPosix(relative(srcRoot, file)), imports };
});

/** The part of `src/` a module belongs to: its top-level folder, or its own name for a file at the root. */
const partOf = (path: string) => path.split('/')[0] ?? path;

function layerOf(path: string): number {
  return LAYERS.findIndex((layer) => layer.includes(partOf(path)));
}

/** Edges between parts that load a module (type-only imports are erased and load nothing). */
function valueEdges(): { from: string; to: string; importer: string; target: string }[] {
  return modules.flatMap((module) =>
    module.imports
      .filter((ref) => !ref.typeOnly)
      .map((ref) => ({ from: partOf(module.path), to: partOf(ref.target), importer: module.path, target: ref.target })),
  );
}

describe('architecture: the layers of src/', () => {
  it('reads imports the way the compiler does (the parser itself)', () => {
    const source = [
      "import { a } from './a.js';",
      "import type { B } from '../b.js';",
      'import {',
      '  c,',
      '  type D,',
      "} from './c.js';",
      "export { e } from './e.js';",
      "export type { F } from './f.js';",
      "export * from './g.js';",
      "import './side-effect.js';",
      "// import { commented } from './commented.js';",
      "/* import { blocked } from './blocked.js'; */",
      "const lazy = await import('./lazy.js');",
      "const entry = new URL('../worker/entry.js', import.meta.url);",
      "import { koffi } from 'koffi';",
    ].join('\n');
    assert.deepEqual(parseImports(source), [
      { specifier: './a.js', typeOnly: false },
      { specifier: '../b.js', typeOnly: true },
      { specifier: './c.js', typeOnly: false },
      { specifier: './e.js', typeOnly: false },
      { specifier: './f.js', typeOnly: true },
      { specifier: './g.js', typeOnly: false },
      { specifier: './side-effect.js', typeOnly: false },
      { specifier: 'koffi', typeOnly: false },
      { specifier: './lazy.js', typeOnly: false },
      { specifier: '../worker/entry.js', typeOnly: false },
    ]);
  });

  it('finds the modules of src/ and their imports', () => {
    const runtime = modules.find((module) => module.path === 'runtime/runtime.ts');
    assert.ok(runtime, 'src/runtime/runtime.ts is read');
    assert.ok(runtime.imports.length > 10, `runtime.ts imports ${runtime.imports.length} modules`);
    const known = new Set(modules.map((module) => module.path));
    const dangling = modules.flatMap((module) =>
      module.imports.filter((ref) => !known.has(ref.target)).map((ref) => `${module.path} → ${ref.target}`),
    );
    assert.deepEqual(dangling, [], 'every relative import names a module of src/');
  });

  it('gives every part of src/ a layer', () => {
    const parts = [...new Set(modules.map((module) => partOf(module.path)))].sort();
    const unplaced = parts.filter((part) => layerOf(part) === -1);
    assert.deepEqual(unplaced, [], 'add each new folder of src/ to LAYERS in test/architecture.test.ts');
  });

  it('never imports a higher layer, not even a type (one named exception)', () => {
    const allowed = (module: SourceModule, ref: { target: string; typeOnly: boolean }) =>
      module.path === ALLOWED_UPWARD.importer && partOf(ref.target) === ALLOWED_UPWARD.targetPart && ref.typeOnly;
    const upward = modules.flatMap((module) =>
      module.imports
        .filter((ref) => layerOf(ref.target) > layerOf(module.path) && !allowed(module, ref))
        .map((ref) => `${module.path} → ${ref.target}${ref.typeOnly ? ' (type)' : ''}`),
    );
    assert.deepEqual(upward, [], 'a lower layer imports a higher one; declare the port it needs in its own file');
    // The exception is still needed: when it is not, remove it.
    const supervisor = modules.find((module) => module.path === ALLOWED_UPWARD.importer);
    assert.ok(supervisor?.imports.some((ref) => allowed(supervisor, ref)));
  });

  it('has no cycle between folders', () => {
    const graph = new Map<string, Set<string>>();
    for (const edge of valueEdges()) {
      if (edge.from === edge.to) continue;
      const targets = graph.get(edge.from) ?? new Set<string>();
      targets.add(edge.to);
      graph.set(edge.from, targets);
    }
    const cycles: string[] = [];
    const done = new Set<string>();
    const visit = (part: string, path: readonly string[]): void => {
      const seen = path.indexOf(part);
      if (seen !== -1) {
        cycles.push([...path.slice(seen), part].join(' → '));
        return;
      }
      if (done.has(part)) return;
      for (const next of graph.get(part) ?? []) visit(next, [...path, part]);
      done.add(part);
    };
    for (const part of graph.keys()) visit(part, []);
    assert.deepEqual(cycles, []);
  });

  it('has no cycle between files that load each other', () => {
    const graph = new Map(
      modules.map((module) => [module.path, module.imports.filter((ref) => !ref.typeOnly).map((ref) => ref.target)]),
    );
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (path: string, trail: string[]): void => {
      if (state.get(path) === 'done') return;
      if (state.get(path) === 'open') {
        cycles.push([...trail.slice(trail.indexOf(path)), path].join(' → '));
        return;
      }
      state.set(path, 'open');
      for (const next of graph.get(path) ?? []) visit(next, [...trail, path]);
      state.set(path, 'done');
    };
    for (const path of graph.keys()) visit(path, []);
    assert.deepEqual(cycles, []);
  });

  it(`keeps every file of src/ within ${MAX_FILE_LINES} lines`, () => {
    const long = listSources(srcRoot)
      .map((file) => ({ path: toPosix(relative(srcRoot, file)), lines: lineCount(readFileSync(file, 'utf8')) }))
      .filter((file) => file.lines > MAX_FILE_LINES)
      .map((file) => `src/${file.path}: ${file.lines} lines`);
    assert.deepEqual(long, [], 'a file this long has more than one job: split it along the seams its callers use');
  });

  it('never imports tests, benchmarks, examples or scripts from src/', () => {
    const outside = modules.flatMap((module) =>
      module.imports.filter((ref) => ref.target.startsWith('..')).map((ref) => `${module.path} → ${ref.target}`),
    );
    assert.deepEqual(outside, []);
  });
});
