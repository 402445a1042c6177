/** Kernels the benchmark launches; a module of its own so the runtime's workers can import it. */
import { defineKernel } from '../src/internal.js';
import { BenchMessages } from './messages.js';

const Sample64 = BenchMessages[64];

/** Takes 64-byte messages and does nothing with them but read one field. */
export const BenchSink = defineKernel({
  id: 'bench.sink',
  input: Sample64,
  output: Sample64,
  init: () => ({ checksum: 0 }),
  cpu: (sample, ctx) => {
    ctx.state.checksum += sample.seq;
    return undefined;
  },
});

/** Answers every 64-byte message with a 64-byte message. */
export const BenchEcho = defineKernel({
  id: 'bench.echo',
  input: Sample64,
  output: Sample64,
  cpu: (sample) => ({ seq: sample.seq, flags: 1, ts: sample.ts, data: sample.data }),
});

/** Answers once, then idles: for the 1000-idle-kernels case. */
export const BenchIdle = defineKernel({
  id: 'bench.idle',
  input: Sample64,
  output: Sample64,
  cpu: (sample) => sample.toObject(),
});

/** A pipeline stage: 64-byte messages in and out, one field changed. */
export const BenchStage = defineKernel({
  id: 'bench.stage',
  input: Sample64,
  output: Sample64,
  cpu: (sample) => ({ seq: sample.seq, flags: sample.flags + 1, ts: sample.ts, data: sample.data }),
});

/** Answers like BenchEcho, but throws on a message whose flags are 0xdead: for the restart benchmark. */
export const BenchFragile = defineKernel({
  id: 'bench.fragile',
  input: Sample64,
  output: Sample64,
  cpu: (sample) => {
    if (sample.flags === 0xdead) throw new Error('poison');
    return { seq: sample.seq, flags: 1, ts: sample.ts, data: sample.data };
  },
});

/** A sink carrying 1 MiB of state: what a migration must checkpoint and move (`migrate.pauseMs`). */
export const BenchHeavyState = defineKernel({
  id: 'bench.heavyState',
  input: Sample64,
  output: Sample64,
  init: () => ({ blob: new Uint8Array(1 << 20).fill(7), checksum: 0 }),
  cpu: (sample, ctx) => {
    ctx.state.checksum += sample.seq;
    return undefined;
  },
});
