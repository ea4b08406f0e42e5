// The prebuild (WEIGHTMIX_PORTABLE) links libstdc++ in; its std::random_device refers to arc4random, which
// glibc has only since 2.36, and that one reference would raise the prebuild's glibc floor from 2.34 to 2.36.
// weightmix never uses random_device; this hidden definition answers the reference with getrandom (glibc 2.25).
#include <cstdint>  // defines __GLIBC__ on glibc

#if defined(WEIGHTMIX_PORTABLE) && defined(__GLIBC__)
#include <sys/random.h>

#include <cerrno>
#include <cstdlib>

extern "C" __attribute__((visibility("hidden"))) uint32_t arc4random(void) noexcept {
  uint32_t v = 0;
  for (;;) {
    if (getrandom(&v, sizeof v, 0) == static_cast<ssize_t>(sizeof v)) return v;
    if (errno != EINTR) std::abort();  // as glibc's own arc4random does when no entropy can be had
  }
}
#endif
