/**
 * The Piscina task module of the runtime's WebGPU device thread: `attach` compiles one WebGPU kernel on one of the
 * thread's devices and returns once it is resident (its pipeline, state and batch buffers made; its batches run from
 * its rings). One thread per adapter; each of the runtime's devices (`device` at launch) is a `GPUDevice` of its own
 * on that adapter, so a migration between two of them moves the kernel to another `GPUDevice`. A device that is
 * lost is replaced by a new one for the next launch (a supervised restart lands there).
 */
import { serializeWebGpuError } from '../../errors/webgpu-errors.js';
import { attachKernel, type ExecutorBackend } from '../../executor/executor-shell.js';
import type { AttachResult, AttachTask } from '../../executor/protocol.js';
import { Usage } from './batch-slot.js';
import { HostedWebGpuKernel } from './hosted-webgpu-kernel.js';
import { type OpenedWebGpuDevice, openWebGpuDevice } from './webgpu-adapter.js';

/** The thread's devices, by the runtime's device index (each on the adapter the task's options name). */
const devices = new Map<number, Promise<OpenedWebGpuDevice>>();

/**
 * The test hook's channel name. With `RINGKERNEL_WEBGPU_TEST_HOOKS=1` in the environment the device thread starts
 * with, these messages on a `BroadcastChannel` of this name act on the thread's devices for real:
 * - `'lose-device'` (every device) or `'lose-device:<index>'` destroys it — what a driver reset or a removed GPU
 *   does: its `lost` promise resolves, its pending readbacks fail, every kernel on it takes the device-lost path.
 *   Answered `'device-lost'` once `lost` has resolved.
 * - `'uncaptured-error'` makes a real validation error outside any error scope (a copy past a buffer's end) on
 *   every device. Answered `'uncaptured-error'`.
 * Off otherwise: nothing listens.
 * @internal
 */
export const WEBGPU_TEST_HOOK_CHANNEL = 'ringkernel.webgpu.test-hook';

if (process.env.RINGKERNEL_WEBGPU_TEST_HOOKS === '1') {
  const channel = new BroadcastChannel(WEBGPU_TEST_HOOK_CHANNEL);
  channel.unref();
  channel.onmessage = async (event) => {
    const hook = String((event as MessageEvent).data);
    if (hook === 'uncaptured-error') {
      for (const opening of [...devices.values()]) {
        // A copy past a buffer's end, outside any error scope: a real validation error nobody captures.
        const gpu = (await opening).device;
        const source = gpu.createBuffer({ size: 4, usage: Usage.COPY_SRC });
        const target = gpu.createBuffer({ size: 4, usage: Usage.COPY_DST });
        const encoder = gpu.createCommandEncoder();
        encoder.copyBufferToBuffer(source, 0, target, 0, 8);
        gpu.queue.submit([encoder.finish()]);
      }
      channel.postMessage('uncaptured-error');
      return;
    }
    if (hook !== 'lose-device' && !hook.startsWith('lose-device:')) return;
    const only = hook === 'lose-device' ? undefined : Number(hook.slice('lose-device:'.length));
    for (const [index, losing] of [...devices]) {
      if (only !== undefined && index !== only) continue;
      // The next launch there (a supervised restart) opens a new device, not this one.
      devices.delete(index);
      const gpu = (await losing).device;
      gpu.destroy();
      await gpu.lost;
    }
    channel.postMessage('device-lost');
  };
}

/** The device for the runtime's device `task.device`, opened on first use; a lost one is let go for a new one. */
function deviceFor(task: AttachTask): Promise<OpenedWebGpuDevice> {
  const index = task.device ?? 0;
  let opening = devices.get(index);
  if (opening === undefined) {
    const opened = openWebGpuDevice({
      allowFallback: task.webgpu?.allowFallback ?? false,
      nativeBackend: task.webgpu?.nativeBackend ?? 'default',
    }).then((made) => {
      const { device } = made;
      const letGo = (): void => {
        if (devices.get(index) === opened) devices.delete(index);
      };
      device.lost.then(letGo);
      // Its kernels fail with the error (each engine listens); the next launch, a supervised restart among
      // them, opens a new device rather than one in a state nobody checked.
      device.addEventListener('uncapturederror', letGo);
      return made;
    });
    opened.catch(() => {
      if (devices.get(index) === opened) devices.delete(index);
    });
    devices.set(index, opened);
    opening = opened;
  }
  return opening;
}

const webgpuExecutor: ExecutorBackend = {
  async prepare(definition, shell) {
    const { device, adapter } = await deviceFor(shell.task);
    const prepared = await HostedWebGpuKernel.prepare(definition, shell, device);
    return { ...prepared, attachInfo: { webgpu: { adapter } } };
  },
  failureDetail(error) {
    const webgpu = serializeWebGpuError(error);
    return webgpu === undefined ? {} : { webgpu };
  },
};

export default function attach(task: AttachTask): Promise<AttachResult> {
  return attachKernel(task, webgpuExecutor);
}
