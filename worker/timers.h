// Coarse connection timeouts without a timer handle per connection.
//
// Every timeout of the same duration lives in one FIFO list: arming appends
// with deadline now+duration, so each list stays sorted by deadline and
// expiry only looks at list heads. One uv_timer per worker ticks every
// kTickMs. Arm/disarm are O(1) and allocate nothing, which keeps idle
// keep-alive connections small (nginx keeps one rbtree of timers for the
// same reason).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace pasture::worker {

class TimerList;

struct TimerNode {
  TimerNode* prev = nullptr;
  TimerNode* next = nullptr;
  TimerList* list = nullptr;
  uint64_t deadline = 0;
  void (*fire)(TimerNode*) = nullptr;  // called once at expiry, already disarmed
  void* owner = nullptr;
  bool armed() const { return list != nullptr; }
};

class TimerList {
 public:
  explicit TimerList(uint32_t timeout_ms);
  uint32_t timeout_ms() const { return timeout_ms_; }
  void arm(TimerNode* n, uint64_t now_ms);
  // Fire every node whose deadline passed and that was armed before now_ms;
  // nodes armed by the callbacks fire in a later walk.
  void expire(uint64_t now_ms);
  bool empty() const { return head_.next == &head_; }

 private:
  bool due(const TimerNode* n, uint64_t now_ms) const;

  uint32_t timeout_ms_;
  TimerNode head_;  // sentinel of a circular list
};

void timer_disarm(TimerNode* n);

// All lists of one worker, keyed by duration. A TimerList never moves once
// made (TimerNode::list points at it); callbacks may arm any duration, new
// ones included.
class Timers {
 public:
  static constexpr uint32_t kTickMs = 100;
  TimerList* list(uint32_t timeout_ms);
  void arm(TimerNode* n, uint32_t timeout_ms, uint64_t now_ms) { list(timeout_ms)->arm(n, now_ms); }
  void expire(uint64_t now_ms);

 private:
  std::vector<std::unique_ptr<TimerList>> lists_;
};

}  // namespace pasture::worker
