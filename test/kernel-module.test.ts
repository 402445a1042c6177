import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

/** Runs a fixture as a program of its own; a runaway one (workers spawning workers) is killed after 30 s. */
function runFixture(name: string) {
  return spawnSync(process.execPath, [fixture(name)], { encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' });
}

describe("a kernel's module, as the workers load it", () => {
  it("refuses to launch a kernel defined in the program's entry module, saying to move it", () => {
    const ran = runFixture('kernel-in-entry.js');
    assert.equal(ran.signal, null, 'the program ended on its own');
    assert.equal(ran.status, 0, ran.stderr);
    assert.match(
      ran.stdout,
      /^RK_KERNEL_MODULE: kernel 'entry\.pinger' \(module file:\/\/\S+\/kernel-in-entry\.js\): it is the program's entry module\. .*Move the kernel into a module of its own/m,
    );
    assert.doesNotMatch(ran.stdout, /launched/);
  });

  it('refuses a runtime built inside a kernel worker (a kernel module that builds one when imported)', () => {
    const ran = runFixture('kernel-with-runtime-main.js');
    assert.equal(ran.signal, null, 'the program ended on its own');
    assert.equal(ran.status, 0, ran.stderr);
    assert.match(
      ran.stdout,
      /^RK_KERNEL_MODULE: kernel 'sideEffect\.pinger' \(module file:\/\/\S+\/kernel-with-runtime\.js\): a runtime is being built inside one of ringkernel's kernel workers.*Define kernels in modules of their own/m,
    );
    assert.equal(ran.stdout.match(/RK_KERNEL_MODULE/g)?.length, 1, 'one refusal, in the program itself');
  });
});
