import { createRequire } from 'node:module';

type Koffi = typeof import('koffi');
/** A bound C function. */
export type NativeFunction = ReturnType<ReturnType<Koffi['load']>['func']>;

/** A loaded library and its bound functions, or why it could not be had. */
export type NativeLibraryLoad =
  | {
      readonly available: true;
      readonly koffi: Koffi;
      readonly lib: ReturnType<Koffi['load']>;
      readonly functions: Record<string, NativeFunction>;
    }
  | { readonly available: false; readonly reason: string };

/**
 * Loads a vendor library with koffi (lazily: koffi itself is required here) and binds `required` prototypes
 * (`int name(...)`, all of them or the load fails, saying which is missing) and `optional` ones (bound where the
 * library has them). Never throws. `hint` follows "could not be loaded" in the reason (what to install).
 *
 */
export function loadNativeLibrary(
  path: string,
  required: readonly string[],
  optional: readonly string[] = [],
  hint = '',
  /** Runs before binding (registers the types the prototypes name). */
  before?: (koffi: Koffi) => void,
): NativeLibraryLoad {
  let koffi: Koffi;
  try {
    koffi = createRequire(import.meta.url)('koffi') as Koffi;
  } catch (error) {
    return { available: false, reason: `koffi could not be loaded: ${(error as Error).message}` };
  }
  let lib: ReturnType<Koffi['load']>;
  try {
    lib = koffi.load(path);
  } catch (error) {
    return { available: false, reason: `${path} could not be loaded${hint}: ${(error as Error).message}` };
  }
  before?.(koffi);
  const functions: Record<string, NativeFunction> = {};
  for (const prototype of required) {
    const name = /^[\w\s*]+?(\w+)\(/.exec(prototype)?.[1] as string;
    try {
      functions[name] = lib.func(prototype);
    } catch (error) {
      return { available: false, reason: `${path} has no ${name}: ${(error as Error).message}` };
    }
  }
  for (const prototype of optional) {
    const name = /^[\w\s*]+?(\w+)\(/.exec(prototype)?.[1] as string;
    try {
      functions[name] = lib.func(prototype);
    } catch {
      // Not in this version of the library: the caller works without it.
    }
  }
  return { available: true, koffi, lib, functions };
}

/** Memoises a loader per library path (once per thread and path). */
export function memoByPath<T>(load: (path: string) => T): (path: string) => T {
  const loaded = new Map<string, T>();
  return (path) => {
    let result = loaded.get(path);
    if (result === undefined) {
      result = load(path);
      loaded.set(path, result);
    }
    return result;
  };
}
