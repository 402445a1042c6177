/**
 * W3C trace and span ids, made without the OpenTelemetry SDK: random 32-bit words written straight into the
 * buffer that will carry them (an envelope's scratch id, a span record). `Math.random` is enough — the ids only
 * need to be unique, not secret, and every thread's generator is seeded on its own — and costs a few ns a word,
 * where `crypto.getRandomValues` costs a call into C++ per id.
 */

const TWO_32 = 0x1_0000_0000;

/** Fills `length` bytes (a multiple of 4) at `at` with a random id that is not all zero (W3C: invalid). */
export function fillRandomId(view: DataView, at: number, length: 8 | 16): void {
  let any = 0;
  for (let i = 0; i < length; i += 4) {
    const word = (Math.random() * TWO_32) >>> 0;
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
 * Writes a hex id (an OpenTelemetry `SpanContext`'s) as bytes.
 * @throws {RangeError} when `hex` is not `2 × length` hex digits.
 */
export function hexToId(hex: string, bytes: Uint8Array, at: number, length: number): void {
  if (hex.length !== length * 2 || !/^[0-9a-f]+$/i.test(hex)) {
    throw new RangeError(`expected ${length * 2} hex digits, got ${JSON.stringify(hex)}`);
  }
  for (let i = 0; i < length; i++) bytes[at + i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
}
