import { defineMessage, field } from '../src/internal.js';

/** Typed benchmark messages whose payloads are exactly 64, 256 and 1024 bytes. */
export const BenchMessages = {
  64: defineMessage('bench.Sample64', { seq: 'u32', flags: 'u32', ts: 'f64', data: field.array('f64', 6) }),
  256: defineMessage('bench.Sample256', { seq: 'u32', flags: 'u32', ts: 'f64', data: field.array('f64', 30) }),
  1024: defineMessage('bench.Sample1024', { seq: 'u32', flags: 'u32', ts: 'f64', data: field.array('f64', 126) }),
} as const;

/** Payload sizes the frame cases run with. */
export type BenchSize = keyof typeof BenchMessages;

/** What the main thread asks a benchmark worker to do. */
export type BenchJob =
  | { readonly kind: 'postMessage-sink'; readonly count: number }
  | { readonly kind: 'postMessage-echo' }
  | { readonly kind: 'ringbuf-sink'; readonly ring: SharedArrayBuffer; readonly count: number; readonly size: number }
  | {
      readonly kind: 'ringbuf-echo';
      readonly ping: SharedArrayBuffer;
      readonly pong: SharedArrayBuffer;
      readonly count: number;
      readonly size: number;
    }
  | {
      readonly kind: 'frames-sink';
      readonly memory: import('../src/internal.js').FrameRingMemory;
      readonly count: number;
      readonly size: BenchSize;
    }
  | {
      readonly kind: 'frames-echo';
      readonly ping: import('../src/internal.js').FrameRingMemory;
      readonly pong: import('../src/internal.js').FrameRingMemory;
      readonly count: number;
      readonly size: BenchSize;
    };

/** Wall-clock milliseconds, comparable across threads (each thread has its own `performance.timeOrigin`). */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}
