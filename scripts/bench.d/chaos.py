#!/usr/bin/python3
"""scripts/chaos, one proxy: start two upstreams (chaos_upstream.py) and the
proxy, drive keep-alive load (chaos_load.py) and apply the faults in turn;
write what happened as JSON for chaos_render.py.

    chaos.py --proxy pasture|nginx|haproxy --port P --upstreams P1,P2
             --dir DIR --out FILE [--quick] [--read-timeout S]
             [--send-timeout S] [--pidfile F] -- PROXY COMMAND...

The proxy command runs in its own session; nginx daemonizes (its master is
read from --pidfile, and only a daemon accepts nginx's USR2 upgrade).
Every pid this script starts, or learns of, is written to DIR/pids so that
scripts/chaos can kill what is left if this script is killed itself.

Phases, in order (a fault that does not apply to a proxy is skipped and
reported as such):
  baseline    no fault
  upgrade     binary upgrade: USR2, then QUIT to the old master once the new
              one serves (HAProxy: USR2 to its master, which re-executes)
  reloads     N reloads (pasture, nginx: HUP; HAProxy: USR2 to its master),
              each once its new workers run
  scaling     pasture only: TTIN, then TTOU, N times
  worker-kill kill -9 of the worker holding the most client connections
              (stopped with SIGSTOP for the instant they are counted),
              every 2 s; a master that exits then (HAProxy) is started again
              after 1 s, as a supervisor would
  upstream-kill  kill -9 of upstream 1, started again after a few seconds
  non-reader  clients that ask for 32 MiB and never read: when does the
              proxy close them (its send timeout), and its RSS meanwhile
  calm        no fault: slowloris's reference
  slowloris   N connections sending one header byte every 10 s, alongside
              the load
  stall       upstream 2 answers with the head and half the body, then
              nothing, until the phase ends (the proxy's read timeout fires)
Snapshots of every proxy process (RSS, fds by kind) are taken with the load
paused and the upstreams' idle connections closed (SIGHUP to them): at the start, at "mid" and
at the end. "mid" follows the phases that replace processes (upgrade to
worker-kill) and a primer (slowloris and the non-readers for 2 s, so that
buffer pools and malloc arenas are at their high-water mark): from mid to
the end the processes are the same, and what grows there is what the
connection faults leave behind.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import procstat  # noqa: E402  (bench.d/procstat.py: process trees, /proc/PID/status)

HERE = os.path.dirname(os.path.abspath(__file__))
PY = "/usr/bin/python3"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def now():
    return time.monotonic()


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def alive(pid):
    st = procstat.read_stat(pid)
    return st is not None and st["state"] != "Z"


def wait_for(pred, timeout, step=0.05):
    end = now() + timeout
    while now() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def http_ok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: chaos\r\nConnection: close\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


# ------------------------------------------------------------ /proc/net --
def tcp_table():
    """inode -> (local port, remote port, state) for every TCP socket, and
    a list of (local port, remote port, inode) for orphan checks."""
    by_inode, rows = {}, []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    p = line.split()
                    lport = int(p[1].rsplit(":", 1)[1], 16)
                    rport = int(p[2].rsplit(":", 1)[1], 16)
                    st, inode = p[3], int(p[9])
                    rows.append((lport, rport, inode))
                    if inode:
                        by_inode[inode] = (lport, rport, st)
        except OSError:
            pass
    return by_inode, rows


def fd_kinds(pid, port, upstreams, table):
    """fds of PID: total and by kind (client, upstream, listen, other)."""
    kinds = {"total": 0, "client": 0, "upstream": 0, "listen": 0, "other": 0}
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return kinds
    for fd in names:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        kinds["total"] += 1
        m = re.match(r"socket:\[(\d+)\]", target)
        t = table.get(int(m.group(1))) if m else None
        if t is None:
            kinds["other"] += 1
        elif t[2] == "0A":
            kinds["listen"] += 1
        elif t[0] == port:
            kinds["client"] += 1
        elif t[1] in upstreams:
            kinds["upstream"] += 1
        else:
            kinds["other"] += 1
    return kinds


# ---------------------------------------------------------------- helpers --
class Load:
    """chaos_load.py in a child process, driven over its stdin."""

    def __init__(self, port, conns, timeout):
        self.p = subprocess.Popen([PY, os.path.join(HERE, "chaos_load.py"), str(port), str(conns), "100",
                                   str(timeout)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def cmd(self, line, reply=None):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        if reply:
            got = self.p.stdout.readline().strip()
            if not got.startswith(reply):
                raise RuntimeError(f"load generator: '{line}' answered '{got}'")
            return got

    def phase(self, name):
        self.cmd("phase " + name)

    def stop(self):
        got = self.cmd("stop", "result ")
        self.p.wait(10)
        return json.loads(got[len("result "):])


class Upstream:
    def __init__(self, port, name, logdir, pids):
        self.port, self.name, self.logdir, self.pids = port, name, logdir, pids
        self.p = None

    def start(self):
        logf = open(os.path.join(self.logdir, f"{self.name}.log"), "a")
        self.p = subprocess.Popen([PY, os.path.join(HERE, "chaos_upstream.py"), str(self.port), self.name],
                                  stdout=logf, stderr=subprocess.STDOUT)
        self.pids.add(self.p.pid)
        if not wait_for(lambda: http_ok(self.port), 10):
            raise RuntimeError(f"upstream {self.name} not answering on {self.port}")

    def kill(self):
        self.p.kill()
        self.p.wait()

    def signal(self, sig):
        self.p.send_signal(sig)

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


# ------------------------------------------------------------------ proxy --
class Proxy:
    def __init__(self, a, pids):
        self.a, self.kind, self.port, self.pids = a, a.proxy, a.port, pids
        self.upstreams = set(a.upstream_ports)
        # nginx writes to its error log (-e); the others to stdout and stderr.
        self.logpath = os.path.join(a.dir, "error.log" if a.proxy == "nginx" else "proxy.log")
        self.popen = None
        self.master = None

    def start(self):
        logf = open(self.logpath, "a")
        self.popen = subprocess.Popen(self.a.cmd, stdout=logf, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        if self.kind == "nginx":  # daemonizes: the launcher exits, the master writes its pid
            self.popen.wait(10)
            self.popen = None
            if not wait_for(lambda: self.read_pidfile() is not None, 10):
                raise RuntimeError("nginx wrote no pid file; log: " + self.log_tail())
            self.master = self.read_pidfile()
        else:
            self.master = self.popen.pid
        self.pids.add(self.master)
        if not wait_for(lambda: http_ok(self.port) and len(self.workers()) >= self.a.workers_min, 15):
            raise RuntimeError(f"{self.kind} not answering on {self.port}; log: " + self.log_tail())

    def read_pidfile(self, path=None):
        try:
            with open(path or self.a.pidfile) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def log_tail(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()[-600:].replace("\n", " | ")
        except OSError:
            return ""

    def log_count(self, text):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read().count(text)
        except OSError:
            return 0

    def running(self):
        if self.popen is not None and self.popen.pid == self.master:
            return self.popen.poll() is None
        return alive(self.master)

    def tree(self):
        return procstat.members(self.master) if self.running() else {}

    def workers(self):
        return sorted(p for p, st in self.tree().items() if st["ppid"] == self.master)

    def wait_new_workers(self, old, timeout=15):
        """Until the master has as many children not in `old` as it had workers."""
        want = max(1, self.a.workers_min)
        return wait_for(lambda: len(set(self.workers()) - set(old)) >= want, timeout)

    def reload(self):
        """Signals a reload and waits for its workers; sends the signal again
        when the master has not acted on it within 5 s (HAProxy's master
        misses a USR2 now and then). Returns how many were sent, or None."""
        old = self.workers()
        for sent in range(1, 4):
            os.kill(self.master, signal.SIGUSR2 if self.kind == "haproxy" else signal.SIGHUP)
            if self.wait_new_workers(old, 5):
                return sent
        return None

    def upgrade(self):
        """Binary upgrade as the operator does it; returns notes."""
        t0 = now()
        old_master = self.master
        if self.kind == "haproxy":
            if not self.reload():
                raise RuntimeError("USR2: no new worker; log: " + self.log_tail())
            return {"how": "USR2 to the master (it re-executes itself, as on a reload)",
                    "new_workers_s": round(now() - t0, 2)}
        if self.kind == "pasture":
            served = self.log_count("serving on")
            os.kill(old_master, signal.SIGUSR2)
            if not wait_for(lambda: self.log_count("serving on") > served, 20):
                raise RuntimeError("USR2: the new master never served; log: " + self.log_tail())
            with open(self.logpath, errors="replace") as f:
                new = int(re.findall(r"SIGUSR2: started new master .*?, pid (\d+)", f.read())[-1])
        else:  # nginx: the new master takes the pid file, the old one's goes to .oldbin
            os.kill(old_master, signal.SIGUSR2)
            if not wait_for(lambda: self.read_pidfile() not in (None, old_master), 20):
                raise RuntimeError("USR2: nginx started no new master; log: " + self.log_tail())
            new = self.read_pidfile()
            if not wait_for(lambda: len([p for p, st in procstat.members(new).items()
                                         if st["ppid"] == new]) >= self.a.workers_min, 15):
                raise RuntimeError("USR2: the new nginx master has no workers")
        self.pids.add(new)
        serving = now() - t0
        time.sleep(0.2)
        t1 = now()
        os.kill(old_master, signal.SIGQUIT)
        if self.popen is not None and self.popen.pid == old_master:
            self.popen.wait(40)
        gone = wait_for(lambda: not alive(old_master), 40)
        self.master = new
        return {"how": "USR2, then QUIT to the old master once the new one serves",
                "new_master_serving_s": round(serving, 2),
                "old_master_gone_s": round(now() - t1, 2) if gone else None}

    def stop(self):
        if self.master is None:
            return
        procs = list(procstat.members(self.master)) if alive(self.master) else []
        try:
            os.kill(self.master, signal.SIGTERM)
        except OSError:
            pass
        if self.popen is not None:
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                pass
        wait_for(lambda: not any(alive(p) for p in procs), 10)
        for p in procs:
            if alive(p):
                os.kill(p, signal.SIGKILL)


# ---------------------------------------------------------------- phases --
class Run:
    def __init__(self, a):
        self.a = a
        self.q = a.quick
        self.pids = PidFile(os.path.join(a.dir, "pids"))
        self.ups = [Upstream(p, f"up{i + 1}", a.dir, self.pids) for i, p in enumerate(a.upstream_ports)]
        self.proxy = Proxy(a, self.pids)
        self.load = None
        self.phases = []
        self.snapshots = {}
        self.notes = []

    def other_ticks(self):
        """CPU used by processes that are neither this run's nor the proxy's
        (daemons leave our process tree): how busy the rest of the machine is."""
        return procstat.foreign_ticks({os.getppid(), *self.proxy.tree()})

    # Snapshot of every proxy process, with the load paused.
    def snapshot(self, label):
        self.load.cmd("pause", "paused")
        time.sleep(0.2)
        for u in self.ups:
            u.signal(signal.SIGHUP)  # closes its idle connections

        def upstream_socks():
            table, _ = tcp_table()
            return sum(fd_kinds(p, self.a.port, self.proxy.upstreams, table)["upstream"] for p in self.proxy.tree())
        wait_for(lambda: upstream_socks() == 0, 5)
        time.sleep(0.3)
        table, _ = tcp_table()
        tree = self.proxy.tree()
        procs = []
        for pid, st in sorted(tree.items()):
            role = "master" if pid == self.proxy.master else "worker" if st["ppid"] == self.proxy.master else "other"
            status = procstat.read_status(pid)
            procs.append({"pid": pid, "role": role, "rss_kb": status.get("VmRSS", 0),
                          "fds": fd_kinds(pid, self.a.port, self.proxy.upstreams, table)})
        self.snapshots[label] = procs
        self.load.cmd("resume", "resumed")

    def phase(self, name, label, fn=None, applies=True, why=""):
        entry = {"name": name, "label": label, "applies": applies}
        if not applies:
            entry["why"] = why
            self.phases.append(entry)
            return
        log(f"{self.a.proxy}: {label}")
        self.load.phase(name)
        t0, other0 = now(), self.other_ticks()
        try:
            entry["info"] = fn() if fn else {}
        except Exception as e:  # a fault that could not be applied: say so, go on
            entry["error"] = f"{type(e).__name__}: {e}"
            log(f"{self.a.proxy}: {name}: {entry['error']}")
        entry["seconds"] = round(now() - t0, 2)
        entry["other_cpu_pct"] = round((self.other_ticks() - other0) * 100 / CLK_TCK / (now() - t0))
        entry["rss_kb"] = {pid: procstat.read_status(pid).get("VmRSS", 0) for pid in self.proxy.tree()}
        if not self.proxy.running():
            entry.setdefault("info", {})["proxy_exited"] = True
            self.restart_proxy(entry)
        self.phases.append(entry)

    def restart_proxy(self, entry):
        st = procstat.read_stat(self.proxy.master)
        log(f"{self.a.proxy}: master {self.proxy.master} exited (/proc: {st and st['state']}); "
            f"starting it again in 1 s; log: {self.proxy.log_tail()[-300:]}")
        time.sleep(1)
        self.proxy.start()
        entry.setdefault("info", {})["restarted"] = True

    def f_sleep(self, s):
        return lambda: time.sleep(s) or {}

    def f_upgrade(self):
        info = self.proxy.upgrade()
        time.sleep(1.5)  # old workers drain while the load goes on
        return info

    def f_reloads(self):
        n = 5 if self.q else 20
        slow, resent = [], 0
        for _ in range(n):
            t0 = now()
            sent = self.proxy.reload()
            if not sent:
                raise RuntimeError("a reload brought no new workers after 3 signals; log: " + self.proxy.log_tail())
            resent += sent - 1
            slow.append(now() - t0)
            time.sleep(0.3)
        time.sleep(1.5)
        return {"reloads": n, "slowest_s": round(max(slow), 2), "resent": resent}

    def f_scaling(self):
        n = 2 if self.q else 5
        base = len(self.proxy.workers())
        for _ in range(n):
            os.kill(self.proxy.master, signal.SIGTTIN)
            if not wait_for(lambda: len(self.proxy.workers()) == base + 1, 10):
                raise RuntimeError("TTIN: no new worker")
            time.sleep(0.4)
            os.kill(self.proxy.master, signal.SIGTTOU)
            if not wait_for(lambda: len(self.proxy.workers()) == base, 10):
                raise RuntimeError("TTOU: the worker did not exit")
            time.sleep(0.3)
        time.sleep(1)
        return {"pairs": n}

    def f_worker_kill(self):
        kills = []
        n = 3 if self.q else 5
        for i in range(n):
            t_next = now() + 2
            if not self.proxy.running():
                self.restart_proxy({})
                kills.append({"restarted": True})
            table, _ = tcp_table()
            held = {w: fd_kinds(w, self.a.port, self.proxy.upstreams, table)["client"]
                    for w in self.proxy.workers()}
            if held:
                # Stopped while its connections are counted, so that none is
                # accepted between the count and the kill.
                victim = max(held, key=lambda w: (held[w], w))
                os.kill(victim, signal.SIGSTOP)
                wait_for(lambda: (procstat.read_stat(victim) or {}).get("state") in ("T", "Z", None), 1, 0.002)
                conns = fd_kinds(victim, self.a.port, self.proxy.upstreams, tcp_table()[0])["client"]
                os.kill(victim, signal.SIGKILL)
                kills.append({"pid": victim, "client_conns": conns})
            time.sleep(max(0.0, t_next - now()))
            if not self.proxy.running():  # HAProxy: the master exits with its worker
                kills[-1]["master_exited"] = True
        time.sleep(1)
        return {"kills": kills, "planned": n, "in_flight": sum(k.get("client_conns", 0) for k in kills)}

    def f_upstream_kill(self):
        down = 2 if self.q else 3
        self.ups[0].kill()
        time.sleep(down)
        self.ups[0].start()
        time.sleep(3)
        return {"down_s": down}

    def f_stall(self):
        s = 5 if self.q else 6
        self.ups[1].signal(signal.SIGUSR1)
        time.sleep(s)
        self.ups[1].signal(signal.SIGUSR2)
        time.sleep(1.5)
        return {"stalled_s": s}

    def slowloris_n(self):
        return 500 if self.q else 2000

    def start_slowloris(self, status):
        """chaos_slowloris.py; returns (process, seconds until every connection was open)."""
        p = subprocess.Popen([PY, os.path.join(HERE, "chaos_slowloris.py"), str(self.a.port),
                              str(self.slowloris_n()), "10", status])
        self.pids.add(p.pid)
        t0 = now()
        if not wait_for(lambda: os.path.exists(status) or p.poll() is not None, 40):
            p.kill()
            raise RuntimeError("slowloris connections not open after 40 s")
        return p, now() - t0

    def f_slowloris(self):
        hold = 11 if self.q else 21  # bytes at 0, 10 (and 20) s
        status = os.path.join(self.a.dir, "slowloris.status")
        p, opened_s = self.start_slowloris(status)
        try:
            time.sleep(hold)
        finally:
            p.terminate()
            p.wait(20)
        with open(status) as f:
            info = {k: int(v) for k, v in (kv.split("=") for kv in f.read().split())}
        info.update({"connections": self.slowloris_n(), "open_s": round(opened_s, 2), "held_s": hold})
        time.sleep(1)
        return info

    def open_non_readers(self):
        socks = []
        for _ in range(2 if self.q else 4):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", self.a.port))
            s.sendall(b"GET /big HTTP/1.1\r\nHost: chaos\r\n\r\n")
            socks.append(s)
        return socks

    def f_non_reader(self):
        limit = self.a.send_timeout + 5
        before = sum(procstat.read_status(p).get("VmRSS", 0) for p in self.proxy.tree())
        socks = self.open_non_readers()
        n = len(socks)
        ports = {s.getsockname()[1] for s in socks}
        t0 = now()
        closed, peak = {}, before
        while now() - t0 < limit and len(closed) < n:
            time.sleep(0.25)
            _, rows = tcp_table()
            held = {rport for lport, rport, inode in rows if lport == self.a.port and rport in ports and inode}
            for port in ports - held - set(closed):
                closed[port] = round(now() - t0, 2)
            peak = max(peak, sum(procstat.read_status(p).get("VmRSS", 0) for p in self.proxy.tree()))
        for s in socks:
            s.close()
        time.sleep(1)
        return {"clients": n, "closed_after_s": sorted(closed.values()), "still_open": n - len(closed),
                "rss_before_kb": before, "rss_peak_kb": peak, "send_timeout_s": self.a.send_timeout}

    def f_primer(self):
        """The connection faults once, briefly, before the mid snapshot: the
        workers' buffer pools and malloc arenas reach their high-water
        mark, so that growth from mid to end is what the full faults leave
        behind (a leak grows on each round, a cache does not)."""
        socks = self.open_non_readers()
        status = os.path.join(self.a.dir, "primer.status")
        p, _ = self.start_slowloris(status)
        time.sleep(2)
        p.terminate()
        p.wait(20)
        for s in socks:
            s.close()
        time.sleep(1)
        return {}

    def run(self):
        a, pasture = self.a, self.a.proxy == "pasture"
        for u in self.ups:
            u.start()
        self.proxy.start()
        self.load = Load(a.port, 8, 10)
        time.sleep(1 if self.q else 2)  # warm-up (the load's "start" phase)
        self.snapshot("start")
        self.phase("baseline", "baseline, no fault", self.f_sleep(3 if self.q else 4))
        self.phase("upgrade", "binary upgrade (USR2)", self.f_upgrade)
        self.phase("reloads", f"{5 if self.q else 20} reloads", self.f_reloads)
        self.phase("scaling", f"{2 if self.q else 5} TTIN/TTOU pairs", self.f_scaling, applies=pasture,
                   why="no signal changes the number of workers (only a reload)")
        self.phase("worker-kill", "kill -9 of a worker every 2 s", self.f_worker_kill)
        self.phase("primer", f"primer: {self.slowloris_n():,} slowloris connections and the non-readers for 2 s",
                   self.f_primer)
        self.snapshot("mid")
        # Passive health keeps a failed upstream out for 10 s (max_fails = 1,
        # fail_timeout = 10s in pasture and nginx): the two upstream faults
        # are that far apart, so neither meets the other's aftermath.
        self.phase("upstream-kill", "kill -9 of an upstream, back after 3 s", self.f_upstream_kill)
        self.phase("non-reader", "clients that never read a 32 MiB answer", self.f_non_reader)
        self.phase("calm", "no fault (slowloris's reference)", self.f_sleep(4 if self.q else 6))
        self.phase("slowloris", f"{self.slowloris_n():,} slowloris connections", self.f_slowloris)
        self.phase("stall", "an upstream stalls mid-response", self.f_stall)
        self.snapshot("end")
        stats = {p["name"]: p for p in self.load.stop()}
        for e in self.phases:
            if e["applies"]:
                e["load"] = summarize(stats.get(e["name"]))
        return {"proxy": a.proxy, "phases": self.phases, "snapshots": self.snapshots,
                "warmup": summarize(stats.get("start")), "read_timeout_s": a.read_timeout,
                "send_timeout_s": a.send_timeout, "quick": self.q}

    def close(self):
        if self.load and self.load.p.poll() is None:
            self.load.p.kill()
        self.proxy.stop()
        for u in self.ups:
            u.stop()


def pct(sorted_ms, q):
    if not sorted_ms:
        return None
    return sorted_ms[min(len(sorted_ms) - 1, int(q * len(sorted_ms)))]


def summarize(p):
    if not p:
        return None
    lat, fl = sorted(p["lat_ms"]), sorted(p["fail_ms"])
    # p99 of each whole second, and their median: what the phase does to
    # every second, which a burst from another process on the machine does
    # not move the way it moves the p99 of the whole phase.
    by_s = {}
    for ms, sec in zip(p["lat_ms"], p["lat_s"]):
        by_s.setdefault(sec, []).append(ms)
    last = int(p["seconds"])  # the last second is partial
    p99s = sorted(pct(sorted(v), 0.99) for sec, v in by_s.items() if sec < last and len(v) >= 100)
    return {"seconds": p["seconds"], "sent": p["sent"], "ok": p["ok"], "fail": p["fail"],
            "p50_ms": pct(lat, 0.50), "p99_ms": pct(lat, 0.99), "max_ms": lat[-1] if lat else None,
            "p99_1s_median_ms": p99s[len(p99s) // 2] if p99s else None,
            "fail_min_ms": fl[0] if fl else None, "fail_max_ms": fl[-1] if fl else None,
            "events": p["events"][:20]}


class PidFile(set):
    """A set of pids mirrored to a file (for scripts/chaos's cleanup)."""

    def __init__(self, path):
        super().__init__()
        self.path = path

    def add(self, pid):
        super().add(pid)
        with open(self.path, "a") as f:
            f.write(f"{pid}\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True, choices=["pasture", "nginx", "haproxy"])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--upstreams", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--pidfile")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--read-timeout", type=float, default=3)
    ap.add_argument("--send-timeout", type=float, default=10)
    ap.add_argument("cmd", nargs="+")
    a = ap.parse_args()
    a.upstream_ports = [int(p) for p in a.upstreams.split(",")]
    a.workers_min = 1 if a.proxy == "haproxy" else a.workers  # HAProxy: one process, nbthread threads
    run = Run(a)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = run.run()
    finally:
        run.close()
    with open(a.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
