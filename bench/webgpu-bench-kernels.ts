/** WGSL kernels for the WebGPU benchmark cases (the device thread imports this module). */
import { BytesMessage, defineKernel } from '../src/index.js';

/** Takes every message and emits nothing: the sustained cases count what it has processed. */
export const BenchWebGpuSink = defineKernel({
  id: 'bench.webgpu.sink',
  input: BytesMessage,
  output: BytesMessage,
  webgpu: { entry: 'sink', source: 'fn sink(i: u32) -> u32 { return RK_E_NONE; }', maxBatch: 16_384 },
});

/** Answers each message with its payload. */
export const BenchWebGpuEcho = defineKernel({
  id: 'bench.webgpu.echo',
  input: BytesMessage,
  output: BytesMessage,
  webgpu: {
    entry: 'echo',
    outputBytes: 64,
    source: `fn echo(i: u32) -> u32 {
  let m = rk_message(i);
  for (var w = 0u; w < (m.size + 3u) / 4u; w++) { rk_out_word(i, w, rk_in_word(i, w)); }
  rk_emit(i, m.size, m.type_id);
  return RK_E_NONE;
}`,
  },
});
