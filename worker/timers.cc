#include "worker/timers.h"

namespace pasture::worker {

TimerList::TimerList(uint32_t timeout_ms) : timeout_ms_(timeout_ms) {
  head_.prev = head_.next = &head_;
}

void timer_disarm(TimerNode* n) {
  if (!n->list) return;
  n->prev->next = n->next;
  n->next->prev = n->prev;
  n->prev = n->next = nullptr;
  n->list = nullptr;
}

void TimerList::arm(TimerNode* n, uint64_t now_ms) {
  timer_disarm(n);
  n->deadline = now_ms + timeout_ms_;
  n->list = this;
  n->prev = head_.prev;
  n->next = &head_;
  head_.prev->next = n;
  head_.prev = n;
}

bool TimerList::due(const TimerNode* n, uint64_t now_ms) const {
  // Armed at deadline - timeout: a node (re-)armed during this walk was armed
  // at now_ms and waits for the next one, even with a zero timeout, so a
  // callback that re-arms its own node cannot keep the walk going.
  return n->deadline <= now_ms && n->deadline - timeout_ms_ < now_ms;
}

void TimerList::expire(uint64_t now_ms) {
  // Reads the head afresh after every callback: a callback may disarm, re-arm
  // or free any node, this one's or another's.
  while (head_.next != &head_ && due(head_.next, now_ms)) {
    TimerNode* n = head_.next;
    timer_disarm(n);
    n->fire(n);
  }
}

TimerList* Timers::list(uint32_t timeout_ms) {
  for (auto& l : lists_)
    if (l->timeout_ms() == timeout_ms) return l.get();
  lists_.push_back(std::make_unique<TimerList>(timeout_ms));
  return lists_.back().get();
}

void Timers::expire(uint64_t now_ms) {
  // By index: a callback that arms a duration not seen before appends a list
  // and may reallocate lists_ under this walk (the lists themselves never
  // move). A list appended now holds only nodes armed now: none is due.
  for (size_t i = 0; i < lists_.size(); i++) lists_[i]->expire(now_ms);
}

}  // namespace pasture::worker
