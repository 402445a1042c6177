import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebGpuBatchEngine } from '../src/backends/webgpu/batch-engine.js';
import { buildWgslProgram } from '../src/backends/webgpu/wgsl-program.js';
import { renderWgslStruct, wgslStructOf } from '../src/backends/webgpu/wgsl-structs.js';
import { WgslSchemaError } from '../src/errors/webgpu-errors.js';
import { FrameConsumer } from '../src/wire/frame-consumer.js';
import { FrameProducer } from '../src/wire/frame-producer.js';
import { createFrameRing } from '../src/wire/frame-ring.js';
import { defineMessage, field } from '../src/wire/message-schema.js';
import { Random, TEST_SEED } from './support/random.js';
import { openTestDevice, webgpuMissing } from './support/webgpu.js';

const Sample = defineMessage('wgsl.Sample', {
  id: 'u32',
  delta: 'i32',
  gain: 'f32',
  stamp: 'u64',
  offset: 'i64',
  window: field.array('f32', 4),
  ids: field.array('u64', 2),
  digest: field.bytes(8),
  label: field.string(12),
  tag: field.array('u8', 4),
  shorts: field.array('i16', 2),
});

describe('WGSL structs from message schemas', () => {
  it('lays every expressible field out at the schema offset, by WGSL rules', () => {
    const struct = wgslStructOf(Sample);
    assert.equal(struct.size, Sample.size);
    const byName = new Map(struct.members.map((m) => [m.name, m]));
    for (const f of Sample.fields) {
      const member = byName.get(f.name);
      assert.ok(member, f.name);
      const textOffset = typeof f.type === 'object' && f.type.kind === 'string' ? f.offset + 4 : f.offset;
      assert.equal(member.offset, textOffset, f.name);
    }
    assert.equal(byName.get('label_len')?.offset, Sample.fields.find((f) => f.name === 'label')?.offset);
    assert.equal(byName.get('stamp')?.type, 'vec2<u32>');
    assert.equal(byName.get('ids')?.type, 'array<vec2<u32>, 2>');
    assert.equal(byName.get('digest')?.type, 'array<u32, 2>');
    const text = renderWgslStruct(Sample);
    assert.match(text, /struct rk_msg_wgsl_Sample \{/);
    assert.match(text, new RegExp(`const RK_MSG_WGSL_SAMPLE_TYPE_ID: u32 = ${Sample.typeId}u;`));
  });

  const refusals: [string, Record<string, Parameters<typeof defineMessage>[1][string]>, string, RegExp][] = [
    ['f64', { a: 'u32', value: 'f64' }, 'value', /no 64-bit floats/],
    ['u8 scalar', { flag: 'u8', a: 'u32' }, 'flag', /no 8- or 16-bit types/],
    ['bool', { a: 'u32', ok: 'bool' }, 'ok', /host-shareable bool/],
    ['odd bytes', { a: 'u32', digest: field.bytes(6) }, 'digest', /6 bytes, not a whole number of 32-bit words/],
    ['f64 array', { a: field.array('f64', 2) }, 'a', /no 64-bit floats/],
    ['odd string', { label: field.string(5) }, 'label', /5 bytes/],
    ['reserved name', { type: 'u32' }, 'type', /reserved word/],
    ['keyword', { loop: 'u32' }, 'loop', /keyword/],
    ['length collision', { name: field.string(8), name_len: 'u32' }, 'name', /collides/],
  ];
  for (const [what, fields, fieldName, reason] of refusals) {
    it(`refuses a schema WGSL cannot express (${what}), naming the field and why`, () => {
      const schema = defineMessage(`wgsl.Refused_${what.replace(/\W/g, '_')}`, fields);
      assert.throws(
        () => renderWgslStruct(schema),
        (error: unknown) => {
          assert.ok(error instanceof WgslSchemaError);
          assert.equal(error.code, 'RK_WGSL_SCHEMA_UNSUPPORTED');
          assert.equal(error.field, fieldName);
          assert.match(error.message, new RegExp(`${schema.name}\\.${fieldName}`));
          assert.match(error.message, reason);
          return true;
        },
      );
    });
  }
});

describe('WGSL structs on a real adapter', () => {
  let device: GPUDevice | undefined;
  let skip: string | undefined;
  before(async () => {
    skip = await webgpuMissing();
    if (skip === undefined) device = await openTestDevice();
  });
  after(() => device?.destroy());

  it('reads the host-encoded message as the struct and writes it back byte for byte (seeded values)', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const input = createFrameRing({ capacityBytes: 64 * 1024, maxPayloadSize: Sample.size });
    const output = createFrameRing({ capacityBytes: 64 * 1024, maxPayloadSize: 512 });
    // The handler doubles `gain` and adds one to `delta`: proof the fields are read as what they are.
    const source = `fn twice(i: u32) -> u32 {
  var s = rk_read_rk_msg_wgsl_Sample(i);
  s.gain = s.gain * 2.0;
  s.delta = s.delta + 1;
  rk_emit_rk_msg_wgsl_Sample(i, s);
  return RK_E_NONE;
}`;
    const engine = await WebGpuBatchEngine.create({
      device: device as GPUDevice,
      program: buildWgslProgram({
        kernelId: 'wgsl-sample',
        source,
        entry: 'twice',
        workgroupSize: 32,
        stateBytes: 0,
        schemas: [Sample],
      }),
      input,
      output,
      outputBytes: Sample.size,
    });
    engine.start();
    const producer = new FrameProducer(input);
    const consumer = new FrameConsumer(output);
    const random = new Random(TEST_SEED ^ 0x5a);
    const sent: ReturnType<typeof Sample.decode>[] = [];
    for (let i = 0; i < 200; i++) {
      const value = {
        id: random.u32(),
        delta: random.int(-1_000_000, 1_000_000),
        gain: Math.fround(random.next() * 100),
        stamp: (BigInt(random.u32()) << 32n) | BigInt(random.u32()),
        offset: -((BigInt(random.u32()) << 20n) | 7n),
        window: [1, 2, 3, 4].map(() => Math.fround(random.next())),
        ids: [BigInt(random.u32()) << 31n, BigInt(random.u32())],
        digest: random.fill(new Uint8Array(8)),
        label: `L${random.u32()}`,
        tag: [random.int(0, 255), random.int(0, 255), random.int(0, 255), random.int(0, 255)],
        shorts: [random.int(-32768, 32767), random.int(-32768, 32767)],
      };
      assert.ok(producer.tryWrite(Sample, value));
      sent.push(Sample.decode(Sample.encode(value)));
    }
    const received: ReturnType<typeof Sample.decode>[] = [];
    const deadline = Date.now() + 60_000;
    while (received.length < sent.length && Date.now() < deadline) {
      consumer.drain((frame) => {
        received.push(frame.decode(Sample).toObject());
      });
      await new Promise((resolve) => setImmediate(resolve));
    }
    await engine.stop('drain');
    assert.equal(received.length, sent.length);
    received.forEach((got, i) => {
      const want = sent[i] as ReturnType<typeof Sample.decode>;
      assert.deepEqual(got, { ...want, gain: Math.fround(want.gain * 2), delta: want.delta + 1 }, `message ${i}`);
    });
  });
});
