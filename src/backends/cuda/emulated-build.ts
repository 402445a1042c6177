/** Placeholder until the emulator branch merges (taken from branch cuda-emu at merge). */
export const EMULATED_IMAGE_PREFIX = 'RKEMU-SO:';
export function buildEmulatedKernel(options: {
  readonly handlerPath: string;
  readonly outputPath: string;
  readonly includeDirs?: readonly string[];
}): { readonly ok: true; readonly image: string } | { readonly ok: false; readonly stderr: string } {
  return { ok: false, stderr: `no emulator build in this branch (${options.handlerPath})` };
}
