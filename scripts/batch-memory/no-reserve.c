/* Measurement only (scripts/batch-memory/run.sh): posix_fallocate as a no-op. Btrfs writes into
 * reserved extents uncompressed, so the engine's up-front reservation would defeat the compressing
 * filesystem that lets 16 × 8 GB of zeros fit. Nothing else changes: memory is what is measured. */
#define _GNU_SOURCE
#include <sys/types.h>

int posix_fallocate(int fd, off_t offset, off_t len) {
  (void)fd;
  (void)offset;
  (void)len;
  return 0;
}

int posix_fallocate64(int fd, off_t offset, off_t len) {
  (void)fd;
  (void)offset;
  (void)len;
  return 0;
}
