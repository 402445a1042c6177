/**
 * The first mistakes a new user makes: each is refused at once, with a typed error (`code`) whose message says
 * what was wrong in the user's terms and what to do — not the lifecycle machine's transitions.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { defineMessage, ErrorCode, RingKernelError, RingKernelRuntime } from '../src/index.js';
import { Accumulator, AddOne } from './fixtures/kernels.js';

describe('first mistakes', () => {
  let runtime: RingKernelRuntime;
  before(async () => {
    runtime = await RingKernelRuntime.builder().backend('cpu').config({ workers: 1 }).build();
  });
  after(() => runtime.shutdown());

  it('call() before activate() is refused at once, naming the state and what to do', async () => {
    const kernel = await runtime.launch(Accumulator, 1, 1, { autoActivate: false, name: 'never-activated' });
    await assert.rejects(kernel.call({ sender: 0, seq: 0, value: 1 }), {
      code: ErrorCode.InvalidState,
      message:
        "cannot call kernel 'never-activated': it is Launched, launched with { autoActivate: false } and not yet activated, so it takes no input: call activate() first",
    });
    // Asked to activate (not yet done): the call waits for it and is answered.
    const activating = kernel.activate();
    const answer = await kernel.call({ sender: 0, seq: 1, value: 2 });
    await activating;
    assert.equal(answer.total, 2);
    await kernel.terminate();
  });

  it('launching a kernel under a name in use says the name is taken and to pass { name }', async () => {
    const first = await runtime.launch(Accumulator, 1, 1, { autoActivate: true });
    await assert.rejects(runtime.launch(Accumulator, 1, 1), {
      code: ErrorCode.InvalidState,
      message:
        "cannot launch kernel 'test.accumulator': it is Active, and the name 'test.accumulator' is taken while it lives: pass { name } to launch another instance of kernel 'test.accumulator'",
    });
    await first.terminate();
  });

  it('sending to a terminated kernel says it takes no more messages', async () => {
    const kernel = await runtime.launch(Accumulator, 1, 1, { name: 'ended', autoActivate: true });
    await kernel.terminate();
    await assert.rejects(kernel.send({ sender: 0, seq: 0, value: 1 }), {
      code: ErrorCode.InvalidState,
      message:
        "cannot send to kernel 'ended': it is Terminated, and takes no more messages (launch it again for a new instance)",
    });
  });

  it('defineMessage with an unknown field type names the field and the valid types', () => {
    assert.throws(() => defineMessage('mistakes.Reading', { sensor: 'u16', celsius: 'float' as 'f64' }), {
      code: ErrorCode.InvalidMessageSchema,
      message:
        'message "mistakes.Reading": field \'celsius\' has unknown type "float"; a field is one of u8, i8, u16, i16, u32, i32, f32, u64, i64, f64, bool, field.array(kind, length), field.bytes(length) or field.string(capacity)',
    });
  });

  it('a message name defined twice with other fields says so, without typeId advice', () => {
    defineMessage('mistakes.Twice', { a: 'u32' });
    assert.throws(() => defineMessage('mistakes.Twice', { a: 'u32', b: 'u8' }), {
      code: ErrorCode.InvalidMessageSchema,
      message:
        'message "mistakes.Twice": is already defined with other fields; a message name has one layout: define it once and import it, or give the other message a name of its own',
    });
  });

  it('connecting kernels of mismatched types is a typed error', async () => {
    const add = await runtime.launch(AddOne, 1, 1, { autoActivate: false, name: 'mismatch-a' });
    const acc = await runtime.launch(Accumulator, 1, 1, { autoActivate: false, name: 'mismatch-b' });
    await assert.rejects(runtime.connect(acc, add), (error: unknown) => {
      assert.ok(error instanceof RingKernelError);
      assert.equal(error.code, ErrorCode.MessageTypeMismatch);
      assert.match(error.message, /'mismatch-b' outputs test\.Total and 'mismatch-a' takes test\.Numbers/);
      return true;
    });
    await add.terminate();
    await acc.terminate();
  });

  it('launch takes an options object, with the GPU sizes inside it; the positional form still works', async () => {
    const byOptions = await runtime.launch(AddOne, { name: 'by-options', autoActivate: true });
    assert.equal((await byOptions.call({ sender: 0, seq: 0, value: 1 })).value, 2);
    assert.deepEqual(
      [byOptions.metrics().gridSize, byOptions.metrics().blockSize],
      [
        [1, 1, 1],
        [1, 1, 1],
      ],
    );
    const sized = await runtime.launch(AddOne, { autoActivate: false, name: 'sized', gridSize: 2, blockSize: [4, 2] });
    assert.deepEqual(
      [sized.metrics().gridSize, sized.metrics().blockSize],
      [
        [2, 1, 1],
        [4, 2, 1],
      ],
    );
    await assert.rejects(
      runtime.launch(AddOne, { autoActivate: false, name: 'bad-size', gridSize: 0 }),
      /gridSize must be a positive integer/,
    );
    const positional = await runtime.launch(AddOne, 1, 1, { name: 'positional', autoActivate: true });
    assert.equal((await positional.call({ sender: 0, seq: 0, value: 2 })).value, 3);
    for (const handle of [byOptions, sized, positional]) await handle.terminate();
  });
});
