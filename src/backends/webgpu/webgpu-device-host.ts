/**
 * The Piscina task module of the runtime's WebGPU device thread: `attach` compiles one WebGPU kernel on the thread's
 * device and returns once it is resident (its pipeline, state and batch buffers made; its batches run from its
 * rings). One thread per adapter owns its `GPUDevice`; a device that is lost is replaced by a new one for the next
 * launch (a supervised restart lands there).
 */
import { serializeWebGpuError } from '../../errors/webgpu-errors.js';
import { attachKernel, type ExecutorBackend } from '../../executor/executor-shell.js';
import type { AttachResult, AttachTask } from '../../executor/protocol.js';
import { HostedWebGpuKernel } from './hosted-webgpu-kernel.js';
import { openWebGpuDevice } from './webgpu-adapter.js';

let device: Promise<GPUDevice> | undefined;

/**
 * The test hook's channel name. With `RINGKERNEL_WEBGPU_TEST_HOOKS=1` in the environment the device thread starts
 * with, the message `'lose-device'` on a `BroadcastChannel` of this name destroys the thread's device — what a
 * driver reset or a removed GPU does: its `lost` promise resolves for real, its pending readbacks fail, and every
 * kernel on it takes the device-lost path. The thread answers `'device-lost'` once `lost` has resolved. Off
 * otherwise: nothing listens.
 * @internal
 */
export const WEBGPU_TEST_HOOK_CHANNEL = 'ringkernel.webgpu.test-hook';

if (process.env.RINGKERNEL_WEBGPU_TEST_HOOKS === '1') {
  const channel = new BroadcastChannel(WEBGPU_TEST_HOOK_CHANNEL);
  channel.unref();
  channel.onmessage = async (event) => {
    if ((event as MessageEvent).data !== 'lose-device' || device === undefined) return;
    const losing = device;
    // The next launch (a supervised restart) opens a new device, not this one.
    device = undefined;
    const gpu = await losing;
    gpu.destroy();
    await gpu.lost;
    channel.postMessage('device-lost');
  };
}

/** The thread's device, opened on first use; a lost one is let go so the next launch opens another. */
function deviceFor(task: AttachTask): Promise<GPUDevice> {
  if (device === undefined) {
    const opening = openWebGpuDevice({
      allowFallback: task.webgpu?.allowFallback ?? false,
      nativeBackend: task.webgpu?.nativeBackend ?? 'default',
    }).then(({ device: opened }) => {
      opened.lost.then(() => {
        if (device === opening) device = undefined;
      });
      return opened;
    });
    opening.catch(() => {
      if (device === opening) device = undefined;
    });
    device = opening;
  }
  return device;
}

const webgpuExecutor: ExecutorBackend = {
  async prepare(definition, shell) {
    return HostedWebGpuKernel.prepare(definition, shell, await deviceFor(shell.task));
  },
  failureDetail(error) {
    const webgpu = serializeWebGpuError(error);
    return webgpu === undefined ? {} : { webgpu };
  },
};

export default function attach(task: AttachTask): Promise<AttachResult> {
  return attachKernel(task, webgpuExecutor);
}
