import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type DeadLetter, KernelFailedError, RingKernelRuntime } from '../src/internal.js';
import { Accumulator, KILL_WORKER, Numbers } from './fixtures/kernels.js';
import { eventually } from './support/eventually.js';
import { Random, TEST_SEED } from './support/random.js';

const ROUNDS = 6;
const OPS = 3_000;
const KERNELS = 4;

describe('chaos: random traffic, throwing handlers, pauses and dying workers', () => {
  for (let round = 0; round < ROUNDS; round++) {
    const seed = (TEST_SEED + round * 7919) >>> 0;
    it(`accounts for every accepted message exactly once — an output or a dead letter (seed ${seed})`, async () => {
      const random = new Random(seed);
      const runtime = await RingKernelRuntime.builder().config({ workers: 2 }).build();
      const letters: DeadLetter[] = [];
      runtime.deadLetters.on('deadLetter', (letter) => letters.push(letter));
      try {
        const handles = await Promise.all(
          Array.from({ length: KERNELS }, (_, k) =>
            runtime.launch(Accumulator, 1, 1, { name: `chaos-${k}`, autoActivate: true }),
          ),
        );
        const accepted = handles.map(() => new Set<number>());
        const refused = handles.map(() => new Set<number>());
        // Odd rounds kill a worker mid-stream (a handler calls process.exit), at a random point.
        const killAt = round % 2 === 1 ? random.int(OPS / 4, (3 * OPS) / 4) : -1;
        let killed = false;
        for (let op = 0; op < OPS; op++) {
          const k = random.int(0, KERNELS - 1);
          const handle = handles[k] as (typeof handles)[number];
          const roll = random.next();
          try {
            if (roll < 0.01) {
              if (handle.status === 'Active') await handle.deactivate();
              else if (handle.status === 'Deactivated') await handle.activate();
              continue;
            }
            const value = op === killAt ? KILL_WORKER : roll < 0.08 ? -1 : random.int(0, 100);
            if (value === KILL_WORKER) killed = handle.status !== 'Failed';
            if (handle.trySend({ sender: k, seq: op, value })) accepted[k]?.add(op);
          } catch (error) {
            assert.ok(error instanceof KernelFailedError, `only a failed kernel refuses: ${String(error)}`);
            if (roll >= 0.01) refused[k]?.add(op); // a refused send, not a refused pause or resume
          }
          if (op % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
        }
        for (const handle of handles) {
          if (handle.status === 'Deactivated') await handle.activate().catch(() => {});
          if (handle.status !== 'Failed') await handle.terminate().catch(() => {});
        }
        // Every accepted message: exactly one output (handled) or one dead letter (threw, or never handled).
        const answered = handles.map((handle, k) => {
          const seqs = new Set<number>();
          for (let out = handle.tryReceive(); out !== undefined; out = handle.tryReceive()) {
            assert.equal(out.sender, k);
            assert.ok(!seqs.has(out.seq), `seq ${out.seq} answered twice`);
            seqs.add(out.seq);
          }
          return seqs;
        });
        // Dead letters travel on the control ports and may trail the outputs by a moment.
        await eventually(() => {
          for (const [k, handle] of handles.entries()) {
            const seen = new Map<number, string>([...(answered[k] as Set<number>)].map((seq) => [seq, 'output']));
            const gone = letters.filter((l) => l.kernel === handle.name && l.reason === 'kernel-gone');
            assert.deepEqual(
              gone.map((l) => Numbers.decode(l.payload).seq),
              [...(refused[k] as Set<number>)],
              `kernel ${k}: every refused send is a dead letter too`,
            );
            for (const letter of letters.filter((l) => l.kernel === handle.name && l.reason !== 'kernel-gone')) {
              const { seq } = Numbers.decode(letter.payload);
              assert.ok(!seen.has(seq), `seq ${seq} both ${seen.get(seq)} and dead-lettered (${letter.reason})`);
              seen.set(seq, letter.reason);
            }
            const missing = [...(accepted[k] as Set<number>)].filter((seq) => !seen.has(seq));
            assert.deepEqual(missing, [], `kernel ${k}: accepted but never answered nor dead-lettered`);
            assert.equal(seen.size, accepted[k]?.size, `kernel ${k}: nothing unaccounted for`);
          }
        }, 10_000);
        const reasons = new Set(letters.map((l) => l.reason));
        assert.ok(reasons.has('handler-error'), 'throwing handlers were exercised');
        if (killed) {
          assert.ok(
            handles.some((h) => h.status === 'Failed'),
            'a worker died',
          );
          assert.ok(reasons.has('kernel-failed'), 'the fatal message (at least) was dead-lettered by the host');
        }
      } finally {
        await runtime.shutdown();
      }
    });
  }
});
