#!/usr/bin/python3
"""Markdown report of scripts/chaos from chaos.py's JSON files (one per
proxy), with pasture's targets (issue 13 §2) checked. Exit status 1 if
pasture misses one.

    chaos_render.py --date D --rev R --machine M --elapsed S RESULT.json...
"""
import argparse
import json
import sys

# What a worker's death may cost a client: the connection it was using goes.
DEATH_CAUSES = {"closed before response", "reset before response", "truncated response", "send failed"}
# Growth allowed between two snapshots of the same role: one page table or
# malloc arena step, not a leak. fds: none.
RSS_SLACK_KB = 512


def ms(v):
    if v is None:
        return "–"
    return f"{v:.2f} ms" if v < 10 else f"{v:,.0f} ms"


def n(v):
    return f"{v:,}"


def causes(fail):
    return ", ".join(f"{k} {n(v)}" for k, v in sorted(fail.items(), key=lambda kv: -kv[1]))


def failed(phase):
    load = phase.get("load") or {}
    return sum((load.get("fail") or {}).values())


def notes(ph, res):
    info, name = ph.get("info", {}), ph["name"]
    out = []
    if "error" in ph:
        out.append("could not apply: " + ph["error"])
    if name == "upgrade" and info:
        if "new_master_serving_s" in info:
            out.append(f"new master serving after {info['new_master_serving_s']} s, old one gone "
                       f"{info['old_master_gone_s']} s after QUIT")
        else:
            out.append(info.get("how", ""))
    elif name == "reloads" and info:
        out.append(f"slowest reload to new workers {info['slowest_s']} s")
        if info.get("resent"):
            out.append(f"{info['resent']} signal(s) sent again: the master had not acted on them in 5 s")
    elif name == "worker-kill" and info:
        held = [str(k["client_conns"]) for k in info["kills"] if "client_conns" in k]
        out.append(f"{len(held)} kills; client connections on the killed workers: "
                   f"{' + '.join(held)} = {info['in_flight']}")
        if any(k.get("master_exited") for k in info["kills"]):
            out.append("the master exits with its worker; started again after 1 s each time")
    elif name == "upstream-kill" and info:
        out.append(f"upstream 1 down {info['down_s']} s")
    elif name == "stall" and info:
        out.append(f"upstream 2 stalls every answer for {info['stalled_s']} s; read timeout "
                   f"{res['read_timeout_s']:g} s")
        load = ph.get("load") or {}
        if load.get("fail_max_ms") is not None:
            out.append(f"the failed requests ended after {load['fail_min_ms'] / 1000:.1f}-"
                       f"{load['fail_max_ms'] / 1000:.1f} s")
    elif name == "slowloris" and info:
        out.append(f"{n(info['opened'])} of {n(info['connections'])} open in {info['open_s']} s; after "
                   f"{info['held_s']} s: {n(info['open'])} open, {n(info['closed'])} closed, "
                   f"{n(info['answered'])} answered, {n(info['reset'])} reset")
        r, r1 = p99_ratio(res), p99_ratio(res, "p99_1s_median_ms")
        if r:
            out.append(f"p99 {r:.2f}× calm" + (f" (per second, median: {r1:.2f}×)" if r1 else ""))
    elif name == "non-reader" and info:
        closed = info["closed_after_s"]
        s = f"{info['clients']} clients: "
        s += (f"closed by the proxy after {min(closed)}-{max(closed)} s" if closed else "none closed")
        if info["still_open"]:
            s += f", {info['still_open']} still open after {info['send_timeout_s'] + 5:g} s"
        s += (f" (send timeout {info['send_timeout_s']:g} s); RSS peak "
              f"{(info['rss_peak_kb'] - info['rss_before_kb']) / 1024:+.1f} MiB")
        out.append(s)
    if info.get("proxy_exited"):
        out.append("the proxy had exited; started again")
    return "; ".join(o for o in out if o)


def phase(res, name):
    return next((p for p in res.get("phases", []) if p["name"] == name), None)


def p99_ratio(res, key="p99_ms"):
    calm, slow = phase(res, "calm"), phase(res, "slowloris")
    try:
        return slow["load"][key] / calm["load"][key]
    except (TypeError, KeyError, ZeroDivisionError):
        return None


