/**
 * Shutdown while kernels are already terminating (a `fromKernel` actor stopped just before `runtime.shutdown()`):
 * shutdown waits for them, and each kernel is counted once, as what it ended as.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createActor, setup } from 'xstate';
import { fromKernel, kernelActorExited, RingKernelRuntime } from '../src/index.js';
import { Accumulator } from './fixtures/kernels.js';
import { Random, TEST_SEED } from './support/random.js';

/** Runs `body` with console.error captured (the runtime logs a failed kernel there). */
async function capturingErrors<T>(body: () => Promise<T>): Promise<{ result: T; errors: string[] }> {
  const errors: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => errors.push(args.map(String).join(' '));
  try {
    return { result: await body(), errors };
  } finally {
    console.error = original;
  }
}

describe('shutdown while kernels are terminating', () => {
  it(`counts each kernel once as terminated, never failed (seed ${TEST_SEED})`, async () => {
    const random = new Random(TEST_SEED);
    for (let round = 0; round < 12; round++) {
      const kernels = random.int(1, 4);
      const { result: report, errors } = await capturingErrors(async () => {
        const runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 2 }).build();
        const handles = await Promise.all(
          Array.from({ length: kernels }, (_, i) =>
            runtime.launch(Accumulator, 1, 1, { name: `t${round}.${i}`, autoActivate: true }),
          ),
        );
        for (const handle of handles) await handle.call({ sender: 0, seq: 0, value: 1 });
        // Some are told to terminate (not awaited), some not; then shutdown, after a random few microtasks.
        for (const handle of handles) if (random.int(0, 2) > 0) void handle.terminate();
        for (let tick = random.int(0, 3); tick > 0; tick--) await Promise.resolve();
        return runtime.shutdown();
      });
      assert.deepEqual(
        { terminated: report.terminated, failed: report.failed, errors },
        { terminated: kernels, failed: 0, errors: [] },
        `round ${round}`,
      );
    }
  });

  it('a fromKernel actor stopped just before shutdown ends its kernel Terminated, counted once', async () => {
    for (let round = 0; round < 8; round++) {
      const { result, errors } = await capturingErrors(async () => {
        const runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 1 }).build();
        const machine = setup({ actors: { accumulator: fromKernel(Accumulator, { runtime }) } }).createMachine({
          invoke: { id: 'acc', src: 'accumulator', input: { name: `actor${round}` } },
        });
        const actor = createActor(machine).start();
        const handle = await waitForKernel(runtime, `actor${round}`);
        actor.stop();
        const report = await runtime.shutdown();
        return { report, status: handle.status };
      });
      assert.deepEqual(
        { terminated: result.report.terminated, failed: result.report.failed, status: result.status, errors },
        { terminated: 1, failed: 0, status: 'Terminated', errors: [] },
        `round ${round}`,
      );
    }
  });

  it("kernelActorExited(actor) resolves once a stopped actor's kernel has terminated", async () => {
    const runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 1 }).build();
    try {
      const machine = setup({ actors: { accumulator: fromKernel(Accumulator, { runtime }) } }).createMachine({
        invoke: { id: 'acc', src: 'accumulator', input: { name: 'awaited' } },
      });
      const actor = createActor(machine).start();
      const handle = await waitForKernel(runtime, 'awaited');
      const child = actor.getSnapshot().children.acc;
      assert.ok(child !== undefined, 'the invoked kernel actor');
      actor.stop();
      await kernelActorExited(child);
      assert.equal(handle.status, 'Terminated');
      assert.deepEqual(
        runtime.kernels().map((kernel) => kernel.name),
        [],
      );
    } finally {
      await runtime.shutdown();
    }
  });
});

/** The kernel a fromKernel actor launched, once it is Active. */
async function waitForKernel(runtime: RingKernelRuntime, name: string) {
  for (let tries = 0; tries < 500; tries++) {
    const handle = runtime.kernels().find((kernel) => kernel.name === name);
    if (handle !== undefined && handle.status === 'Active') return handle;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`kernel '${name}' never became Active`);
}
