#!/usr/bin/python3
"""Snapshot the resources of one proxy: all processes of its process group
plus every descendant of its root PID (in case a worker moved to its own
group), summed.

    procstat.py ROOT_PID            -> one line of key=value pairs
    procstat.py ROOT_PID --clear-peak  reset VmHWM (peak RSS) of them all
    procstat.py ROOT_PID --pids     their PIDs (for cleanup)
    procstat.py OUR_PID --foreign  CPU ticks of every process that is NOT
             OUR_PID or its descendant (nor a kernel thread), counting
             reaped children (cutime+cstime) too: how busy the rest of the
             machine was, e.g. someone compiling during the benchmark.

Fields:
  ticks      utime+stime of all processes (each process's stat already sums
             its threads), in clock ticks (os.sysconf SC_CLK_TCK per second)
  cpu_ns     the same CPU time to the nanosecond: the scheduler's run time
             of every live thread (/proc/PID/task/TID/schedstat, first
             field), summed; 0 when the kernel has no schedstat. A thread
             that exited is in `ticks` but no longer here (render.py's
             run_cpu takes the ticks then)
  nproc      number of processes
  rss_kb     sum of VmRSS of all processes
  hwm_kb     sum of VmHWM (peak RSS since start or since --clear-peak)
  workers    worker processes: the root's direct children if it has any
             (pre-fork master/worker servers: nginx, pasture), else the
             root itself (threaded servers: haproxy, paster)
  worker_rss_kb  sum of VmRSS of those workers
  threads    total threads
Why a helper: /proc/PID/stat's comm field may contain spaces and
parentheses, and we want one consistent definition for every proxy.
"""
import os
import sys


def read_stat(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    # Fields after the last ')' start at field 3 (state).
    rest = s[s.rindex(")") + 2:].split()
    return {
        "state": rest[0],
        "ppid": int(rest[1]),
        "pgrp": int(rest[2]),
        "ticks": int(rest[11]) + int(rest[12]),  # utime + stime
        "cticks": int(rest[13]) + int(rest[14]),  # cutime + cstime
    }


def read_status(pid):
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


def cpu_ns(pid):
    """Nanoseconds on a CPU of every live thread of PID (schedstat)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for t in tids:
        try:
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def all_stats(zombies=False):
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = read_stat(int(d))
            if st and (zombies or st["state"] != "Z"):
                stats[int(d)] = st
    return stats


def descendants(stats, keep):
    changed = True
    while changed:
        changed = False
        for p, st in stats.items():
            if p not in keep and st["ppid"] in keep:
                keep.add(p)
                changed = True
    return keep


def foreign_ticks(ours):
    """CPU ticks of every process but those in `ours` (pids), their
    descendants and kernel threads, reaped children included."""
    stats = all_stats(zombies=True)
    mine = descendants(stats, set(ours))
    total = 0
    for p, st in stats.items():
        if p in mine or p == 2 or st["ppid"] == 2:  # ours, or kernel threads
            continue
        total += st["ticks"] + st["cticks"]
    return total


def foreign(ours):
    print(f"foreign_ticks={foreign_ticks({ours})}")


def members(root):
    stats = all_stats()
    if root not in stats:
        return {}
    pgrp = stats[root]["pgrp"]
    keep = {p for p, st in stats.items() if st["pgrp"] == pgrp}
    # Add descendants of root, whatever their group.
    keep.add(root)
    descendants(stats, keep)
    return {p: stats[p] for p in keep}


def main():
    root = int(sys.argv[1])
    if "--foreign" in sys.argv[2:]:
        return foreign(root)
    procs = members(root)
    if "--pids" in sys.argv[2:]:
        print(" ".join(map(str, sorted(procs))))
        return
    if "--clear-peak" in sys.argv[2:]:
        for p in procs:
            try:
                with open(f"/proc/{p}/clear_refs", "w") as f:
                    f.write("5")  # 5 = reset the peak RSS (VmHWM)
            except OSError:
                pass
        return
    if not procs:
        print("ticks=0 cpu_ns=0 nproc=0 rss_kb=0 hwm_kb=0 workers=0 worker_rss_kb=0 threads=0")
        return
    status = {p: read_status(p) for p in procs}
    workers = [p for p, st in procs.items() if st["ppid"] == root] or [root]
    print(" ".join(f"{k}={v}" for k, v in [
        ("ticks", sum(st["ticks"] for st in procs.values())),
        ("cpu_ns", sum(cpu_ns(p) for p in procs)),
        ("nproc", len(procs)),
        ("rss_kb", sum(s.get("VmRSS", 0) for s in status.values())),
        ("hwm_kb", sum(s.get("VmHWM", 0) for s in status.values())),
        ("workers", len(workers)),
        ("worker_rss_kb", sum(status[p].get("VmRSS", 0) for p in workers)),
        ("threads", sum(s.get("Threads", 1) for s in status.values())),
    ]))


if __name__ == "__main__":
    main()
