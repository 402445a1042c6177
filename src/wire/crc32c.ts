/**
 * CRC32-C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of frames that ask for integrity.
 * Slicing-by-8 tables: about eight times the speed of a byte-at-a-time loop, with 8 KiB of tables.
 */

const POLY = 0x82f6_3b78;
const TABLES = buildTables();

function buildTables(): Uint32Array {
  const tables = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    tables[n] = c >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let c = tables[n] as number;
    for (let t = 1; t < 8; t++) {
      c = (tables[c & 0xff] as number) ^ (c >>> 8);
      tables[t * 256 + n] = c >>> 0;
    }
  }
  return tables;
}

/** The running state before any byte: pass it to the first {@link crc32cUpdate}. */
export const CRC32C_INIT = 0xffff_ffff;

/**
 * Folds `bytes[start, end)` into a running CRC32-C state. Start from {@link CRC32C_INIT}; finish with
 * {@link crc32cFinish}. Lets a checksum cover several ranges without copying them together.
 */
export function crc32cUpdate(state: number, bytes: Uint8Array, start: number, end: number): number {
  const t = TABLES;
  let crc = state >>> 0;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const lo =
      (crc ^
        ((bytes[i] as number) |
          ((bytes[i + 1] as number) << 8) |
          ((bytes[i + 2] as number) << 16) |
          ((bytes[i + 3] as number) << 24))) >>>
      0;
    crc =
      (t[7 * 256 + (lo & 0xff)] as number) ^
      (t[6 * 256 + ((lo >>> 8) & 0xff)] as number) ^
      (t[5 * 256 + ((lo >>> 16) & 0xff)] as number) ^
      (t[4 * 256 + (lo >>> 24)] as number) ^
      (t[3 * 256 + (bytes[i + 4] as number)] as number) ^
      (t[2 * 256 + (bytes[i + 5] as number)] as number) ^
      (t[256 + (bytes[i + 6] as number)] as number) ^
      (t[bytes[i + 7] as number] as number);
  }
  for (; i < end; i++) crc = (t[(crc ^ (bytes[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  return crc >>> 0;
}

/** Turns a running state into the CRC32-C value. */
export function crc32cFinish(state: number): number {
  return (state ^ 0xffff_ffff) >>> 0;
}

/**
 * CRC32-C of `bytes[start, end)`.
 *
 * @example
 * crc32c(new TextEncoder().encode('123456789')); // 0xe3069283
 */
export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length): number {
  return crc32cFinish(crc32cUpdate(CRC32C_INIT, bytes, start, end));
}
