/**
 * Tests that need what a machine may lack (a Python with torch, a C compiler for the fault shim, root
 * for tmpfs mounts, a GPU): where it is missing they are registered as skipped, with the reason in
 * their titles, so that jest's summary counts them as skipped and never as passed.
 */

/** `test` when `ok`, else a visibly skipped test whose title carries the reason. */
export function testIf(ok: boolean, reason: string) {
  return (name: string, fn: jest.ProvidesCallback, timeout?: number): void => (ok ? test(name, fn, timeout) : test.skip(`${name} [skipped: ${reason}]`, fn));
}