def fault_table(res):
    rows = ["| fault | s | requests | 2xx | failed | why | p50 | p99 | other CPU | notes |",
            "|---|---:|---:|---:|---:|---|---:|---:|---:|---|"]
    for ph in res["phases"]:
        if not ph["applies"]:
            rows.append(f"| {ph['label']} | | n/a | | | | | | | {ph['why']} |")
            continue
        load = ph.get("load") or {}
        rows.append(f"| {ph['label']} | {ph.get('seconds', 0):.0f} | {n(load.get('sent', 0))} | "
                    f"{n(load.get('ok', 0))} | {n(failed(ph))} | {causes(load.get('fail') or {})} | "
                    f"{ms(load.get('p50_ms'))} | {ms(load.get('p99_ms'))} | {ph.get('other_cpu_pct', 0)} % | "
                    f"{notes(ph, res)} |")
    return rows


def roles(snap):
    """role name -> process, workers numbered by pid."""
    out, w = {}, 0
    for p in sorted(snap, key=lambda p: (p["role"] != "master", p["pid"])):
        if p["role"] == "worker":
            w += 1
            out[f"worker {w}"] = p
        else:
            out[p["role"] if p["role"] not in out else f"{p['role']} {p['pid']}"] = p
    return out


def cell(p):
    if not p:
        return "–"
    f = p["fds"]
    extra = [f"{f[k]} {k}" for k in ("client", "upstream") if f[k]]
    return (f"pid {p['pid']}: {p['rss_kb'] / 1024:.1f} MiB, {f['total']} fds"
            + (f" ({', '.join(extra)})" if extra else ""))


def growth(a, b):
    if not a or not b:
        return "–"
    return f"{(b['rss_kb'] - a['rss_kb']):+,} KiB, {b['fds']['total'] - a['fds']['total']:+d} fds"


def process_table(results):
    rows = ["| proxy | process | start | mid | end | start → end | mid → end |",
            "|---|---|---|---|---|---|---|"]
    for res in results:
        snaps = res.get("snapshots", {})
        if not snaps:
            continue
        r = {k: roles(v) for k, v in snaps.items()}
        names = sorted(set().union(*[set(v) for v in r.values()]),
                       key=lambda s: (s != "master", s))
        for role in names:
            s, m, e = (r.get(k, {}).get(role) for k in ("start", "mid", "end"))
            rows.append(f"| {res['proxy']} | {role} | {cell(s)} | {cell(m)} | {cell(e)} | {growth(s, e)} | "
                        f"{growth(m, e)} |")
    return rows


