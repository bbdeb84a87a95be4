#!/usr/bin/env python3
"""One table from a compare run: medians per server and scenario, signalhub's ratio to each
peer, and the performance issue's targets (against uWebSockets and tokio-tungstenite) checked
against this run.

Usage: bench-report.py RESULTS.jsonl   (lines `NAME {wsload report}`, from compare.sh)
"""
import json
import sys
from collections import defaultdict
from statistics import median

ORDER = ["signalhub", "tokio-tungstenite", "node-ws", "python-websockets", "sync-tungstenite", "uws"]
FANOUTS = ["fanout-100", "fanout-1000", "fanout-100-long", "fanout-1000-long"]


def load(path):
    runs = defaultdict(list)
    for line in open(path):
        name, _, rest = line.strip().partition(" ")
        if rest.startswith("{"):
            report = json.loads(rest)
            runs[name, report.get("label")].append(report)
    return runs


def med(runs, name, label, fn):
    values = []
    for report in runs.get((name, label), []):
        if not report.get("ok"):
            continue
        try:
            values.append(fn(report))
        except (KeyError, TypeError, ZeroDivisionError):
            pass
    return median(values) if values else None


def rate(r):
    return r["deliveries_per_sec"]


def cpu_per_round_trip(r):
    return r["server"]["cpu_s"] * 1e6 / r["round_trips"]


def cpu_per_delivery(r):
    return r["server"]["cpu_s"] / r["delivered"] * 1e6


def p99_ms(r):
    return r["latency_us"]["p99"] / 1e3


def direct_rate(r):
    return r["round_trips_per_sec"]


def idle_kib(r):
    return r["rss_per_conn_kb"]


def fmt(value, unit="", digits=0):
    if value is None:
        return "–"
    if unit == "k":
        return f"{value / 1e3:,.0f} k"
    return f"{value:,.{digits}f}{unit}"


def ratio(ours, theirs, higher_is_better=True):
    if ours is None or theirs is None or theirs == 0 or ours == 0:
        return ""
    r = ours / theirs if higher_is_better else theirs / ours
    return f" ({r:.2f}x)"


def main(path):
    runs = load(path)
    names = [n for n in ORDER if any(k[0] == n for k in runs)]
    names += sorted({k[0] for k in runs} - set(names))
    rounds = max((len(v) for v in runs.values()), default=0)
    print(f"Medians of {rounds} round(s), {path}. In brackets: how signalhub compares "
          "(above 1.00: signalhub better; CPU and p99 are inverted so that holds).\n")
    header = ["server"]
    for label in FANOUTS:
        header.append(f"{label}: deliveries/s, server µs/delivery, p99")
    header += ["direct: round trips/s", "idle 2000: KiB/conn"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    ours = "signalhub"
    for name in names:
        cells = [f"**{name}**" if name == ours else name]
        for label in FANOUTS:
            values = [med(runs, name, label, f) for f in (rate, cpu_per_delivery, p99_ms)]
            mine = [med(runs, ours, label, f) for f in (rate, cpu_per_delivery, p99_ms)]
            if values[0] is None:
                cells.append("–")
                continue
            if name == ours:
                cells.append(f"{fmt(values[0], 'k')}, {fmt(values[1], '', 2)}, {fmt(values[2], ' ms', 1)}")
            else:
                cells.append(
                    f"{fmt(values[0], 'k')}{ratio(mine[0], values[0])}, "
                    f"{fmt(values[1], '', 2)}{ratio(mine[1], values[1], False)}, "
                    f"{fmt(values[2], ' ms', 1)}{ratio(mine[2], values[2], False)}"
                )
        d, md = med(runs, name, "direct", direct_rate), med(runs, ours, "direct", direct_rate)
        cells.append(fmt(d, "k") + ("" if name == ours else ratio(md, d)))
        i, mi = med(runs, name, "idle", idle_kib), med(runs, ours, "idle", idle_kib)
        cells.append(fmt(i, "", 1) + ("" if name == ours else ratio(mi, i, False)))
        print("| " + " | ".join(cells) + " |")

    print("\nTargets (the performance issue: uWebSockets and tokio-tungstenite), this run:\n")
    checks = []

    def check(what, mine, peer, good, unit, digits):
        passed = None if None in (mine, peer) else good(mine, peer)
        checks.append((what, mine, peer, passed, unit, digits))

    uws, tokio = "uws", "tokio-tungstenite"
    m = lambda name, label, fn: med(runs, name, label, fn)
    check("direct: round trips/s >= 0.9x uWebSockets'", m(ours, "direct", direct_rate),
          m(uws, "direct", direct_rate), lambda a, b: a >= 0.9 * b, "/s", 0)
    check("direct: server CPU per round trip <= 1.3x uWebSockets'", m(ours, "direct", cpu_per_round_trip),
          m(uws, "direct", cpu_per_round_trip), lambda a, b: a <= 1.3 * b, "µs", 2)
    check("fanout-100-long: deliveries/s >= tokio-tungstenite's", m(ours, "fanout-100-long", rate),
          m(tokio, "fanout-100-long", rate), lambda a, b: a >= b, "/s", 0)
    check("fanout-100-long: server CPU per delivery <= uWebSockets'",
          m(ours, "fanout-100-long", cpu_per_delivery), m(uws, "fanout-100-long", cpu_per_delivery),
          lambda a, b: a <= b, "µs", 2)
    check("fanout-1000-long: server CPU per delivery <= 0.9x uWebSockets'",
          m(ours, "fanout-1000-long", cpu_per_delivery), m(uws, "fanout-1000-long", cpu_per_delivery),
          lambda a, b: a <= 0.9 * b, "µs", 2)
    check("fanout-1000-long: deliveries/s >= tokio-tungstenite's", m(ours, "fanout-1000-long", rate),
          m(tokio, "fanout-1000-long", rate), lambda a, b: a >= b, "/s", 0)
    for what, mine, peer, passed, unit, digits in checks:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[passed]
        print(f"- {what}: {fmt(mine, '', digits)} vs {fmt(peer, '', digits)} {unit}: **{verdict}**")
    failed = [(k, r.get("error") or f"lost {r.get('lost')}") for k, rs in runs.items() for r in rs if not r.get("ok")]
    for (name, label), why in failed:
        print(f"- not ok: {name} {label}: {why}")


if __name__ == "__main__":
    main(sys.argv[1])
