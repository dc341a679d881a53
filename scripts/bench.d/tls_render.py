#!/usr/bin/python3
"""Turn `scripts/bench --tls` records into the markdown report.

    tls_render.py RESULTS_FILE

Records (one per line, `TYPE key=value ...`): env, versions, tls (one
measured run), proto (what a proxy negotiated), skip.
"""
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from render import num, parse  # noqa: E402  (the records' format is render.py's)

TCK = os.sysconf("SC_CLK_TCK")
NOISY_PCT = 10
ORDER = {"pasture": 0, "nginx": 1, "haproxy": 2}
ROWS = [
    ("new-ecdsa", "new TLS connection, ECDSA P-256 (full handshake + 1 request)", "conn"),
    ("new-rsa", "new TLS connection, RSA-2048 (full handshake + 1 request)", "conn"),
    ("resumed", "resumed TLS connection, ticket (+ 1 request)", "conn"),
    ("keepalive", "kept-alive TLS, HTTP/1.1, c=50 (wrk)", "req"),
    ("h2", "HTTP/2 over TLS, 100 clients × 10 streams (h2load)", "req"),
]


def metrics(r):
    n = num(r["count"])
    dur = num(r["duration_us"], 1) / 1e6
    ticks = num(r["ticks"])
    return {
        "rate": n / dur if dur else 0.0,
        "cpu": ticks * (1e6 / TCK) / n if n and ticks >= 0 else None,
        # per core: what one fully busy core of this proxy would do
        "per_core": n / (ticks / TCK) if ticks > 0 else None,
        "p99": num(r["p99_us"]) / 1000,
        "err": int(num(r["errors"])),
        "noisy": num(r.get("foreign")) * 100 / TCK / dur > NOISY_PCT if dur else False,
    }


def median_by_rate(runs):
    runs = sorted(runs, key=lambda r: metrics(r)["rate"])
    return runs[len(runs) // 2]


def main():
    recs = parse(sys.argv[1])
    env = recs["env"][0] if recs["env"] else {}
    ver = recs["versions"][0] if recs["versions"] else {}
    groups = defaultdict(list)
    for r in recs["tls"]:
        groups[(r["row"], int(r["workers"]), r["proxy"])].append(r)
    out = []
    out.append(f"### TLS and HTTP/2 — {env.get('date', '?')}, {ver.get('cpu', '?').replace('_', ' ')}, "
               f"{ver.get('cpus', '?')} CPUs, kernel {ver.get('kernel', '?')}")
    out.append("")
    out.append(f"pasture {ver.get('pasture', '?')}, nginx {ver.get('nginx', '?')}, HAProxy {ver.get('haproxy', '?')}, "
               f"OpenSSL {ver.get('openssl', '?')}, h2load {ver.get('h2load', '?')}; "
               f"{env.get('rounds', '?')} round(s) of {env.get('duration', '?')} s, the median round by rate. "
               "CPU = the proxy's user+system time (all its processes) per connection or request; "
               "per core = connections or requests per second of proxy CPU. "
               "1-worker proxies run on core 1; 2-worker proxies on cores 0-1 beside the clients and upstreams (core 0).")
    out.append("")
    out.append("| row | workers | proxy | rate /s | per core /s | CPU µs each | p99 ms | errors |")
    out.append("|---|---:|---|---:|---:|---:|---:|---:|")
    worst = []
    for row, label, unit in ROWS:
        ws = sorted({w for (rw, w, _) in groups if rw == row})
        for w in ws:
            cells = {}
            for p in sorted({p for (rw, ww, p) in groups if rw == row and ww == w}, key=lambda p: ORDER.get(p, 9)):
                m = metrics(median_by_rate(groups[(row, w, p)]))
                cells[p] = m
                p99 = f"{m['p99']:.2f}" if unit == "req" else "–"
                cpu = f"{m['cpu']:.1f}" if m["cpu"] is not None else "?"
                pc = f"{m['per_core']:.0f}" if m["per_core"] else "?"
                flag = " ⚠" if m["noisy"] else ""
                out.append(f"| {label} | {w} | {p}{flag} | {m['rate']:.0f} | {pc} | {cpu} | {p99} | {m['err']} |")
    out.append("")
    # The rounds of one proxy spread widely on a shared machine: the median
    # CPU of its rounds, beside the median round's, per row.
    out.append("Median CPU µs of the rounds (pasture ÷ the better peer):")
    out.append("")
    out.append("| row | workers | pasture | nginx | HAProxy | ratio |")
    out.append("|---|---:|---:|---:|---:|---:|")
    for row, label, _ in ROWS:
        for w in sorted({w for (rw, w, _) in groups if rw == row}):
            med = {}
            for p in ("pasture", "nginx", "haproxy"):
                cpus = sorted(m["cpu"] for m in (metrics(r) for r in groups.get((row, w, p), [])) if m["cpu"] is not None)
                if cpus:
                    med[p] = cpus[len(cpus) // 2]
            peers = [med[p] for p in ("nginx", "haproxy") if p in med]
            ratio = f"{med['pasture'] / min(peers):.2f}×" if "pasture" in med and peers else "–"
            if "pasture" in med and peers:
                worst.append((row, w, med["pasture"] / min(peers)))
            cell = lambda p: f"{med[p]:.1f}" if p in med else "–"  # noqa: E731
            out.append(f"| {label} | {w} | {cell('pasture')} | {cell('nginx')} | {cell('haproxy')} | {ratio} |")
    out.append("")
    if worst:
        out.append("pasture's CPU per connection/request ÷ the better peer's (the median CPU of the rounds): " +
                   ", ".join(f"{row} w={w}: {x:.2f}×" for row, w, x in worst) + " (below 1 = pasture spends less).")
        out.append("")
    protos = recs["proto"]
    if protos:
        out.append("Negotiated with a default OpenSSL client: " + "; ".join(
            f"{p['proxy']} ({p['cert']}): {p['negotiated'].replace('/', ' ')}" for p in
            sorted(protos, key=lambda p: (p["cert"], ORDER.get(p["proxy"], 9)))) + ".")
        out.append("")
    if any(metrics(r)["noisy"] for r in recs["tls"]):
        out.append(f"⚠ other processes used more than {NOISY_PCT} % of a core during that run: noisy.")
        out.append("")
    for s in recs["skip"]:
        out.append(f"skipped {s.get('proxy')}: {s.get('reason')}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
