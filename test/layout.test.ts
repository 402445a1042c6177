import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  CONTROL_BLOCK_LAYOUT,
  ControlBlockOffset,
  defineMessage,
  defineStructLayout,
  ErrorNumber,
  FRAME_HEADER_LAYOUT,
  FrameHeader,
  field,
  LAYOUT_HEADER_PATH,
  NATIVE_LAYOUTS,
  RING_SIGNAL_LAYOUT,
  renderLayoutHeader,
  renderMessagesHeader,
} from '../src/internal.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const include = join(root, 'native/include');
const work = mkdtempSync(join(tmpdir(), 'rk-layout-'));
after(() => rmSync(work, { recursive: true, force: true }));

const CFLAGS = ['-std=c11', '-Wall', '-Wextra', '-Werror', '-pedantic'];

function compileAndRun(source: string, extraInclude = include): string {
  const file = join(work, `check-${Math.random().toString(36).slice(2)}.c`);
  writeFileSync(file, source);
  execFileSync('cc', [...CFLAGS, '-I', extraInclude, file, '-o', `${file}.out`], { stdio: 'pipe' });
  return execFileSync(`${file}.out`, { encoding: 'utf8' });
}

describe('layout tables', () => {
  it('name every byte of every native layout exactly once, with one writer each', () => {
    for (const layout of NATIVE_LAYOUTS) {
      let covered = 0;
      for (const f of layout.fields) {
        assert.ok(f.writer.length > 0, `${layout.cName}.${f.name} has a writer`);
        covered += f.count * { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8 }[f.kind];
      }
      assert.equal(covered, layout.size, layout.cName);
    }
  });

  it('keep the named offsets and the tables in step', () => {
    const byName = (layout: typeof FRAME_HEADER_LAYOUT, name: string) => layout.fields.find((f) => f.name === name);
    assert.equal(byName(FRAME_HEADER_LAYOUT, 'message_id')?.offset, FrameHeader.MESSAGE_ID);
    assert.equal(byName(FRAME_HEADER_LAYOUT, 'trace_id')?.offset, FrameHeader.TRACE_ID);
    assert.equal(byName(CONTROL_BLOCK_LAYOUT, 'heartbeat_us')?.offset, ControlBlockOffset.HEARTBEAT_US);
    assert.equal(FRAME_HEADER_LAYOUT.size % 8, 0, 'payload starts 8-aligned');
    assert.equal(CONTROL_BLOCK_LAYOUT.size, 128);
    assert.equal(RING_SIGNAL_LAYOUT.fields.find((f) => f.name === 'space_seq')?.offset, 64, 'own cache line');
  });

  it('reject misaligned, overlapping, gapped and oversized tables', () => {
    assert.throws(() => defineStructLayout('rk_x', '', 8, [['a', 'u64', 4, 'host', '']]), /not aligned/);
    assert.throws(
      () =>
        defineStructLayout('rk_x', '', 8, [
          ['a', 'u32', 0, 'host', ''],
          ['b', 'u32', 2, 'host', ''],
        ]),
      /not aligned/,
    );
    assert.throws(
      () =>
        defineStructLayout('rk_x', '', 12, [
          ['a', 'u32', 0, 'host', ''],
          ['b', 'u32', 8, 'host', ''],
        ]),
      /gap or overlap/,
    );
    assert.throws(() => defineStructLayout('rk_x', '', 8, [['a', 'u32', 0, 'host', '']]), /fields end at 4/);
    assert.throws(
      () =>
        defineStructLayout('rk_x', '', 12, [
          ['a', 'u64', 0, 'host', ''],
          ['b', 'u32', 8, 'host', ''],
        ]),
      /not a multiple of its alignment 8/,
    );
    assert.equal(defineStructLayout('rk_x', '', 6, [['a', 'u16', 0, 'host', '', { count: 3 }]]).align, 2);
    assert.throws(
      () =>
        defineStructLayout('rk_x', '', 8, [
          ['a', 'u32', 0, 'host', ''],
          ['a', 'u32', 4, 'host', ''],
        ]),
      /defined twice/,
    );
  });
});

