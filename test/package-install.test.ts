import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { installPackedApp, type PackedApp, REPO_ROOT } from './support/packed-app.js';

// A kernel module and a main module, in plain JavaScript, the way an app writes them.
const KERNEL_MODULE = `import { defineKernel, defineMessage } from 'ringkernel';
export const Num = defineMessage('app.Num', { value: 'f64' });
export const Doubler = defineKernel({ id: 'app.doubler', input: Num, output: Num, cpu: (n) => ({ value: n.value * 2 }) });
`;
const MAIN_MODULE = `import { RingKernelRuntime } from 'ringkernel';
import { Doubler } from './kernels/doubler.js';
const runtime = await RingKernelRuntime.builder().backend('cpu').build();
const doubler = await runtime.launch(Doubler, 1, 1, { autoActivate: true, transferStrategy: process.argv[2] });
const answer = await doubler.call({ value: 21 });
const transfer = doubler.metrics().transferStrategy;
const report = await runtime.shutdown();
console.log(JSON.stringify({ value: answer.value, transfer, terminated: report.terminated, failed: report.failed }));
`;
// The same, typed: what a TypeScript app compiles against the package's declarations.
const TYPED_MAIN = `import { RingKernelRuntime } from 'ringkernel';
import { Doubler } from './doubler.js';
const runtime = await RingKernelRuntime.builder().backend('cpu').build();
const doubler = await runtime.launch(Doubler, 1, 1);
const doubled: number = (await doubler.call({ value: 1 })).value;
// @ts-expect-error: the input message has no field 'celsius'
await doubler.call({ celsius: 1 });
export { doubled };
`;

