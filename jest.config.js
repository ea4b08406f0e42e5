/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  testTimeout: 60000,
  maxWorkers: 2,
  // A finished worker holds no handle (only its stdio pipes) and leaves its event loop at once, but the
  // process teardown after that (freeing its heap, joining threads) took 0.5-2.5 s on a loaded 2-core
  // machine, past jest's default 500 ms, and jest then reported every such worker as leaking. A real
  // leak (a timer or child left running) still never exits and is still reported, after 5 s.
  workerGracefulExitTimeout: 5000,
};
