/**
 * A kernel's lifecycle state, as mirrored into its ControlBlock's `status` word.
 * Created → Launched → Active ⇄ Deactivated → Terminating → Terminated, and Failed from anywhere.
 * The numbers are part of the binary contract (C: `RK_STATUS_*`).
 */
export const KernelStatus = {
  Created: 0,
  Launched: 1,
  Active: 2,
  Deactivated: 3,
  Terminating: 4,
  Terminated: 5,
  Failed: 6,
} as const;

/** The name of a lifecycle state. */
export type KernelStatusName = keyof typeof KernelStatus;
/** The numeric status word. */
export type KernelStatusCode = (typeof KernelStatus)[KernelStatusName];

const namesByCode = Object.fromEntries(Object.entries(KernelStatus).map(([name, code]) => [code, name])) as Record<
  number,
  KernelStatusName | undefined
>;

/**
 * The state name for a status word, or `undefined` for a number that is not a status.
 *
 * @example
 * kernelStatusName(2); // 'Active'
 */
export function kernelStatusName(code: number): KernelStatusName | undefined {
  return namesByCode[code];
}