describe('generated C header', () => {
  it(`${LAYOUT_HEADER_PATH} is not stale (run npm run gen:native after changing a layout)`, () => {
    const onDisk = readFileSync(join(root, LAYOUT_HEADER_PATH), 'utf8');
    assert.equal(onDisk, renderLayoutHeader());
  });

  it('compiles with the system C compiler, static asserts included (native/test/layout_check.c)', () => {
    const out = execFileSync(
      'cc',
      [...CFLAGS, '-I', include, join(root, 'native/test/layout_check.c'), '-o', join(work, 'layout_check')],
      {
        encoding: 'utf8',
        stdio: 'pipe',
      },
    );
    assert.equal(out, '');
    assert.match(execFileSync(join(work, 'layout_check'), { encoding: 'utf8' }), /^layout ok/);
  });

  it('agrees with TypeScript on every offset, size and alignment, as the C compiler lays them out', () => {
    const lines: string[] = [];
    for (const layout of NATIVE_LAYOUTS) {
      lines.push(`printf("%s %zu %zu\\n", "${layout.cName}", sizeof(${layout.cName}), _Alignof(${layout.cName}));`);
      for (const f of layout.fields) {
        lines.push(`printf("%s.%s %zu\\n", "${layout.cName}", "${f.name}", offsetof(${layout.cName}, ${f.name}));`);
      }
    }
    const out = compileAndRun(
      `#include <stdio.h>\n#include "ringkernel_layout.h"\nint main(void) {\n${lines.join('\n')}\nreturn 0;\n}\n`,
    );
    const expected: string[] = [];
    for (const layout of NATIVE_LAYOUTS) {
      expected.push(`${layout.cName} ${layout.size} ${layout.align}`);
      for (const f of layout.fields) expected.push(`${layout.cName}.${f.name} ${f.offset}`);
    }
    assert.deepEqual(out.trim().split('\n'), expected);
  });

  it('fails to compile when an offset in the header is wrong (the static asserts bite)', () => {
    const broken = renderLayoutHeader().replace(
      'RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, message_id) == 16',
      'RK_STATIC_ASSERT(RK_OFFSETOF(rk_frame_header, message_id) == 20',
    );
    assert.notEqual(broken, renderLayoutHeader());
    const dir = mkdtempSync(join(work, 'broken-'));
    writeFileSync(join(dir, 'ringkernel_layout.h'), broken);
    writeFileSync(join(dir, 'x.c'), '#include "ringkernel_layout.h"\nint main(void) { return 0; }\n');
    const result = spawnSync('cc', [...CFLAGS, '-I', dir, join(dir, 'x.c'), '-o', join(dir, 'x')], {
      encoding: 'utf8',
    });
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /rk_frame_header\.message_id: offset/);
  });

  it('carries the error numbers shared with TypeScript', () => {
    const names = Object.keys(ErrorNumber) as (keyof typeof ErrorNumber)[];
    const prints = names.map(
      (n) => `printf("%u\\n", (unsigned)RK_E_${n.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()});`,
    );
    const out = compileAndRun(
      `#include <stdio.h>\n#include "ringkernel_layout.h"\nint main(void) {\n${prints.join('\n')}\nreturn 0;\n}\n`,
    );
    assert.deepEqual(
      out.trim().split('\n').map(Number),
      names.map((n) => ErrorNumber[n]),
    );
  });

  it('compiles as CUDA C++ with nvcc when it is installed', (t) => {
    const nvcc = spawnSync('nvcc', ['--version'], { encoding: 'utf8' });
    if (nvcc.status !== 0) {
      t.skip('skipped: nvcc not installed');
      return;
    }
    const file = join(work, 'layout.cu');
    writeFileSync(
      file,
      '#include "ringkernel_layout.h"\n__global__ void k(rk_control_block* cb) { cb->heartbeat_us = 1; }\n',
    );
    execFileSync('nvcc', ['-std=c++17', '-I', include, '--ptx', file, '-o', join(work, 'layout.ptx')], {
      stdio: 'pipe',
    });
    assert.match(readFileSync(join(work, 'layout.ptx'), 'utf8'), /\.entry/);
    // For the CUDA template's architecture, warnings as errors.
    execFileSync(
      'nvcc',
      [
        '-std=c++17',
        '-arch=sm_90',
        '-Werror',
        'all-warnings',
        '-I',
        include,
        '--ptx',
        file,
        '-o',
        join(work, 'l90.ptx'),
      ],
      { stdio: 'pipe' },
    );
    assert.match(readFileSync(join(work, 'l90.ptx'), 'utf8'), /^\.target sm_90$/m);
    // And nvcc, like cc, refuses a header whose offsets are wrong.
    const dir = mkdtempSync(join(work, 'broken-nvcc-'));
    writeFileSync(
      join(dir, 'ringkernel_layout.h'),
      renderLayoutHeader().replace(
        'RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, heartbeat_us) == 48',
        'RK_STATIC_ASSERT(RK_OFFSETOF(rk_control_block, heartbeat_us) == 40',
      ),
    );
    const broken = spawnSync('nvcc', ['-std=c++17', '-I', dir, '--ptx', file, '-o', join(dir, 'x.ptx')], {
      encoding: 'utf8',
    });
    assert.notEqual(broken.status, 0);
    assert.match(`${broken.stdout}${broken.stderr}`, /rk_control_block\.heartbeat_us: offset/);
  });
});

describe('message structs in C', () => {
  it('match the TypeScript layout of every field kind (natural alignment)', () => {
    const Mixed = defineMessage('layout.Mixed', {
      flag: 'bool',
      big: 'u64',
      small: 'i8',
      wide: 'f64',
      half: 'u16',
      single: 'f32',
      values: field.array('i16', 3),
      digest: field.bytes(5),
      label: field.string(7),
      tail: 'u8',
    });
    writeFileSync(join(work, 'messages.h'), renderMessagesHeader('TEST_MESSAGES_H', [Mixed]));
    const prints = Mixed.fields.map((f) => {
      const member = typeof f.type === 'object' && f.type.kind === 'string' ? `${f.name}_len` : f.name;
      return `printf("%zu\\n", offsetof(${Mixed.cName}, ${member}));`;
    });
    const out = compileAndRun(
      `#include <stdio.h>\n#include "${join(work, 'messages.h')}"\nint main(void) {\nprintf("%zu %zu\\n", sizeof(${Mixed.cName}), _Alignof(${Mixed.cName}));\n${prints.join('\n')}\nreturn 0;\n}\n`,
    );
    const [sizeLine, ...offsets] = out.trim().split('\n');
    assert.equal(sizeLine, `${Mixed.size} ${Mixed.align}`);
    assert.deepEqual(
      offsets.map(Number),
      Mixed.fields.map((f) => f.offset),
    );
    assert.equal(Mixed.fields.find((f) => f.name === 'big')?.offset, 8, 'u64 after a bool is padded to 8');
  });
});
