#!/usr/bin/python3
"""Turn scripts/bench's raw records into the markdown report.

    render.py RESULTS_FILE

Each line of RESULTS_FILE is `TYPE key=value ...` with TYPE one of
env, versions, run, mem, big, gzip, skip (skip's `reason=` runs to end of line).
"""
import os
import statistics
import sys
from collections import defaultdict

TCK = os.sysconf("SC_CLK_TCK")
NOISY_PCT = 10  # foreign CPU (% of a core) above which a run is flagged
ORDER = {"pasture": 0, "pasture-nocount": 0.5, "nginx": 1, "haproxy": 2, "floor": 3, "paster": 4}


def parse(path):
    recs = defaultdict(list)
    with open(path) as f:
        for line in f:
            kind, _, rest = line.rstrip("\n").partition(" ")
            rec = {}
            if kind in ("skip", "died"):
                head, _, reason = rest.partition(" reason=")
                rec["reason"] = reason
                rest = head
            for kv in rest.split():
                k, _, v = kv.partition("=")
                rec[k] = v
            recs[kind].append(rec)
    return recs


def num(v, default=0.0):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


TARGET = 0.5  # pasture's CPU above the floor ÷ the better peer's, at most
PEERS = ("nginx", "haproxy")


def summarize(runs):
    """One row from a cell's rounds: req/s, p50, p99 and CPU are each the
    median over the rounds (not the figures of one chosen round: with 1
    worker req/s is capped by the client's core, so the round with the
    median req/s says nothing about CPU); the other fields are the median
    req/s round's; `foreign` is the busiest round's."""
    runs = sorted(runs, key=lambda m: m["rps"])
    row = dict(runs[(len(runs) - 1) // 2], n=len(runs))
    for k in ("rps", "p50", "p99", "cpu"):
        vals = [m[k] for m in runs if m[k] is not None]
        row[k] = statistics.median(vals) if vals else None
    row["foreign"] = max(m["foreign"] for m in runs)
    return row


def above_floor(runs, floor_runs):
    """A proxy's CPU above the floor, paired by round: the median over the
    rounds of (its CPU − the floor's CPU in the same round). The servers
    of a cell run side by side and take turns, so the runs of one round are
    seconds apart: pairing cancels the host's drift."""
    floor = {m["round"]: m["cpu"] for m in floor_runs or [] if m["cpu"] is not None}
    diffs = [m["cpu"] - floor[m["round"]] for m in runs or []
             if m["cpu"] is not None and m["round"] in floor]
    return statistics.median(diffs) if diffs else None


def versus_better(cell, above):
    """The target's cells for one row: pasture's CPU above the floor ÷ the
    better peer's (the peer that spends less above it), and pasture's req/s
    and p99 against that peer. `cell`: proxy -> summarized row (or None);
    `above`: proxy -> CPU above the floor (above_floor) or None."""
    peers = [p for p in PEERS if above.get(p) is not None and cell.get(p)]
    better = min(peers, key=lambda p: above[p]) if peers else None
    ratio = rps = p99 = "–"
    if better and above.get("pasture") is not None and cell.get("pasture"):
        b = above[better]
        if above["pasture"] <= 0:
            ratio = f"0 (pasture at the floor; {better} {b:+.1f}) ✓"
        elif b > 0:
            x = above["pasture"] / b
            ratio = f"{x:.2f} ({better}) " + ("✓" if x <= TARGET else "✗")
        else:
            ratio = f"– ({better} at the floor)"
        pm, bm = cell["pasture"], cell[better]
        rps = f"{pm['rps'] / bm['rps']:.2f}×" if bm["rps"] else "–"
        p99 = f"{pm['p99'] / bm['p99']:.2f}×" if bm["p99"] else "–"
    return ratio, rps, p99


def fmt_ratio(a, b):
    if not a or not b:
        return "–"
    return f"{a / b:.2f}×"


def run_cpu(r, req):
    """CPU µs per request: from the scheduler's nanoseconds (cpu_ns) where
    the record has them, else from clock ticks; None when the proxy died
    during the run (ticks < 0)."""
    if not req or num(r["ticks"]) < 0:
        return None
    ticks = num(r["ticks"]) * (1e6 / TCK) / req
    if num(r.get("cpu_ns")) <= 0:
        return ticks
    ns = num(r["cpu_ns"]) / 1000 / req
    # A thread that exited during the run (a pool that replaces its threads:
    # Paste's) is gone from /proc/PID/task with its run time, which the
    # process's ticks still count: clearly more ticks than nanoseconds (over
    # 5 % and two ticks of rounding) means that, and the ticks stand.
    return ticks if ticks > ns * 1.05 + 2e6 / TCK / req else ns


def run_metrics(r):
    req = num(r["requests"])
    dur = num(r["duration_us"], 1) / 1e6
    return {
        "round": r.get("round"),
        "rps": req / dur if dur else 0.0,
        "p50": num(r["p50_us"]) / 1000,
        "p99": num(r["p99_us"]) / 1000,
        "cpu": run_cpu(r, req),
        "err": int(num(r["sockerr"]) + num(r["non2xx"])),
        "req": req,
        "up1": num(r["up1"]),
        "up2": num(r["up2"]),
        "upconns": num(r.get("upconns")),
        # CPU used by processes that are not the bench's, in % of one core.
        "foreign": num(r.get("foreign")) / TCK / dur * 100 if dur else 0.0,
    }


def main():
    recs = parse(sys.argv[1])
    env = recs["env"][0] if recs["env"] else {}
    ver = recs["versions"][0] if recs["versions"] else {}
    skips = {s["proxy"]: s["reason"] for s in recs["skip"]}
    out = []
    w = out.append

    # One row per (proxy, workers, concurrency): medians over the rounds.
    groups = defaultdict(list)
    for r in recs["run"]:
        groups[(r["proxy"], int(r["workers"]), int(r["conc"]))].append(run_metrics(r))
    med = {key: summarize(rounds) for key, rounds in groups.items()}

    w("## pasture vs nginx vs HAProxy")
    w("")
    w(f"- {env.get('date', '?')}; {ver.get('cpus', '?')} CPUs "
      f"({ver.get('cpu', '?').replace('_', ' ')}), kernel {ver.get('kernel', '?')}; "
      f"nginx {ver.get('nginx', '?')}, HAProxy {ver.get('haproxy', '?')}, "
      f"wrk {ver.get('wrk', '?')}, pasture {ver.get('pasture', '?')}")
    w(f"- wrk -t1, {env.get('warmup', '?')} s warm-up + {env.get('duration', '?')} s measured "
      f"per row; req/s, p50, p99 and CPU each the median of {env.get('rounds', '?')} round(s) "
      "(the servers of a worker count run side by side, each on its own port, and take "
      "turns: each is measured once per concurrency in each round, in an order rotated "
      "per round; one start of each server per worker count); "
      f"whole run {num(ver.get('elapsed')) / 60:.1f} min")
    w("- pinning: wrk and both nginx upstreams on core 0; a 1-worker proxy on core 1 alone; "
      "a 2-worker proxy on cores 0-1, i.e. **sharing core 0 with wrk and the upstreams**, "
      "so 2-worker rows measure a contended box, not 2 free cores")
    w("- proxy CPU = the scheduler's run time of all its processes and threads (master + "
      "workers; /proc/PID/task/TID/schedstat, in ns) over the measured run / requests completed "
      "(clock ticks where threads exited during the run, as paster's pool replaces them, and in "
      "the gzip table); "
      "with 1 worker req/s is capped by core 0 (wrk and the upstreams), not by the proxy's core")
    busiest = max((m["foreign"] for rs in groups.values() for m in rs), default=0.0)
    noisy = busiest > NOISY_PCT
    w(f"- other processes on the machine used at most {busiest:.0f}% of a core during "
      "any measured run" + (f" — **the machine was not quiet: rows marked ⚠ (>{NOISY_PCT}%) "
                            "are disturbed; rerun on an idle machine**" if noisy else ""))
    w("")

    w("### Throughput (13-byte response, keep-alive, 2 upstreams round-robin)")
    w("")
    w("| proxy | workers | conc | req/s | p50 | p99 | proxy CPU µs/req | errors "
      "| req/s vs nginx | req/s vs haproxy | CPU/req vs nginx | CPU/req vs haproxy |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    warnings = []
    churn = set()   # runs that opened many upstream connections
    for key in sorted(med, key=lambda k: (ORDER.get(k[0], 9), k[1], k[2])):
        p, wk, c = key
        m = med[key]
        ratios = ["", "", "", ""]
        if p == "pasture":
            n, h = med.get(("nginx", wk, c)), med.get(("haproxy", wk, c))
            ratios = [fmt_ratio(m["rps"], n and n["rps"]), fmt_ratio(m["rps"], h and h["rps"]),
                      fmt_ratio(m["cpu"], n and n["cpu"]), fmt_ratio(m["cpu"], h and h["cpu"])]
        label = {"paster": "paster (Paste#proxy, 1 upstream)",
                 "floor": "floor (reference, not HTTP)",
                 "pasture-nocount": "pasture, counters compiled out"}.get(p, p)
        workers = wk if p != "paster" else "threads"
        flag = " ⚠" if m["foreign"] > NOISY_PCT else ""
        cpu = "–" if m["cpu"] is None else f"{m['cpu']:.1f}"
        w(f"| {label}{flag} | {workers} | {c} | {m['rps']:,.0f} | {m['p50']:.2f} ms | {m['p99']:.2f} ms "
          f"| {cpu} | {m['err']} | " + " | ".join(ratios) + " |")
        if m["req"] and m["upconns"] > 0.01 * m["req"]:
            churn.add((p, wk, c, m["req"] / m["upconns"]))
        # Plausibility: the proxy must really forward, to both upstreams.
        for r in groups[key]:
            fwd = r["up1"] + r["up2"]
            if r["req"] and fwd < 0.95 * r["req"]:
                warnings.append(f"{p} w={wk} c={c}: upstreams saw {fwd:.0f} requests "
                                f"for {r['req']:.0f} completed")
            if p != "paster" and fwd and not 0.4 <= r["up1"] / fwd <= 0.6:
                warnings.append(f"{p} w={wk} c={c}: uneven split {r['up1']:.0f}/{r['up2']:.0f}")
        if p != "paster" and m["n"] < num(env.get("rounds"), m["n"]):
            warnings.append(f"{p} w={wk} c={c}: {m['n']} of {env.get('rounds')} rounds measured; "
                            "its figures are the median of those")
    for d in recs["died"]:
        warnings.append(f"{d['proxy']} ({d['workers']} workers) {d['reason']}")
    for p, reason in sorted(skips.items(), key=lambda kv: ORDER.get(kv[0], 9)):
        w(f"| {p} | – | – | skipped: {reason.replace('|', '/')} | | | | | | | | |")
    w("")
    w("errors = wrk socket errors (connect/read/write/timeout) + responses that "
      "were not 2xx/3xx. Ratios > 1× mean pasture is faster (req/s) or costlier (CPU/req).")
    if churn:
        w("")
        w("Upstream connection churn (new upstream connections, read from the "
          "upstreams' stub_status): " + "; ".join(
              (f"{p} c={c}" if p == "paster" else f"{p} w={wk} c={c}") + f": one per {per:,.0f} requests"
              for p, wk, c, per in sorted(churn, key=lambda x: (ORDER.get(x[0], 9), x[1], x[2], x[3]))) +
          "." + (" nginx's `keepalive 64` caches at most 64 idle upstream connections "
                 "per worker (all servers together), so as concurrency nears or passes "
                 "64 it closes and reopens the excess." if any(x[0] == "nginx" for x in churn) else "")
          + (" Paste#proxy opens one per request." if any(x[0] == "paster" for x in churn) else ""))
    w("")

    # --counters: the same code with counting compiled out.
    nc_keys = sorted(k for k in med if k[0] == "pasture-nocount")
    if nc_keys:
        w("### What counting costs (pasture minus pasture-nocount, same run)")
        w("")
        w("`pasture-nocount` is this code built with `-DPASTURE_COUNTERS=OFF`: every traffic "
          "counter and latency histogram update and the latency clock compiled out. A difference "
          "within a run's noise (rounds differ by ~1 µs/req on a busy machine) means counting is free.")
        w("")
        w("| workers | conc | pasture µs/req | without counters | difference | req/s | without counters |")
        w("|---:|---:|---:|---:|---:|---:|---:|")
        for _, wk, c in nc_keys:
            a, b = med.get(("pasture", wk, c)), med[("pasture-nocount", wk, c)]
            if not a or a["cpu"] is None or b["cpu"] is None:
                continue
            w(f"| {wk} | {c} | {a['cpu']:.1f} | {b['cpu']:.1f} | {a['cpu'] - b['cpu']:+.1f} "
              f"| {a['rps']:,.0f} | {b['rps']:,.0f} |")
        w("")
        ir = {r["proxy"]: r["per_req"] for r in recs.get("ir", [])}
        if "pasture" in ir and "pasture-nocount" in ir:
            a, b = int(ir["pasture"]), int(ir["pasture-nocount"])
            w(f"User-space instructions per proxied request in the worker, counted by callgrind "
              f"(`scripts/bench.d/instructions.sh`, immune to a busy machine): {a:,} with counters, "
              f"{b:,} without: counting costs {a - b:+,} instructions per request "
              f"({100.0 * (a - b) / b:+.1f} % of pasture's own instructions; the kernel's share of a "
              f"request is not in either figure).")
            w("")

    # The floor: what the kernel's loopback TCP alone costs per request.
    floor_keys = sorted(k for k in med if k[0] == "floor")
    if floor_keys:
        w("### Above the floor (proxy CPU µs/req minus the floor's in the same round, median over the rounds)")
        w("")
        w("`floor` (scripts/bench.d/floor.c) is not a proxy: it forwards bytes with the "
          "four socket calls per request any proxy must make (recv from the client, send "
          "upstream, recv the answer, send it back) on edge-triggered epoll, and nothing "
          "else — no parsing, timers, logging or allocation; with 2 workers each has its "
          "own SO_REUSEPORT listener, so clients are spread evenly, as the proxies spread "
          "theirs. Its CPU per request is the kernel's loopback TCP work (plus, with 2 "
          "workers, the cost of sharing core 0), which no user-space design avoids; what a "
          "proxy spends above it is its own code.")
        w("")
        w(f"Target: pasture's CPU above the floor ≤ {TARGET} × the better peer's (nginx or "
          "HAProxy, whichever spends less above it in that row), req/s and p99 no worse.")
        w("")
        w("| workers | conc | floor | pasture | nginx | haproxy | pasture above floor "
          "| nginx above | haproxy above | pasture ÷ better peer | req/s vs better | p99 vs better |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for _, wk, c in floor_keys:
            f = med[("floor", wk, c)]["cpu"]
            cell = {p: med.get((p, wk, c)) for p in ("pasture",) + PEERS}
            above = {p: above_floor(groups.get((p, wk, c)), groups[("floor", wk, c)]) for p in cell}
            ratio, rps, p99 = versus_better(cell, above)
            def cpu(p):
                return "–" if cell[p] is None or cell[p]["cpu"] is None else f"{cell[p]['cpu']:.1f}"
            def up(p):
                return "–" if above[p] is None else f"{above[p]:+.1f}"
            fl = "–" if f is None else f"{f:.1f}"
            w(f"| {wk} | {c} | {fl} | {cpu('pasture')} | {cpu('nginx')} | {cpu('haproxy')} "
              f"| {up('pasture')} | {up('nginx')} | {up('haproxy')} | {ratio} | {rps} | {p99} |")
        w("")

    if recs["mem"]:
        hold = env.get("hold", "?")
        w(f"### Memory (idle, and with {hold} idle keep-alive connections held)")
        w("")
        w("| proxy | workers | RSS/worker after start | RSS/worker after warm-up "
          "| total RSS, all processes | connections held / still open "
          "| RSS per idle keep-alive connection |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        threaded = False
        for m in sorted(recs["mem"], key=lambda m: (ORDER.get(m["proxy"], 9), int(m["workers"]))):
            wk, nw = int(m["workers"]), int(num(m["nworkers"], 1)) or 1
            div, mark = nw, ""
            if nw == 1 and wk > 1:      # one process, wk threads (HAProxy)
                div, mark, threaded = wk, " †", True
            held = int(num(m.get("held")))
            delta = (num(m["held_rss_kb"]) - num(m["warm_rss_kb"])) * 1024
            per = f"{delta / held:,.0f} B" if held else "–"
            w(f"| {m['proxy']} | {wk} | {num(m['start_worker_rss_kb']) / div:,.0f} KiB{mark} "
              f"| {num(m['warm_worker_rss_kb']) / div:,.0f} KiB{mark} | {num(m['warm_rss_kb']):,.0f} KiB "
              f"| {held} / {m.get('alive', '?')} | {per} |")
        w("")
        w("RSS/worker = RSS of the worker processes / their count (pre-fork: the "
          "master's children; the master is only in the total). Per-connection = "
          "growth of the total RSS while the connections are held / connections held.")
        if threaded:
            w("† HAProxy runs one process with `nbthread` threads: its whole RSS "
              "divided by the thread count.")
        w("")

    if recs["big"]:
        w(f"### Large bodies (1 worker; {env.get('big_n', '?')} × 10 MiB each way on one "
          "keep-alive connection, curl)")
        w("")
        w("| proxy | download MB/s | peak RSS during download | upload MB/s "
          "| peak RSS during upload | failed transfers |")
        w("|---|---:|---:|---:|---:|---:|")
        by = defaultdict(dict)
        for b in recs["big"]:
            by[b["proxy"]][b["dir"]] = b
        for p in sorted(by, key=lambda p: ORDER.get(p, 9)):
            cells, failed = [], 0
            for d in ("down", "up"):
                b = by[p].get(d)
                if not b:
                    cells += ["–", "–"]
                    continue
                secs = num(b["seconds"])
                cells.append(f"{num(b['bytes']) / 1e6 / secs:,.0f}" if secs else "–")
                grow = num(b["peak_kb"]) - num(b.get("base_kb"), num(b["peak_kb"]))
                cells.append(f"{num(b['peak_kb']) / 1024:,.1f} MiB (+{grow / 1024:,.1f})")
                failed += int(num(b["transfers"])) - int(num(b["ok"]))
            w(f"| {p} | " + " | ".join(cells) + f" | {failed} |")
        w("")
        w("MB = 10⁶ bytes. Peak RSS = sum of VmHWM over the proxy's processes "
          "(master included), reset just before each direction; in parentheses its "
          "growth over the RSS at that moment." +
          (" nginx runs with its defaults here: it buffers each request body, and "
           "responses that outrun the client, to temp files (in the bench's temp dir)."
           if "nginx" in by else ""))
        w("")

    if skips:
        w("### Skipped")
        w("")
        for p, reason in skips.items():
            w(f"- {p}: {reason}")
        w("")
    if warnings:
        w("### Warnings")
        w("")
        for x in warnings:
            w(f"- {x}")
        w("")
    if recs["gzip"]:
        w("")
        w("### gzip (100 KiB text/plain answer, level 6, 1 worker, c=50, Accept-Encoding: gzip)")
        w("")
        w("pasture: `[filter:gz] use = egg:Paste#gzip` in a pipeline in front of the pool; "
          "nginx: `gzip on; gzip_comp_level 6` on the proxy location.")
        w("")
        w("| proxy | req/s | p50 | p99 | proxy CPU µs/req | compressed bytes | errors |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for r in sorted(recs["gzip"], key=lambda r: ORDER.get(r["proxy"], 9)):
            req = num(r["requests"])
            dur = num(r["duration_us"], 1) / 1e6
            cpu = num(r["ticks"]) * (1e6 / TCK) / req if req else 0
            w(f"| {r['proxy']} | {req / dur:,.0f} | {num(r['p50_us']) / 1000:.2f} ms | "
              f"{num(r['p99_us']) / 1000:.2f} ms | {cpu:.0f} | {r.get('bytes', '?')} | {r.get('errors', '?')} |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
