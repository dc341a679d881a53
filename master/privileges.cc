#include "master/privileges.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "common/log.h"
#include "conf/pyutil.h"
#include "master/master.h"

namespace pasture::master {
namespace {

bool number(const std::string& s, long* out) {
  char* end = nullptr;
  errno = 0;
  *out = strtol(s.c_str(), &end, 10);
  return !s.empty() && !*end && *out >= 0 && errno == 0;
}

std::string failed(const std::string& call, int e) { return call + " failed: " + strerror(e); }

// `*err` = what `call` failed with (errno); false.
bool fail(std::string* err, const std::string& call) {
  *err = failed(call, errno);
  return false;
}

// capset(2) without libcap: `caps` (a CAP_* bit mask of the first 32) as
// the permitted, effective and inheritable sets.
bool set_caps(uint32_t caps) {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  data[0].permitted = data[0].effective = data[0].inheritable = caps;
  return syscall(SYS_capset, &hdr, data) == 0;
}

}  // namespace

bool RunAs::same_ids(const RunAs& o) const {
  if (active() != o.active()) return false;
  return !active() || (set_user == o.set_user && (!set_user || uid == o.uid) && gid == o.gid);
}

std::string RunAs::text() const {
  std::string out;
  if (set_user) out = "user " + user_name + " (uid " + std::to_string(uid) + "), ";
  return out + "group " + group_name + " (gid " + std::to_string(gid) + ")";
}

bool resolve_run_as(const std::string& user, const std::string& group, RunAs* out, std::string* err) {
  *out = RunAs{};
  long n = 0;
  if (!group.empty()) {
    const struct group* g = number(group, &n) ? getgrgid((gid_t)n) : getgrnam(group.c_str());
    if (!g) {
      *err = "Bad group: " + conf::py::repr(group) + "; no such group exists";
      return false;
    }
    out->set_group = true;
    out->gid = g->gr_gid;
    out->group_name = g->gr_name;
  }
  if (user.empty()) return true;
  const struct passwd* pw = number(user, &n) ? getpwuid((uid_t)n) : getpwnam(user.c_str());
  if (!pw) {
    *err = "Bad username: " + conf::py::repr(user) + "; no such user exists";
    return false;
  }
  out->set_user = true;
  out->uid = pw->pw_uid;
  out->user_name = pw->pw_name;
  if (!out->set_group) {
    // The user's primary group, for a numeric uid too (paster keeps gid 0
    // there, and initgroups(user, 0) makes root a supplementary group).
    out->gid = pw->pw_gid;
    const struct group* g = getgrgid(out->gid);
    out->group_name = g ? g->gr_name : std::to_string(out->gid);
  }
  return true;
}

bool wanted_run_as(const conf::ServerSettings& s, const ServeOptions& opts, RunAs* out, std::string* err) {
  if (!opts.user.empty() || !opts.group.empty()) return resolve_run_as(opts.user, opts.group, out, err);
  if (!resolve_run_as(s.user, s.group, out, err)) {
    // conf/ checked them at load time; the databases changed since.
    const conf::SourceLoc& at = !s.user.empty() && err->rfind("Bad user", 0) == 0 ? s.user_loc : s.group_loc;
    *err = at.str() + ": " + *err;
    return false;
  }
  return true;
}

std::string changing_message(const RunAs& r) {
  if (!r.set_user) return "Changing group to " + r.group_name + " (" + std::to_string(r.gid) + ")";
  return "Changing user to " + r.user_name + ":" + (r.set_group ? r.group_name : "(unknown)") + " (" +
         std::to_string(r.uid) + ":" + std::to_string(r.gid) + ")";
}

bool runs_as(const RunAs& r) {
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0) return false;
  bool gid_ok = rg == r.gid && eg == r.gid && sg == r.gid;
  if (!r.set_user) return gid_ok && eu != 0;  // root with a group alone still sets its groups
  return gid_ok && ru == r.uid && eu == r.uid && su == r.uid;
}

bool drop_privileges(const RunAs& r, bool keep_bind_service, std::string* err) {
  if (!r.active() || runs_as(r)) return true;
  if (!r.set_user) {
    if (setgroups(1, &r.gid) != 0) return fail(err, "setgroups(" + std::to_string(r.gid) + ")");
    if (setgid(r.gid) != 0) return fail(err, "setgid(" + std::to_string(r.gid) + ")");
    return true;
  }
  // Supplementary groups: the user's (from the group database) plus gid.
  if (initgroups(r.user_name.c_str(), r.gid) != 0)
    return fail(err, "initgroups(" + r.user_name + ", " + std::to_string(r.gid) + ")");
  if (setgid(r.gid) != 0) return fail(err, "setgid(" + std::to_string(r.gid) + ")");
  bool keep = keep_bind_service && r.uid != 0;
  if (keep && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return fail(err, "prctl(PR_SET_KEEPCAPS)");
  if (setuid(r.uid) != 0) return fail(err, "setuid(" + std::to_string(r.uid) + ")");
  if (keep) {
    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    if (!set_caps(1u << CAP_NET_BIND_SERVICE)) return fail(err, "capset(CAP_NET_BIND_SERVICE)");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) != 0)
      return fail(err, "prctl(PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE)");
  }
  // No way back: a process that can become root again has dropped nothing.
  if (r.uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
    *err = "setuid(0) succeeded after dropping to uid " + std::to_string(r.uid) + "; refusing to go on";
    return false;
  }
  if (r.uid != 0 && r.gid != 0 && (setgid(0) == 0 || setegid(0) == 0)) {
    *err = "setgid(0) succeeded after dropping to gid " + std::to_string(r.gid) + "; refusing to go on";
    return false;
  }
  return true;
}

