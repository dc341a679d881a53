// Opening a file beneath a document root without ever leaving it: the
// path is resolved by the kernel with openat2(RESOLVE_BENEATH) (Linux 5.6+),
// or else component by component with O_NOFOLLOW, symbolic links read and
// resolved here under the same rule. No libuv, no HTTP: errno in, errno out.
#pragma once

#include <sys/stat.h>

#include <string_view>

#include "conf/model.h"

namespace pasture::worker::files {

// Opens `rel` (segments separated by '/', no leading '/', no "." or ".."
// segment, no NUL: a path normalize_path() made) beneath the directory
// `root_fd` for reading, with O_NONBLOCK (a FIFO never blocks the loop).
// Symbolic links follow `policy`: Off, none is followed; Beneath, followed
// while the resolution stays under the root (an absolute link, or one that
// climbs above it, is refused); On, followed anywhere. Returns the
// descriptor, with its fstat in `st`, or -errno: ENOENT, ENOTDIR, EACCES;
// ELOOP or EXDEV for a link the policy refuses.
int open_beneath(int root_fd, std::string_view rel, conf::StaticFiles::Symlinks policy, struct stat* st);

// Tests: false forces the component-by-component walk (as on a kernel
// without openat2). PASTURE_NO_OPENAT2=1 in the environment does too.
void use_openat2(bool on);

}  // namespace pasture::worker::files