def targets(res):
    """[(ok, text)] for pasture."""
    out = []
    by = {p["name"]: p for p in res["phases"]}

    def fails(name):
        ph = by.get(name)
        return failed(ph) if ph and ph["applies"] else 0

    def err(name):
        ph = by.get(name)
        return " (" + ph["error"] + ")" if ph and "error" in ph else ""

    lost = {k: fails(k) for k in ("upgrade", "reloads", "scaling")}
    errs = "".join(err(k) for k in lost)
    out.append((sum(lost.values()) == 0 and not errs,
                f"0 failures from reloads, the upgrade and TTIN/TTOU: {lost['reloads']}, {lost['upgrade']} "
                f"and {lost['scaling']} failed{errs}"))

    wk = by["worker-kill"]
    in_flight = wk.get("info", {}).get("in_flight", 0)
    bad = {k: v for k, v in (wk.get("load") or {}).get("fail", {}).items() if k not in DEATH_CAUSES}
    info = wk.get("info", {})
    done = sum(1 for k in info.get("kills", []) if "pid" in k)
    ok = failed(wk) <= in_flight and not bad and "error" not in wk and done == info.get("planned", -1)
    out.append((ok, f"kill -9 of a worker: {failed(wk)} failed, at most the {in_flight} requests in flight on "
                    f"the killed workers" + (f"; other causes: {causes(bad)}" if bad else "")
                    + ("" if done == info.get("planned", -1) else f"; {done} of {info.get('planned')} kills done")
                    + err("worker-kill")))

    key = "p99_1s_median_ms"
    r, r_whole = p99_ratio(res, key), p99_ratio(res)
    sl = by["slowloris"].get("info", {})
    opened = sl.get("opened", 0) == sl.get("connections", -1)
    out.append((r is not None and r <= 2 and opened,
                f"slowloris moves the others' p99 by at most 2× (the median of the p99 of each second): "
                f"{ms(by['slowloris']['load'][key]) if r else '–'} against "
                f"{ms(by['calm']['load'][key]) if r else '–'} calm = {r or 0:.2f}×; "
                f"the whole phases' p99: {r_whole or 0:.2f}×"
                + ("" if opened else f"; only {sl.get('opened', 0)} of {sl.get('connections')} connections opened")
                + err("slowloris")))

    snaps = res["snapshots"]
    r0, r1, re_ = roles(snaps["start"]), roles(snaps["mid"]), roles(snaps["end"])
    problems = []
    for role, e in re_.items():
        if e["fds"]["client"] or e["fds"]["upstream"]:
            problems.append(f"{role} holds {e['fds']['client']} client and {e['fds']['upstream']} upstream "
                            f"sockets at the end")
        for label, before in (("start", r0.get(role)), ("mid", r1.get(role))):
            if not before:
                continue
            if e["fds"]["total"] > before["fds"]["total"]:
                problems.append(f"{role}: {before['fds']['total']} fds at {label}, {e['fds']['total']} at the end")
            same = before["pid"] == e["pid"]
            if (same or role == "master") and e["rss_kb"] - before["rss_kb"] > RSS_SLACK_KB:
                problems.append(f"{role}: RSS {before['rss_kb']:,} KiB at {label}, {e['rss_kb']:,} at the end")
    if set(r0) != set(re_):
        problems.append(f"processes at the start: {', '.join(r0)}; at the end: {', '.join(re_)}")
    out.append((not problems, "no fd or memory growth (fds: none more than at the start or mid; RSS: at "
                f"most {RSS_SLACK_KB} KiB more, for the master and for a worker since mid): "
                + ("; ".join(problems) if problems else "none")))

    uk = fails("upstream-kill")
    out.append((uk == 0 and not err("upstream-kill"),
                f"kill -9 of an upstream costs no request (README, Failures): {uk} failed" + err("upstream-kill")))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--date", default="")
    ap.add_argument("--rev", default="")
    ap.add_argument("--machine", default="")
    ap.add_argument("--elapsed", type=int, default=0)
    ap.add_argument("results", nargs="+")
    a = ap.parse_args()
    results = []
    for path in a.results:
        try:
            with open(path) as f:
                results.append(json.load(f))
        except (OSError, ValueError) as e:
            results.append({"proxy": path, "skipped": f"no result ({e})"})
    done = [r for r in results if "skipped" not in r]
    quick = any(r.get("quick") for r in done)
    first = done[0] if done else {}
    out = [f"{a.date}; {a.machine}; pasture {a.rev}; {'quick' if quick else 'full'} run, "
           f"{a.elapsed // 60} min {a.elapsed % 60} s.",
           "",
           "8 keep-alive clients that never retry (GET /, 100 requests per connection) through each proxy "
           "(2 workers; HAProxy: 1 process, 2 threads) to 2 upstreams; upstream read timeout "
           f"{first.get('read_timeout_s', 0):g} s, client send timeout {first.get('send_timeout_s', 0):g} s. "
           "requests = answers and failures completed during the fault; p50/p99 of the 2xx answers; "
           "other CPU = what processes outside this run used meanwhile, in % of one core (noise).",
           ""]
    for r in results:
        out.append(f"#### {r['proxy']}")
        out.append("")
        if "skipped" in r:
            out += [f"skipped: {r['skipped']}", ""]
            continue
        out += fault_table(r) + [""]
    out += ["#### Processes (load paused, idle upstream connections closed)", "",
            "start: after 1-2 s of load; mid: after the upgrade, reloads, scaling and kills, and a primer "
            "(the slowloris connections and the non-readers for 2 s: buffer pools and malloc arenas at their "
            "high-water mark); end: after the upstream kill, non-readers, slowloris and stall. From mid to end "
            "the processes are the same.", ""]
    out += process_table(done) + [""]
    rc = 0
    pasture = next((r for r in results if r["proxy"] == "pasture"), None)
    if pasture is not None:
        out += ["#### pasture's targets", ""]
        if "skipped" in pasture:
            out.append("- FAIL: pasture did not run")
            rc = 1
        else:
            for ok, text in targets(pasture):
                out.append(f"- {'PASS' if ok else 'FAIL'}: {text}")
                rc |= 0 if ok else 1
    print("\n".join(out))
    return rc


if __name__ == "__main__":
    sys.exit(main())
