/**
 * Writes native/include/ringkernel_layout.h from the TypeScript layout tables (`npm run gen:native`).
 * With `--check`, writes nothing and exits 1 when the file on disk is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LAYOUT_HEADER_PATH, renderLayoutHeader } from '../src/internal.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const target = `${root}${LAYOUT_HEADER_PATH}`;
const fresh = renderLayoutHeader();
if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {
    // missing counts as stale
  }
  if (current !== fresh) {
    console.error(`${LAYOUT_HEADER_PATH} is stale: run npm run gen:native`);
    process.exit(1);
  }
  console.log(`${LAYOUT_HEADER_PATH} is up to date`);
} else {
  writeFileSync(target, fresh);
  console.log(`wrote ${LAYOUT_HEADER_PATH}`);
}
