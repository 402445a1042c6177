import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package whose root this module looks for: its own. */
const PACKAGE_NAME = 'ringkernel';

let cachedRoot: string | undefined;

/**
 * The absolute path of the ringkernel package's root folder (the one holding its `package.json` and `native/`).
 * Found by walking up from this module to the first `package.json` naming the package, so it holds wherever
 * the compiled library sits (`dist/src/…` in a checkout, another folder in a published build) — unlike counting
 * `../` segments, which breaks as soon as the build layout moves. Never throws.
 *
 * @example
 * const header = join(packageRoot(), 'native', 'include', 'ringkernel_layout.h');
 */
export function packageRoot(): string {
  if (cachedRoot !== undefined) return cachedRoot;
  let folder = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(folder, 'package.json');
    if (existsSync(manifest) && readPackageName(manifest) === PACKAGE_NAME) {
      cachedRoot = folder;
      return folder;
    }
    const parent = dirname(folder);
    if (parent === folder) {
      // Not inside its package (bundled, or copied out): fall back to where a checkout's build puts this file
      // (dist/src/backends). Callers only ever look for files there, and each one reports a missing file by path.
      cachedRoot = fileURLToPath(new URL('../../../', import.meta.url));
      return cachedRoot;
    }
    folder = parent;
  }
}

/**
 * An absolute path inside the package's `native/` folder (sources, generated headers, `native/build/` libraries).
 *
 * @example
 * nativePath('build', 'libringkernel.so'); // '/…/ringkernel/native/build/libringkernel.so'
 */
export function nativePath(...segments: string[]): string {
  return join(packageRoot(), 'native', ...segments);
}

function readPackageName(manifest: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(readFileSync(manifest, 'utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'name' in parsed && typeof parsed.name === 'string') {
      return parsed.name;
    }
  } catch {
    // An unreadable or malformed package.json is not ours: keep walking up.
  }
  return undefined;
}
