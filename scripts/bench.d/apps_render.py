#!/usr/bin/python3
"""Turn `scripts/bench --apps`'s raw records into the markdown report.

    apps_render.py RESULTS_FILE

Lines of RESULTS_FILE (written by bench.d/apps.sh):
  run app=A row=R round=N key=value ...   one measured run
  fail app=A row=R round=N reason=...     a row that did not start or died
  meta KEY text...                        the report's header
  row R label...                          the rows, in order, with labels
"""
import os
import sys
from collections import defaultdict

TCK = os.sysconf("SC_CLK_TCK")
NOISY_PCT = 10  # foreign CPU (% of a core) above which a run is flagged
APPS = {
    "hello": "hello world (plain WSGI callable, through paste.deploy)",
    "pyramid": "Pyramid (tests/wsgi/pasture_pyramid, GET /hello/bench?x=1)",
    "sleep": "sleep (time.sleep(20 ms) per request)",
}


def parse(path):
    runs, fails, meta, rows = defaultdict(list), defaultdict(list), {}, []
    with open(path) as f:
        for line in f:
            kind, _, rest = line.rstrip("\n").partition(" ")
            if kind == "meta":
                k, _, v = rest.partition(" ")
                meta[k] = v
            elif kind == "row":
                name, _, label = rest.partition(" ")
                rows.append((name, label))
            elif kind in ("run", "fail"):
                head, _, reason = rest.partition(" reason=")
                rec = dict(kv.partition("=")[::2] for kv in head.split())
                rec["reason"] = reason
                (runs if kind == "run" else fails)[(rec["app"], rec["row"])].append(rec)
    return runs, fails, meta, rows


def num(v, default=0.0):
    try:
        return float(v)
    except (TypeError, ValueError):
        return default


def metrics(r, duration):
    req = num(r["requests"])
    secs = num(r["duration_us"], 1) / 1e6
    w = int(num(r.get("workers"), 1))
    rss, root = num(r["rss_kb"]) / 1024, num(r["root_rss_kb"]) / 1024
    procs = int(num(r["nproc"]))
    # Pre-fork servers: what the master does not use, per worker (pasture's
    # process mode: one pasture worker plus one app process). One-process
    # servers: the process.
    per_worker = rss if r["kind"] == "single" else (rss - root) / max(w, 1)
    return {
        "rps": req / secs if secs else 0.0,
        "p50": num(r["p50_us"]) / 1000,
        "p99": num(r["p99_us"]) / 1000,
        "cpu": num(r["ticks"]) * (1e6 / TCK) / req if req else None,
        "err": int(num(r["sockerr"]) + num(r["non2xx"])),
        "procs": procs,
        "rss": rss,
        "per_worker": per_worker,
        "slots": int(num(r["slots"])),
        "noisy": num(r["foreign"]) * 100 / TCK / duration > NOISY_PCT,
        "probe": r.get("probe", "000") == "200",
        "probe_ms": num(r.get("probe_s")) * 1000,
        "probe_max": num(r.get("probe_max")),
        "queued": int(num(r.get("queued"))),
    }