bool give_file(const std::string& path, const RunAs& r, bool create, std::string* err) {
  if (path.empty() || path == "-" || !r.active()) return true;
  int fd = log::open_no_follow(path.c_str(), create ? O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK : O_RDONLY | O_NONBLOCK,
                               0644);
  if (fd < 0) return fail(err, "open(" + path + ")");
  struct stat st;
  std::string why;
  if (fstat(fd, &st) != 0) {
    why = failed("fstat(" + path + ")", errno);
  } else if (!S_ISREG(st.st_mode)) {
    // /dev/stdout, a FIFO: nothing to hand over.
  } else if (st.st_nlink != 1) {
    why = path + " has " + std::to_string(st.st_nlink) + " links; not handing it to " + r.text();
  } else if ((r.set_user && st.st_uid != r.uid) || st.st_gid != r.gid) {
    if (fchown(fd, r.set_user ? r.uid : (uid_t)-1, r.gid) != 0) why = failed("fchown(" + path + ")", errno);
  }
  close(fd);
  if (!why.empty()) *err = why;
  return why.empty();
}

bool give_socket_file(const std::string& path, ino_t ino, const RunAs& r, std::string* err) {
  if (path.empty() || !r.active()) return true;
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode) || st.st_ino != ino) {
    *err = path + " is no longer the socket pasture bound";
    return false;
  }
  if (lchown(path.c_str(), r.set_user ? r.uid : (uid_t)-1, r.gid) != 0) {
    *err = failed("lchown(" + path + ")", errno);
    return false;
  }
  return true;
}

void set_dumpable(bool on) {
  if (prctl(PR_SET_DUMPABLE, on ? 1 : 0, 0, 0, 0) != 0)
    PLOG_WARN("prctl(PR_SET_DUMPABLE, %d) failed: %s", on ? 1 : 0, strerror(errno));
}

int unprivileged_port_start() {
  std::ifstream f("/proc/sys/net/ipv4/ip_unprivileged_port_start");
  int port = 1024;
  if (!(f >> port) || port < 0) port = 1024;
  return port;
}

// The master's part (see Master::run): after binding, before anything is
// forked.

bool Master::drop_to_user(const std::vector<Socket>& bound, std::string* err) {
  const conf::ServerSettings& s = gen_->site.server;
  if (!run_as_.active() || runs_as(run_as_)) return true;  // e.g. a USR2 upgrade's new master
  // What the dropped master still writes or removes: the socket files (at
  // stop), the pid file (a USR2 upgrade's new master rewrites it), the log
  // files (reopened on USR1), the access log (opened by each worker).
  std::string why;
  std::vector<Socket> files = bound;
  if (admin_.fd >= 0) files.push_back(admin_);  // `pasture ctl` as the user connects to it
  for (const Socket& k : files)
    if (!k.unix_path.empty() && !give_socket_file(k.unix_path, k.unix_ino, run_as_, &why))
      PLOG_WARN("%s: it stays where it is at exit", why.c_str());
  const std::string& al = s.access_log;
  std::string access_log = al == "off" || al == "none" ? "" : !al.empty() ? al : opts_.log_file;
  for (const auto& [path, create] : {std::pair{opts_.owns_pid_file ? opts_.pid_file : "", false},
                                     std::pair{opts_.log_file, false}, std::pair{access_log, true}})
    if (!give_file(path, run_as_, create, &why)) PLOG_WARN("%s", why.c_str());
  bool from_cli = !opts_.user.empty() || !opts_.group.empty();
  if (!from_cli && opts_.verbosity > 0) {  // main printed --user/--group's at paster's place
    printf("%s\n", changing_message(run_as_).c_str());
    fflush(stdout);
  }
  // reuse_port workers bind their own socket after fork: on a port below
  // 1024 they need CAP_NET_BIND_SERVICE, which the master then keeps (and
  // they drop once bound).
  int first_free = unprivileged_port_start();
  bool keep_bind = s.reuse_port && std::any_of(s.listen.begin(), s.listen.end(), [&](const conf::Listener& l) {
                     return l.unix_path.empty() && l.port > 0 && l.port < first_free;
                   });
  if (keep_bind && s.preload && !gen_->site.python_apps.empty()) {
    // The preloaded app's import would run in this process, which keeps the
    // capability for the workers' binds: its code could bind low ports.
    *err = s.loc.str() + ": preload cannot be combined with reuse_port on a port below " +
           std::to_string(first_free) + " run as another user (" + run_as_.text() + ")" +
           " (the master keeps CAP_NET_BIND_SERVICE for the workers' own sockets and would import the "
           "app with it); drop preload or reuse_port";
    return false;
  }
  if (!drop_privileges(run_as_, keep_bind, err)) {
    *err = "cannot run as " + run_as_.text() + ": " + *err;
    return false;
  }
  PLOG_INFO("listeners bound; running as %s%s", run_as_.text().c_str(),
            keep_bind ? " with CAP_NET_BIND_SERVICE (reuse_port workers bind ports below 1024)" : "");
  return true;
}

std::string Master::run_as_mismatch(const conf::Site& site) const {
  RunAs want;
  std::string err;
  if (!wanted_run_as(site.server, opts_, &want, &err)) return err;
  if (want.same_ids(run_as_) || (want.active() && runs_as(want))) return "";  // nothing to switch
  const conf::ServerSettings& s = site.server;
  std::string where = s.user_loc.line ? s.user_loc.str() + ": " : s.group_loc.line ? s.group_loc.str() + ": " : "";
  std::string now = run_as_.active() ? run_as_.text() : "the user it was started as";
  std::string next = want.active() ? want.text() : "the user it was started as";
  return where + "the master runs as " + now + " since it started, and cannot switch to " + next +
         "; changing user or group needs a restart";
}

}  // namespace pasture::master
