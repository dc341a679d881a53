#!/usr/bin/python3
"""Turn `scripts/bench --shapes` records into the markdown report.

    shapes_render.py RESULTS_FILE

Records (one per line, `TYPE key=value ...`): env, versions, shape (one
measured run), mem (bench's memory()), skip.
"""
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from render import PEERS, TARGET, above_floor, num, parse, run_metrics, summarize, versus_better  # noqa: E402  (render.py's format)

NOISY_PCT = 10
PROXIES = ("pasture",) + PEERS + ("floor",)
SHAPES = [
    ("upclose", "upstreams close after every answer (a connect per request)"),
    ("close", "clients send `Connection: close` (an accept per request)"),
    ("c5000", "5,000 concurrent kept-alive clients"),
    ("headers", "2 KiB of cookies + 30 header fields per request"),
    ("pipeline", "16 pipelined requests per write"),
    ("64k", "64 KiB answers"),
]


def metrics(r):
    """render.py's run metrics (a shape record holds a run's fields), and
    what the shapes' report adds: requests forwarded, load, time."""
    m = run_metrics(r)
    m.update(fwd=m["up1"] + m["up2"], load=num(r.get("load1")), time=r.get("time", "?"))
    return m


def f1(v, sign=False):
    if v is None:
        return "–"
    return f"{v:+.1f}" if sign else f"{v:.1f}"