def median_run(rs):
    """The median run by req/s (the lower middle one for an even count)."""
    rs = sorted(rs, key=lambda m: m["rps"])
    return rs[(len(rs) - 1) // 2]


def fmt_ms(v):
    return f"{v:.2f} ms" if v < 100 else f"{v:.0f} ms"


def table(app, rows, runs, fails, params):
    conc, sleep_ms = int(params["conc"]), int(params["sleep_ms"])
    duration = int(params["duration"])
    sleep = app == "sleep"
    head = ["server", "procs", "req/s", "p50", "p99", "new client", "CPU µs/req", "errors", "RSS/worker MB",
            "RSS total MB"]
    if sleep:
        head += ["slots", "ideal req/s", "of ideal"]
    out = [f"### {APPS.get(app, app)}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes, noisy = [], False
    for name, label in rows:
        rs = [metrics(r, duration) for r in runs.get((app, name), [])]
        fl = fails.get((app, name), [])
        if not rs:
            reason = fl[0]["reason"] if fl else "not run"
            out.append(f"| {label} | – | failed: {reason.replace('|', '/')} |" + " – |" * (len(head) - 3))
            continue
        m = median_run(rs)
        flag = " ⚠" if m["noisy"] else ""
        probe = fmt_ms(m["probe_ms"]) if m["probe"] else f"none in {m['probe_max']:g} s"
        cells = [label + flag, str(m["procs"]), f"{m['rps']:,.0f}", fmt_ms(m["p50"]), fmt_ms(m["p99"]), probe,
                 f"{m['cpu']:.0f}" if m["cpu"] is not None else "?", str(m["err"]),
                 f"{m['per_worker']:.1f}", f"{m['rss']:.1f}"]
        if sleep:
            ideal = min(m["slots"], conc) * 1000 / sleep_ms
            cells += [str(m["slots"]), f"{ideal:,.0f}", f"{m['rps'] / ideal:.0%}"]
        out.append("| " + " | ".join(cells) + " |")
        for f in fl:
            notes.append(f"{label}: round {f['round']} failed: {f['reason']}")
        if not m["probe"]:
            notes.append(f"{label}: a new connection got no answer within {m['probe_max']:g} s while wrk ran, "
                         f"with {m['queued']} connections waiting in the listen socket's accept queue; wrk counts "
                         "answered requests only, so connections left waiting are in neither req/s nor latency")
        noisy = noisy or m["noisy"]
    if noisy:
        notes.append(f"⚠ other processes used over {NOISY_PCT}% of a core during that row's run: rerun on a quiet "
                     "machine")
    out += [""] + [f"- {n}" for n in notes] + ([""] if notes else [])
    return out


def main():
    runs, fails, meta, rows = parse(sys.argv[1])
    params = dict(kv.partition("=")[::2] for kv in meta.get("params", "").split())
    apps = []
    for app, _ in list(runs) + list(fails):
        if app not in apps:
            apps.append(app)
    apps.sort(key=lambda a: list(APPS).index(a) if a in APPS else len(APPS))
    w, c = params.get("workers", "?"), params.get("conc", "?")
    lines = [
        "## WSGI servers side by side (`scripts/bench --apps`)",
        "",
        f"{meta.get('date', '?')}; {meta.get('machine', '?')}.",
        f"W = {w} processes per pre-fork server; wrk -t{params.get('wrk_threads', '?')} -c{c}, "
        f"{params.get('warmup', '?')} s warm-up + {params.get('duration', '?')} s measured, "
        f"median of {params.get('rounds', '?')} round(s) by req/s; {meta.get('pinning', '?')}.",
        f"Versions: {meta.get('versions', '?')}.",
        "",
    ]
    for app in apps:
        lines += table(app, rows, runs, fails, params)
    lines += [
        "- procs: the server's processes (master included); pasture process mode has W pasture workers and W "
        "app processes",
        "- CPU µs/req: utime+stime of all the server's processes over the measured run / requests "
        f"(tick: {1000 // TCK} ms); on a 2-core box wrk shares core 0 with the servers when W = 2",
        "- new client: one request on a fresh connection half-way through the measured run (curl): what a "
        "client arriving under load waits",
        "- errors: responses ≥ 400 plus socket errors (connect, read, write, timeout > 2 s) as wrk counts them",
        "- RSS/worker: pre-fork servers: (all RSS − the master's) / W; waitress and paster: their one process",
        f"- sleep: slots = requests the server runs at once (processes × threads); ideal = min(slots, {c}) / "
        f"{params.get('sleep_ms', '?')} ms",
        "- gunicorn sync closes the connection after each response and Paste#http speaks HTTP/1.0: wrk "
        "reconnects for every request to them",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