describe('the packed package, installed into a fresh app', () => {
  let app: PackedApp;
  const run = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, args, {
      cwd: app.dir,
      encoding: 'utf8',
      env: { ...process.env, ...env },
      timeout: 60_000,
    });

  before(() => {
    app = installPackedApp();
    mkdirSync(join(app.dir, 'kernels'));
    writeFileSync(join(app.dir, 'kernels', 'doubler.js'), KERNEL_MODULE);
    writeFileSync(join(app.dir, 'main.js'), MAIN_MODULE);
  });
  after(() => app?.remove());

  it('ships the built library and the native sources, not the tests or the TypeScript sources', () => {
    const files = new Set(app.packedFiles);
    for (const path of [
      'dist/src/index.js',
      'dist/src/index.d.ts',
      'native/src/mirror.c',
      'scripts/build-native.mjs',
    ]) {
      assert.ok(files.has(path), `${path} is in the tarball`);
    }
    const strays = app.packedFiles.filter((path) => /^(dist\/)?(test|bench|examples)\/|^src\/|\.map$/.test(path));
    assert.deepEqual(strays, []);
  });

  it('declares xstate, @opentelemetry/api and prom-client as peers, so the app has one copy of each', () => {
    const installed = JSON.parse(readFileSync(join(app.dir, 'node_modules/ringkernel/package.json'), 'utf8'));
    assert.equal(installed.private, undefined);
    const required = Object.keys(installed.peerDependencies).filter(
      (name) => installed.peerDependenciesMeta?.[name]?.optional !== true,
    );
    assert.deepEqual(required.sort(), ['@opentelemetry/api', 'prom-client', 'xstate']);
    for (const peer of required) {
      assert.equal(installed.dependencies[peer], undefined, `${peer} is not also a dependency`);
      assert.ok(existsSync(join(app.dir, 'node_modules', peer, 'package.json')), `${peer} installed beside it`);
      assert.ok(!existsSync(join(app.dir, 'node_modules/ringkernel/node_modules', peer)), `no second ${peer}`);
    }
  });

  it('builds the native mirror at install and runs a kernel from a kernel module of the app, over dma', () => {
    assert.match(app.installLog, /ringkernel: built .*libringkernel\.so/);
    const ran = run(['main.js', 'dma']);
    assert.equal(ran.status, 0, ran.stderr);
    assert.deepEqual(JSON.parse(ran.stdout), { value: 42, transfer: 'dma', terminated: 1, failed: 0 });
  });

  it('imports every subpath the package exports', () => {
    const installed = JSON.parse(readFileSync(join(app.dir, 'node_modules/ringkernel/package.json'), 'utf8'));
    const subpaths = Object.keys(installed.exports).filter((subpath) => subpath !== './package.json');
    assert.ok(subpaths.includes('.'));
    for (const subpath of subpaths) {
      const specifier = subpath === '.' ? 'ringkernel' : `ringkernel/${subpath.slice(2)}`;
      const ran = run([
        '--input-type=module',
        '-e',
        `const m = await import('${specifier}'); console.log(Object.keys(m).length)`,
      ]);
      assert.equal(ran.status, 0, `${specifier}: ${ran.stderr}`);
      assert.ok(Number(ran.stdout) > 0, `${specifier} exports something`);
    }
  });

  it('type-checks a TypeScript app against the installed declarations (nodenext resolution)', () => {
    // The kernel module as TypeScript (its JavaScript above is valid TypeScript): types inferred, none written.
    mkdirSync(join(app.dir, 'typed'));
    writeFileSync(join(app.dir, 'typed', 'doubler.ts'), KERNEL_MODULE);
    writeFileSync(join(app.dir, 'typed', 'main.ts'), TYPED_MAIN);
    const tsconfig = {
      compilerOptions: {
        target: 'es2022',
        module: 'nodenext',
        moduleResolution: 'nodenext',
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ['node'],
        typeRoots: [join(REPO_ROOT, 'node_modules/@types')],
      },
      files: ['typed/main.ts'],
    };
    writeFileSync(join(app.dir, 'tsconfig.json'), JSON.stringify(tsconfig));
    const tsc = join(REPO_ROOT, 'node_modules/.bin/tsc');
    const checked = spawnSync(tsc, ['-p', app.dir], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(checked.status, 0, `${checked.stdout}${checked.stderr}`);
  });

  it('without a C compiler, the install says what to do and dma falls back to direct, saying why', () => {
    const build = join(app.dir, 'node_modules/ringkernel/native/build');
    rmSync(build, { recursive: true, force: true });
    const rebuilt = execFileSync(process.execPath, ['node_modules/ringkernel/scripts/build-native.mjs'], {
      cwd: app.dir,
      encoding: 'utf8',
      env: { ...process.env, CC: '/nonexistent/cc' },
      timeout: 60_000,
    });
    assert.match(rebuilt, /native DMA mirror not built: \/nonexistent\/cc could not run .*dma strategy will fall back/);
    assert.match(rebuilt, /install a C compiler .* and run npx ringkernel-build-native/);
    assert.ok(!existsSync(join(build, 'libringkernel.so')));
    const ran = run(['main.js', 'dma']);
    assert.equal(ran.status, 0, ran.stderr);
    assert.deepEqual(JSON.parse(ran.stdout), { value: 42, transfer: 'direct', terminated: 1, failed: 0 });
    assert.match(
      ran.stderr,
      /native DMA mirror is unavailable.*libringkernel\.so does not exist.*npx ringkernel-build-native/,
    );
  });

  it("runs the README's quick start as written: plain JavaScript on Node 20, and TypeScript", () => {
    const blocks = readmeFiles();
    const kernel = blocks.get('js kernels/averager.js');
    const main = blocks.get('js main.js');
    const typedMain = blocks.get('ts main.ts');
    assert.ok(kernel !== undefined && main !== undefined && typedMain !== undefined, [...blocks.keys()].join(', '));
    const expected = 'mean 22 °C over 2 readings\n';
    // JavaScript, as written.
    const js = join(app.dir, 'readme-js');
    mkdirSync(join(js, 'kernels'), { recursive: true });
    writeFileSync(join(js, 'kernels', 'averager.js'), kernel);
    writeFileSync(join(js, 'main.js'), main);
    const ranJs = run([join(js, 'main.js')]);
    assert.equal(ranJs.status, 0, ranJs.stderr);
    assert.equal(ranJs.stdout, expected);
    // TypeScript: the same kernel module as a .ts file, the README's main.ts, compiled by tsc, then run.
    const ts = join(app.dir, 'readme-ts');
    mkdirSync(join(ts, 'kernels'), { recursive: true });
    writeFileSync(join(ts, 'kernels', 'averager.ts'), kernel);
    writeFileSync(join(ts, 'main.ts'), typedMain);
    const tsconfig = {
      compilerOptions: {
        target: 'es2022',
        lib: ['es2022', 'esnext.disposable'],
        module: 'nodenext',
        moduleResolution: 'nodenext',
        strict: true,
        skipLibCheck: true,
        outDir: 'out',
        types: ['node'],
        typeRoots: [join(REPO_ROOT, 'node_modules/@types')],
      },
      files: ['main.ts'],
    };
    writeFileSync(join(ts, 'tsconfig.json'), JSON.stringify(tsconfig));
    const compiled = spawnSync(join(REPO_ROOT, 'node_modules/.bin/tsc'), ['-p', ts], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(compiled.status, 0, `${compiled.stdout}${compiled.stderr}`);
    const ranTs = run([join(ts, 'out', 'main.js')]);
    assert.equal(ranTs.status, 0, ranTs.stderr);
    assert.equal(ranTs.stdout, expected);
  });
});

/** The README's code blocks that name a file (```js main.js), by their info string. */
function readmeFiles(): Map<string, string> {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const blocks = new Map<string, string>();
  for (const match of readme.matchAll(/^```((?:js|ts) \S+)\n([\s\S]*?)^```$/gm)) {
    blocks.set(match[1] as string, match[2] as string);
  }
  return blocks;
}
