// A per-thread stack of freed blocks of one size, for the objects a worker
// makes and drops per connection or per request (ClientConn, its Request).
// glibc's tcache keeps 7 blocks of a size; a churn of tens of connections
// falls through to its bins (_int_malloc, unlink_chunk: about 0.2 µs a
// request in bench's `close` shape, perf cpu-clock 2026-12-04). What is
// over Keep goes back to malloc, so a burst pins at most Keep × Size. A
// build with AddressSanitizer uses plain new/delete (a reused block would
// hide a use-after-free from it).
#pragma once

#include <cstddef>
#include <new>

// GCC says ASan with __SANITIZE_ADDRESS__, clang (the fuzz builds) with
// __has_feature (review 57).
#if defined(__SANITIZE_ADDRESS__)
#define PASTURE_FREE_LIST_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PASTURE_FREE_LIST_OFF 1
#endif
#endif

namespace pasture::worker {

template <size_t Size, unsigned Keep = 256>
class FreeList {
 public:
  static void* take() {
#if !defined(PASTURE_FREE_LIST_OFF)
    Stack& s = stack();
    if (Node* n = s.head) {
      s.head = n->next;
      s.count--;
      return n;
    }
#endif
    return ::operator new(Size);
  }
  static void give(void* p) {
#if !defined(PASTURE_FREE_LIST_OFF)
    Stack& s = stack();
    if (s.count < Keep) {
      auto* n = static_cast<Node*>(p);
      n->next = s.head;
      s.head = n;
      s.count++;
      return;
    }
#endif
    ::operator delete(p);
  }

 private:
  static_assert(Size >= sizeof(void*));
  struct Node {
    Node* next;
  };
  struct Stack {
    Node* head = nullptr;
    unsigned count = 0;
  };
  static Stack& stack() {
    thread_local Stack s;
    return s;
  }
};

}  // namespace pasture::worker
