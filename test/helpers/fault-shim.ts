/**
 * The fault-injection shim for the reliability tests: an LD_PRELOAD library, compiled here, that slows
 * down or fails the engine's I/O in a child process.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { hashOf } from './cli';
import { testIf } from './skip';

/*
 * Interposes pread, pwrite (the engine's data I/O) and fsync (the publishing step's syncs) in a
 * child process. Only calls on files whose path contains $WEIGHTMIX_FAULT_PATH are touched:
 *   WEIGHTMIX_FAULT_SLOW=pread,fsync     ops that sleep $WEIGHTMIX_FAULT_SLEEP_US before each call
 *   WEIGHTMIX_FAULT_MIN_BYTES=N          pread/pwrite calls of fewer bytes are left alone, and so are preads at offset 0 (a
 *                                        header's first read, which takes up to 256 KiB: the engine reads data, after the header)
 *   WEIGHTMIX_FAULT_EIO=pwrite           the op that fails with EIO, after $WEIGHTMIX_FAULT_SKIP calls
 *   WEIGHTMIX_FAULT_MARK=FILE            created when a fault first fires (tests wait for it)
 */
const SHIM_SOURCE = String.raw`
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int matches(int fd) {
  const char* pattern = getenv("WEIGHTMIX_FAULT_PATH");
  if (pattern == NULL || *pattern == 0) return 0;
  char link[64], target[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n < 0) return 0;
  target[n] = 0;
  return strstr(target, pattern) != NULL;
}

static int listed(const char* var, const char* op) {
  const char* list = getenv(var);
  if (list == NULL) return 0;
  size_t len = strlen(op);
  for (const char* p = strstr(list, op); p != NULL; p = strstr(p + 1, op)) {
    if ((p == list || p[-1] == ',') && (p[len] == 0 || p[len] == ',')) return 1;
  }
  return 0;
}

static void mark(void) {
  const char* file = getenv("WEIGHTMIX_FAULT_MARK");
  if (file != NULL) {
    int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) close(fd);
  }
}

static long eioCalls;

static int fault(int fd, const char* op, size_t bytes, off_t off) {
  const char* min = getenv("WEIGHTMIX_FAULT_MIN_BYTES");
  if (bytes != (size_t)-1 && min != NULL && (bytes < (size_t)atol(min) || off == 0)) return 0;
  if (!matches(fd)) return 0;
  if (listed("WEIGHTMIX_FAULT_SLOW", op)) {
    mark();
    const char* us = getenv("WEIGHTMIX_FAULT_SLEEP_US");
    if (us != NULL) usleep((useconds_t)atol(us));
  }
  if (listed("WEIGHTMIX_FAULT_EIO", op)) {
    const char* skip = getenv("WEIGHTMIX_FAULT_SKIP");
    if (__atomic_fetch_add(&eioCalls, 1, __ATOMIC_SEQ_CST) >= (skip ? atol(skip) : 0)) {
      mark();
      errno = EIO;
      return -1;
    }
  }
  return 0;
}

typedef ssize_t (*pread_fn)(int, void*, size_t, off_t);
typedef ssize_t (*pwrite_fn)(int, const void*, size_t, off_t);
typedef int (*fsync_fn)(int);

ssize_t pread64(int fd, void* buf, size_t n, off_t off) {
  static pread_fn real;
  if (!real) real = (pread_fn)dlsym(RTLD_NEXT, "pread64");
  if (fault(fd, "pread", n, off) < 0) return -1;
  return real(fd, buf, n, off);
}
ssize_t pread(int fd, void* buf, size_t n, off_t off) { return pread64(fd, buf, n, off); }

ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) {
  static pwrite_fn real;
  if (!real) real = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite64");
  if (fault(fd, "pwrite", n, -1) < 0) return -1;
  return real(fd, buf, n, off);
}
ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) { return pwrite64(fd, buf, n, off); }

int fsync(int fd) {
  static fsync_fn real;
  if (!real) real = (fsync_fn)dlsym(RTLD_NEXT, "fsync");
  if (fault(fd, "fsync", (size_t)-1, -1) < 0) return -1;
  return real(fd);
}
`;

/** Compiles the shim (once per machine and source version); null with the reason when no C compiler works. */
export function faultShim(): { path: string } | { reason: string } {
  const file = path.join(os.tmpdir(), `weightmix-fault-shim-${hashOf(SHIM_SOURCE)}.so`);
  if (fs.existsSync(file)) return { path: file };
  const src = `${file}.${process.pid}.c`;
  fs.writeFileSync(src, SHIM_SOURCE);
  const tmp = `${file}.${process.pid}`;
  const cc = spawnSync(process.env.CC ?? 'cc', ['-shared', '-fPIC', '-O2', '-o', tmp, src, '-ldl'], { encoding: 'utf8' });
  fs.rmSync(src, { force: true });
  if (cc.error || cc.status !== 0) return { reason: `cannot compile the fault-injection shim: ${cc.error?.message ?? cc.stderr.trim()}` };
  fs.renameSync(tmp, file);
  return { path: file };
}

/**
 * The fault shim for the tests that need it, decided when a suite loads: its path, and `withShim`,
 * which registers a test, or a skipped test that names why the shim cannot be built.
 */
export function faultShimTests(): { shimPath: string; withShim: ReturnType<typeof testIf> } {
  const shim = faultShim();
  return 'path' in shim ? { shimPath: shim.path, withShim: testIf(true, '') } : { shimPath: '', withShim: testIf(false, shim.reason) };
}

export interface FaultOptions {
  /** Only files whose path contains this are touched. */
  path: string;
  /** Ops that sleep `sleepUs` before each call. */
  slow?: ('pread' | 'pwrite' | 'fsync')[];
  sleepUs?: number;
  /** pread/pwrite calls of fewer bytes, and preads at offset 0, are left alone (the CLI's header reads: the first at 0, the rest small). */
  minBytes?: number;
  /** The op that fails with EIO after `skip` calls. */
  eio?: 'pread' | 'pwrite' | 'fsync';
  skip?: number;
  /** A file the shim creates when a fault first fires. */
  mark?: string;
}

/** The environment that loads the shim with these faults. */
export function faultEnv(shim: string, f: FaultOptions): Record<string, string> {
  // A sanitizer runtime preloaded by check-sanitizers.sh must stay first.
  const preload = [process.env.LD_PRELOAD, shim].filter(Boolean).join(':');
  const env: Record<string, string> = { LD_PRELOAD: preload, WEIGHTMIX_FAULT_PATH: f.path };
  if (f.slow) env.WEIGHTMIX_FAULT_SLOW = f.slow.join(',');
  if (f.sleepUs !== undefined) env.WEIGHTMIX_FAULT_SLEEP_US = String(f.sleepUs);
  if (f.minBytes !== undefined) env.WEIGHTMIX_FAULT_MIN_BYTES = String(f.minBytes);
  if (f.eio) env.WEIGHTMIX_FAULT_EIO = f.eio;
  if (f.skip !== undefined) env.WEIGHTMIX_FAULT_SKIP = String(f.skip);
  if (f.mark) env.WEIGHTMIX_FAULT_MARK = f.mark;
  return env;
}

/**
 * A slow disk under `pathPart`: each read of at least 16 KiB past offset 0 (the engine's; the CLI's header
 * reads start at 0, the rest are smaller) takes `sleepUs`.
 */
export function slowReadsEnv(shim: string, pathPart: string, sleepUs: number): Record<string, string> {
  return faultEnv(shim, { path: pathPart, slow: ['pread'], sleepUs, minBytes: 16384 });
}
