// Replaces the global operator new/delete of sign_test (this test binary only) to count the heap
// allocations of the calling thread between start_counting_allocations() and
// stop_counting_allocations(). signer_test.cc uses it to check that signing stays off the heap.
// In a translation unit of its own so that GCC never inlines these into callers (it would then
// warn -Wmismatched-new-delete about malloc/free behind new/delete).
#include <cstdlib>
#include <new>

namespace {
thread_local bool g_counting = false;
thread_local int g_allocations = 0;
}  // namespace

namespace metronome {
void start_counting_allocations() {
  g_allocations = 0;
  g_counting = true;
}
int stop_counting_allocations() {
  g_counting = false;
  return g_allocations;
}
}  // namespace metronome

void* operator new(std::size_t size) {
  if (g_counting) ++g_allocations;
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t size) {
  return operator new(size);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
