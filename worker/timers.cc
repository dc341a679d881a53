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

void TimerList::expire(uint64_t now_ms) {
  while (head_.next != &head_ && head_.next->deadline <= now_ms) {
    TimerNode* n = head_.next;
    timer_disarm(n);
    n->fire(n);  // may re-arm n or free its owner
  }
}

TimerList* Timers::list(uint32_t timeout_ms) {
  for (auto& l : lists_)
    if (l->timeout_ms() == timeout_ms) return l.get();
  lists_.push_back(std::make_unique<TimerList>(timeout_ms));
  return lists_.back().get();
}

void Timers::expire(uint64_t now_ms) {
  for (auto& l : lists_) l->expire(now_ms);
}

}  // namespace pasture::worker
