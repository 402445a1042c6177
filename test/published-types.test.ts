/**
 * The published build (tsconfig.build.json): the library alone, its declarations without `@internal` members,
 * and those declarations type-check on their own — what a user's compiler sees.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { packageRoot } from '../src/internal.js';

const root = packageRoot();
const tsc = join(root, 'node_modules', '.bin', 'tsc');
const out = mkdtempSync(join(tmpdir(), 'ringkernel-published-'));

function run(args: string[]): { status: number | null; output: string } {
  const result = spawnSync(tsc, args, { cwd: root, encoding: 'utf8', timeout: 120_000 });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('the published build', () => {
  after(() => rmSync(out, { recursive: true, force: true }));

  it('emits the library alone, its declarations stripped of @internal members, and they type-check alone', () => {
    const build = run(['-p', 'tsconfig.build.json', '--outDir', out]);
    assert.equal(build.status, 0, build.output);
    assert.ok(existsSync(join(out, 'src', 'index.d.ts')));
    assert.ok(existsSync(join(out, 'src', 'internal.d.ts')));
    assert.equal(existsSync(join(out, 'test')), false, 'no tests in the published build');
    assert.equal(existsSync(join(out, 'bench')), false, 'no benchmarks in the published build');

    // The handle's supervision and migration controls are internal: not in what users compile against.
    const handle = readFileSync(join(out, 'src', 'runtime', 'kernel-handle.d.ts'), 'utf8');
    assert.match(handle, /\bsend\(/);
    for (const internal of ['restart(', 'abandon(', 'prepareMove(', 'completeMove(', 'admit(', 'superviseWith(']) {
      assert.equal(handle.includes(internal), false, `KernelHandle.${internal}…) is @internal`);
    }

    // What is left must be whole: no declaration names a type that stripping removed. The declarations resolve
    // their dependencies and module format as an installed package's would.
    symlinkSync(join(root, 'node_modules'), join(out, 'node_modules'), 'dir');
    writeFileSync(join(out, 'package.json'), JSON.stringify({ name: 'ringkernel', type: 'module' }));
    writeFileSync(
      join(out, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2022',
          lib: ['es2024', 'esnext.disposable'],
          module: 'nodenext',
          moduleResolution: 'nodenext',
          types: ['node'],
          typeRoots: [join(root, 'node_modules', '@types')],
          strict: true,
          noEmit: true,
          skipLibCheck: false,
        },
        include: ['src/**/*.d.ts'],
      }),
    );
    const check = run(['-p', join(out, 'tsconfig.json')]);
    assert.equal(check.status, 0, check.output);
  });
});