def main():
    recs = parse(sys.argv[1])
    env = recs["env"][0] if recs["env"] else {}
    ver = recs["versions"][0] if recs["versions"] else {}
    groups = defaultdict(list)
    for r in recs["shape"]:
        groups[(r["shape"], int(r["workers"]), r["proxy"])].append(metrics(r))
    med = {key: summarize(runs) for key, runs in groups.items()}
    loads = [m["load"] for runs in groups.values() for m in runs]
    busiest = max((m["foreign"] for runs in groups.values() for m in runs), default=0.0)

    out = []
    w = out.append
    w("## Traffic shapes: pasture vs nginx vs HAProxy, above the floor")
    w("")
    w(f"- {env.get('date', '?')} to {ver.get('end', '?')} (UTC); {ver.get('cpus', '?')} CPUs "
      f"({ver.get('cpu', '?').replace('_', ' ')}), kernel {ver.get('kernel', '?')}; "
      f"nginx {ver.get('nginx', '?')}, HAProxy {ver.get('haproxy', '?')}, wrk {ver.get('wrk', '?')}, "
      f"pasture {ver.get('pasture', '?')}")
    w(f"- wrk -t1 on core 0 with both upstreams; {env.get('warmup', '?')} s warm-up + "
      f"{env.get('duration', '?')} s measured per cell; req/s, p99 and CPU each the median of "
      f"{env.get('rounds', '?')} round(s); per shape and worker count the servers run side by side "
      f"and take turns, in an order rotated per round (one start of each server per cell); "
      f"c={env.get('conc', '?')} "
      "except c5000; a 1-worker proxy on core 1, a 2-worker one on cores 0-1")
    if loads:
        w(f"- load average (1 min) at the end of the measured runs: {min(loads):.2f} to "
          f"{max(loads):.2f} (at the start {env.get('load1_start', '?')}, at the end "
          f"{ver.get('load1_end', '?')}); other processes used at most {busiest:.0f}% of a core "
          "during a measured run" + (f" — **under load: cells marked ⚠ (>{NOISY_PCT}%) are "
                                     "disturbed; rerun on a quiet machine**" if busiest > NOISY_PCT else ""))
    w("- CPU = the scheduler's run time (schedstat, ns) of all the proxy's processes and threads "
      "over the measured run / answers; above the floor = the median over the rounds of (CPU − "
      "the floor's CPU in the same shape, worker count and round: seconds apart) "
      "(floor.c: -u for upclose, -C for close, -t for pipeline and 64k)")
    w("")

    w(f"### Above the floor (CPU µs per request; target: pasture ≤ {TARGET} × the better peer)")
    w("")
    w("| shape | workers | floor | pasture | nginx | haproxy | pasture above | nginx above "
      "| haproxy above | pasture ÷ better peer | req/s vs better | p99 vs better |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    shapes_seen = [s for s, _ in SHAPES if any(k[0] == s for k in med)]
    for shape in shapes_seen:
        for wk in sorted({k[1] for k in med if k[0] == shape}):
            cell = {p: med.get((shape, wk, p)) for p in PROXIES}
            fl = cell["floor"] and cell["floor"]["cpu"]
            cpu = {p: cell[p] and cell[p]["cpu"] for p in PROXIES}
            above = {p: above_floor(groups.get((shape, wk, p)), groups.get((shape, wk, "floor")))
                     for p in ("pasture",) + PEERS}
            ratio, rps, p99 = versus_better(cell, above)
            flag = " ⚠" if any(c and c["foreign"] > NOISY_PCT for c in cell.values()) else ""
            w(f"| {shape}{flag} | {wk} | {f1(fl)} | {f1(cpu['pasture'])} | {f1(cpu['nginx'])} "
              f"| {f1(cpu['haproxy'])} | {f1(above['pasture'], True)} | {f1(above['nginx'], True)} "
              f"| {f1(above['haproxy'], True)} | {ratio} | {rps} | {p99} |")
    w("")
    w("better peer = nginx or HAProxy, whichever spends less above the floor in that cell. "
      "req/s vs better > 1× and p99 vs better < 1× mean pasture is ahead.")
    w("")

    w("### Each shape")
    w("")
    w("| shape | workers | proxy | req/s | p99 | CPU µs/req | above floor | errors "
      "| upstream conns per 1k req | load (1 min) |")
    w("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    warnings = []
    for shape in shapes_seen:
        for wk in sorted({k[1] for k in med if k[0] == shape}):
            fl = (med.get((shape, wk, "floor")) or {}).get("cpu")
            for p in PROXIES:
                m = med.get((shape, wk, p))
                if not m:
                    continue
                ab = above_floor(groups[(shape, wk, p)], groups.get((shape, wk, "floor"))) \
                    if p != "floor" else None
                churn = f"{1000 * m['upconns'] / m['req']:.0f}" if m["req"] and p != "floor" else "–"
                flag = " ⚠" if m["foreign"] > NOISY_PCT else ""
                w(f"| {shape} | {wk} | {p}{flag} | {m['rps']:,.0f} | {m['p99']:.2f} ms | {f1(m['cpu'])} "
                  f"| {f1(ab, True)} | {m['err']} | {churn} | {m['load']:.2f} at {m['time']} |")
                if m["req"] and m["fwd"] < 0.95 * m["req"]:
                    warnings.append(f"{shape} {p} w={wk}: the upstreams saw {m['fwd']:.0f} requests "
                                    f"for {m['req']:.0f} answered")
                if m["n"] < num(env.get("rounds"), m["n"]):
                    warnings.append(f"{shape} {p} w={wk}: {m['n']} of {env.get('rounds')} rounds measured; "
                                    "its figures are the median of those")
    w("")
    w("errors = wrk socket errors + answers that were not 2xx/3xx (with c5000, wrk's 2 s "
      "timeouts count too). Upstream conns = new connections the upstreams accepted "
      "(stub_status) per 1,000 requests: 1,000 for upclose, near 0 where connections are reused.")
    w("")

    if recs["mem"]:
        hold = env.get("hold", "?")
        note = env.get("hold_note", "")
        w(f"### Memory: {hold} idle kept-alive connections held"
          + (f" (not 20,000: {note.replace('_', ' ')})" if note else ""))
        w("")
        w("| proxy | workers | RSS/worker after warm-up | total RSS | held / still open "
          "| RSS per idle connection | vs nginx |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        per = {}
        for m in recs["mem"]:
            held = int(num(m.get("held")))
            delta = (num(m["held_rss_kb"]) - num(m["warm_rss_kb"])) * 1024
            per[(m["proxy"], int(m["workers"]))] = delta / held if held else None
        for m in sorted(recs["mem"], key=lambda m: (PROXIES.index(m["proxy"]), int(m["workers"]))):
            wk, nw = int(m["workers"]), int(num(m["nworkers"], 1)) or 1
            div = wk if nw == 1 and wk > 1 else nw
            v = per[(m["proxy"], wk)]
            ng = per.get(("nginx", wk))
            vs = f"{v / ng:.2f}×" if m["proxy"] == "pasture" and v and ng else ""
            w(f"| {m['proxy']} | {wk} | {num(m['warm_worker_rss_kb']) / div:,.0f} KiB "
              f"| {num(m['warm_rss_kb']):,.0f} KiB | {m.get('held', '?')} / {m.get('alive', '?')} "
              f"| {'–' if v is None else f'{v:,.0f} B'} | {vs} |")
        w("")
        w("Per connection = growth of the total RSS (all processes) while the connections "
          "are held / connections held. HAProxy: one process, `nbthread` threads.")
        w("")

    skips = {s["proxy"]: s["reason"] for s in recs["skip"]}
    for d in recs["died"]:
        warnings.append(f"{d['proxy']} ({d['workers']} workers) {d['reason']}")
    if skips or warnings:
        w("### Warnings")
        w("")
        for p, reason in skips.items():
            w(f"- skipped {p}: {reason}")
        for x in warnings:
            w(f"- {x}")
        w("")
    print("\n".join(out))


if __name__ == "__main__":
    main()
