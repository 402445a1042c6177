import { randomFillSync } from 'node:crypto';
import { InvalidEnvelopeError } from '../errors/value-errors.js';

/**
 * W3C trace and span ids, made without the OpenTelemetry SDK: random 32-bit words written straight into the
 * buffer that will carry them (an envelope's scratch id, a span record). The words come from xorshift128
 * (Marsaglia), seeded once per thread from the operating system's random source: ids must be unique, not secret,
 * and a word costs a few shifts instead of a `Math.random()` call (or a call into C++ per id for
 * `crypto.getRandomValues`).
 */

const state = new Uint32Array(4);
do randomFillSync(state);
while (state.every((word) => word === 0));
let s0 = state[0] as number;
let s1 = state[1] as number;
let s2 = state[2] as number;
let s3 = state[3] as number;

/** The next 32 random bits (xorshift128: period 2^128 − 1). */
function nextWord(): number {
  let t = s3;
  const s = s0;
  s3 = s2;
  s2 = s1;
  s1 = s;
  t ^= t << 11;
  t ^= t >>> 8;
  s0 = (t ^ s ^ (s >>> 19)) >>> 0;
  return s0;
}

/** Fills `length` bytes (a multiple of 4) at `at` with a random id that is not all zero (W3C: invalid). */
export function fillRandomId(view: DataView, at: number, length: 8 | 16): void {
  let any = 0;
  for (let i = 0; i < length; i += 4) {
    const word = nextWord();
    any |= word;
    view.setUint32(at + i, word, true);
  }
  if (any === 0) view.setUint32(at, 1, true);
}

/** True when every byte of the id is zero (no trace, or no parent). */
export function isZeroId(bytes: Uint8Array, at: number, length: number): boolean {
  for (let i = 0; i < length; i++) if (bytes[at + i] !== 0) return false;
  return true;
}

const HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** The id's bytes as lower-case hex, the form OpenTelemetry's `SpanContext` holds. */
export function idToHex(bytes: Uint8Array, at: number, length: number): string {
  let hex = '';
  for (let i = 0; i < length; i++) hex += HEX[bytes[at + i] as number];
  return hex;
}

/**
 * Writes a hex id (an OpenTelemetry `SpanContext`'s, maybe one that came from another process) as bytes.
 * @throws {InvalidEnvelopeError} naming `field` when `hex` is not `2 × length` hex digits.
 */
export function hexToId(field: string, hex: string, bytes: Uint8Array, at: number, length: number): void {
  if (hex.length !== length * 2 || !/^[0-9a-f]+$/i.test(hex)) {
    throw new InvalidEnvelopeError(field, `expected ${length * 2} hex digits, got ${JSON.stringify(hex)}`);
  }
  for (let i = 0; i < length; i++) bytes[at + i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
}
