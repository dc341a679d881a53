// An etcd source of the resolver process (`servers_from = etcd://...`,
// master/resolver.h): the keys under a prefix, kept up to date.
//
// First a range (POST /v3/kv/range, key = prefix, range_end = prefix_end):
// every key and the store's revision. Then a watch (POST /v3/watch with
// start_revision = revision + 1), a response that never ends: one JSON
// message per chunk, each event a PUT or a DELETE with its mod_revision.
// The range and the watch's connect are blocking with resolve_timeout (the
// resolver does one thing at a time); the watch's stream is read without
// blocking from the resolver's poll loop, so a change reaches the workers
// as soon as etcd sends it.
//
// A hung etcd (stopped, a gateway or proxy in front of a dead or
// leaderless one) is noticed too (found by review: nothing did): the
// watch fails when its `created` has not come within resolve_timeout, and
// while it runs, a small range on a second connection every
// resolve_interval must answer within resolve_timeout, and a change it
// finds past the watch's revision must have come through the watch by the
// next one (Watch::probe()). etcd's own progress
// notifications (asked for) come only every 10 minutes by default (3.4 and
// 3.5: --experimental-watch-progress-notify-interval), too rarely to tell
// a quiet etcd from a hung one. Requests carry Grpc-Metadata-hasleader
// (clientv3's WithRequireLeader): a member without a leader refuses them.
//
// When etcd cannot be reached, or the stream ends: the keys stay as they
// were (the caller keeps its members), the next endpoint is tried after
// resolve_min, doubling up to resolve_interval, and the watch resumes from
// the last revision seen (no range: nothing is missed, nothing repeated).
// A revision etcd has compacted away cancels the watch: then a new range.
// A different cluster (cluster_id) answering: a new range too. Each change
// of state is logged once.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/membership.h"
#include "common/shm_layout.h"
#include "conf/model.h"
#include "master/etcd_client.h"

namespace pasture::master::etcd {

struct Change {
  std::string key;    // without the prefix ("node-1", "_admin/10.0.0.5:8000")
  std::string value;  // empty when deleted
  bool deleted = false;
};

// What step() learnt: `reset` = a range: `changes` is every key now (the
// ones before that are not in it are gone).
struct Update {
  bool reset = false;
  std::vector<Change> changes;
  bool empty() const { return !reset && changes.empty(); }
};

// A member key's value, one `servers` entry (`10.0.0.5:8000 weight=2
// backup`, parsed by conf::parse_servers): an IP address and port, and only
// weight and backup (the other parameters are the source's, set on
// servers_from, like the source's weight and backup when the value has
// none). False with *err for anything else (the caller logs and skips it).
bool member_from_value(const std::string& value, const conf::UpstreamServer& src, uint8_t source, lb::Member* m,
                       std::string* err);

// An admin key's value (`<prefix>/_admin/IP:PORT`): `drain`, `maint` or
// `ready`, then maybe `weight=N` (1-65535; none = the server's own).
struct AdminValue {
  shm::AdminState state = shm::AdminState::Ready;
  uint32_t weight = 0;
  bool operator==(const AdminValue& o) const { return state == o.state && weight == o.weight; }
};
bool parse_admin_value(const std::string& value, AdminValue* out, std::string* err);
std::string admin_value_text(const AdminValue& a);
inline constexpr const char* kAdminDir = "_admin/";
// `text` as IP:PORT (`10.0.0.5:8000`, `[2001:db8::5]:8000`), written as
// lb::Member::id() writes it, the form admin keys are matched by
// (`[2001:db8::0005]:08000` becomes `[2001:db8::5]:8000`); false for
// anything else (a name, no port, an IPv6 address without brackets).
bool canonical_server(const std::string& text, std::string* id);

class Watch {
 public:
  // `src`: an Etcd source of `pool` (both outlive the Watch).
  Watch(const conf::Pool& pool, const conf::UpstreamServer& src);
  ~Watch();
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

  // >= 0 while a watch stream is open: poll it for POLLIN.
  int fd() const { return fd_; }
  // When step() has something to do other than read (connect, range, a
  // retry, the deadline of `created`, a probe).
  uint64_t next_ms() const { return fd_ < 0 ? next_ms_ : created_ ? probe_ms_ : created_by_; }
  // Does what is due at `now` and reads what arrived (never waits for the
  // stream); what changed goes into *out.
  void step(uint64_t now, Update* out);

  bool synced() const { return synced_; }
  // etcd could not be reached (or the stream broke) and has not answered since.
  bool down() const { return !down_.empty(); }
  uint64_t revision() const { return revision_; }
  std::string label() const { return src_.label(); }

 private:
  bool range(Update* out, std::string* err);
  bool open_watch(std::string* err);
  // The range of a running watch's endpoint; false if it failed or the
  // watch lags behind it.
  bool probe(std::string* err);
  // Reads the stream; false when it ended or failed (*err says why).
  bool read(Update* out, std::string* err);
  // One JSON message of the stream.
  bool message(const std::string& text, Update* out, std::string* err);
  void failed(uint64_t now, const std::string& what, const std::string& err);
  void close_stream();

  const conf::Pool& pool_;
  const conf::UpstreamServer& src_;
  std::string end_;  // prefix_end(prefix)
  size_t endpoint_ = 0;
  int fd_ = -1;
  ResponseReader reader_;
  std::string lines_;  // the stream's decoded body not yet parsed
  bool created_ = false;  // the watch stream confirmed
  uint64_t created_by_ = 0;  // the stream fails if not created by then
  uint64_t probe_ms_ = 0;    // the next probe of a created stream
  uint64_t unseen_ = 0;      // the last probe's oldest change past revision_ (0: none)
  bool synced_ = false;  // a range was read: revision_ is good for a watch
  uint64_t revision_ = 0;
  std::string cluster_;  // cluster_id of the last answer
  uint64_t next_ms_ = 0;
  uint64_t rerange_ms_ = 0;  // when the watch last asked to range again at once
  uint32_t failures_ = 0;  // in a row
  std::string down_;       // what failed, as last logged ("" = up)
};

}  // namespace pasture::master::etcd
