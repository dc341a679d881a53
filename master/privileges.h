// Running as an unprivileged user: `--user`/`--group` (paster's options) and
// the server section's `user`/`group` (gunicorn's keys). paster switches
// (initgroups, setgid, setuid) before it binds, so it cannot bind a port
// below 1024 as another user; pasture switches once the master has bound
// every listener, as nginx and gunicorn do, and before it starts anything
// (app processes, workers, the health checker), so all of them run as the
// user too. Also: handing the files the dropped master must still write or
// remove to the user, and PR_SET_DUMPABLE.
#pragma once

#include <sys/types.h>

#include <string>

#include "conf/model.h"

namespace pasture::master {

struct ServeOptions;

// Who to become. `uid` is meaningful with set_user, `gid` with either.
struct RunAs {
  bool set_user = false;
  bool set_group = false;  // a group was named (else the user's primary group)
  uid_t uid = 0;
  gid_t gid = 0;
  std::string user_name, group_name;
  bool active() const { return set_user || set_group; }
  // The same uid and gid (names aside).
  bool same_ids(const RunAs& o) const;
  // "user nobody (uid 65534), group nogroup (gid 65534)", for logs.
  std::string text() const;
};

// Resolves a user and a group, each a name or a number the passwd / group
// database knows (either may be empty). The gid is the group's, else the
// user's primary group (for a numeric uid too; paster keeps gid 0 there).
// False + `err` in paster's words ("Bad username: 'x'; no such user exists").
bool resolve_run_as(const std::string& user, const std::string& group, RunAs* out, std::string* err);

// --user/--group when either is given (they replace the config's pair),
// else the server section's user/group.
bool wanted_run_as(const conf::ServerSettings& s, const ServeOptions& opts, RunAs* out, std::string* err);

// paster's "Changing user to U:G (uid:gid)" (G is "(unknown)" without a
// group, as paster prints it) or "Changing group to G (gid)", no newline.
std::string changing_message(const RunAs& r);

// This process already runs as `r` (real, effective and saved ids).
bool runs_as(const RunAs& r);

// Becomes `r`: initgroups(user, gid) (setgroups({gid}) for a group alone),
// setgid, setuid; then makes sure the way back is closed: setuid(0) and
// setgid(0) must fail. With `keep_bind_service`, CAP_NET_BIND_SERVICE stays
// (permitted, effective, inheritable and ambient, so a USR2 upgrade's new
// master has it too) for reuse_port workers binding their own socket on a
// port below 1024; they give it up once bound. A process that already runs
// as `r` changes nothing. False + `err` naming the failed call.
bool drop_privileges(const RunAs& r, bool keep_bind_service, std::string* err);

// Hands a file the master opened as root (pid file, --log-file, access log)
// to `r`, so that once dropped it can still truncate, reopen (USR1) or
// rewrite it (a USR2 upgrade's new master). Only a regular file with a
// single link is changed, opened without following a symbolic link: a link
// planted in a directory the user may write must not hand it another file.
// `create`: the file is created (0644) if missing, as nginx opens its logs
// as root. Not a file (/dev/stdout): nothing to do, true.
bool give_file(const std::string& path, const RunAs& r, bool create, std::string* err);
// The same for a unix listening socket's file that bind() just made (inode
// `ino`), so the dropped master can remove it at exit from a sticky
// directory such as /tmp.
bool give_socket_file(const std::string& path, ino_t ino, const RunAs& r, std::string* err);

// PR_SET_DUMPABLE: off in every process holding secrets unless the server
// section says core_dumps = true. A uid change resets it (to
// fs.suid_dumpable), so it is set again after drop_privileges().
void set_dumpable(bool on);

// The first port an unprivileged process may bind
// (net.ipv4.ip_unprivileged_port_start; 1024 when unreadable).
int unprivileged_port_start();

}  // namespace pasture::master
