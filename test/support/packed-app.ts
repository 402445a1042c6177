/**
 * A fresh app that depends on ringkernel the way a user's does: `npm pack` of this repository, installed from the
 * tarball into a temporary directory with `npm ci`. Offline first: the app's lockfile is derived from the
 * repository's own (same versions, same integrity hashes), so npm takes every package from its cache, which the
 * repository's `npm ci` filled; only when the cache lacks one does it go to the registry.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (the tests run from dist/test). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** What `npm pack --json` says of the tarball. */
interface PackResult {
  readonly filename: string;
  readonly files: readonly { readonly path: string }[];
}

/** A temporary app with ringkernel installed from its packed tarball. */
export interface PackedApp {
  /** The app's directory (its package.json says `"type": "module"`). */
  readonly dir: string;
  /** Every path in the tarball, relative to the package root. */
  readonly packedFiles: readonly string[];
  /** What `npm ci` printed (the native build's lines among them). */
  readonly installLog: string;
  /** Removes the app and the tarball. */
  remove(): void;
}

interface LockEntry {
  readonly version: string;
  readonly dependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
  readonly peerDependencies?: Record<string, string>;
  readonly [key: string]: unknown;
}

interface PackageJson {
  readonly version: string;
  readonly dependencies: Record<string, string>;
  readonly peerDependencies: Record<string, string>;
  readonly peerDependenciesMeta?: Record<string, { readonly optional?: boolean }>;
}

/**
 * The app's lockfile: ringkernel from the tarball, then its dependencies and peers and theirs, as the
 * repository's lockfile pins them (minus the dev flags, which describe the repository, not the app).
 */
function appLockfile(tarball: string): object {
  const lock = JSON.parse(readFileSync(join(REPO_ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockEntry>;
  };
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as PackageJson;
  const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
  const resolved = `file:${tarball}`;
  const packages: Record<string, object> = {
    '': { name: 'app', dependencies: { ringkernel: resolved } },
    'node_modules/ringkernel': {
      version: pkg.version,
      resolved,
      integrity,
      hasInstallScript: true,
      dependencies: pkg.dependencies,
      peerDependencies: pkg.peerDependencies,
      ...(pkg.peerDependenciesMeta === undefined ? {} : { peerDependenciesMeta: pkg.peerDependenciesMeta }),
    },
  };
  // Required peers are installed beside ringkernel, as npm does; optional ones (an app opts in) are not.
  const peers = new Set(
    Object.keys(pkg.peerDependencies).filter((name) => pkg.peerDependenciesMeta?.[name]?.optional !== true),
  );
  const pending = [...Object.keys(pkg.dependencies), ...peers];
  for (let name = pending.pop(); name !== undefined; name = pending.pop()) {
    const key = `node_modules/${name}`;
    if (packages[key] !== undefined) continue;
    const entry = lock.packages[key];
    if (entry === undefined) throw new Error(`package-lock.json has no ${key}: run npm install`);
    const { dev: _dev, devOptional: _devOptional, peer: _peer, ...rest } = entry;
    packages[key] = peers.has(name) ? { ...rest, peer: true } : rest;
    pending.push(...Object.keys({ ...entry.dependencies, ...entry.optionalDependencies, ...entry.peerDependencies }));
  }
  return { name: 'app', lockfileVersion: 3, requires: true, packages };
}

/**
 * Packs the repository as it is built now (`npm pack --ignore-scripts`: `npm test` has just run tsc, and a
 * rebuild under the other test files' feet is what the scripts would do) and installs the tarball into a new app.
 */
export function installPackedApp(): PackedApp {
  const dir = mkdtempSync(join(tmpdir(), 'ringkernel-app-'));
  const packed = execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  const [result] = JSON.parse(packed) as PackResult[];
  if (result === undefined) throw new Error(`npm pack printed no result: ${packed}`);
  const tarball = join(dir, result.filename);
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'app', private: true, type: 'module', dependencies: { ringkernel: `file:${tarball}` } }),
  );
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(appLockfile(tarball), null, 2));
  const install = (mode: '--offline' | '--prefer-offline') =>
    spawnSync('npm', ['ci', mode, '--no-audit', '--no-fund', '--foreground-scripts'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 180_000,
    });
  let installed = install('--offline');
  // A cache without some package (cleaned, or another npm's): fetch what is missing from the registry.
  if (installed.status !== 0 && /ENOTCACHED/.test(installed.stderr)) installed = install('--prefer-offline');
  if (installed.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`npm ci of the packed ringkernel failed:\n${installed.stdout}\n${installed.stderr}`);
  }
  return {
    dir,
    packedFiles: result.files.map((file) => file.path),
    installLog: `${installed.stdout}\n${installed.stderr}`,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
