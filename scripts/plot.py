#!/usr/bin/env python3
"""Draw fan-out deliveries/s and p99 latency against client count from bench-plot.sh results.

Usage: plot.py RESULTS.jsonl OUT.png

RESULTS holds `NAME {wsload report}` lines with labels `fanout-N`. A run that was not ok
(a server refusing past its connection cap, or one that lost messages) is left out of the
lines and listed under the plot. With several runs of a point, the median is drawn.
"""
import json
import sys
from collections import defaultdict
from statistics import median

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NAMES = {
    "signalhub": "signalhub",
    "tokio": "tokio-tungstenite",
    "node": "Node ws",
    "python": "Python websockets",
    "sync": "naive sync tungstenite",
}


def load(path):
    ok, failed = defaultdict(lambda: defaultdict(list)), []
    for line in open(path):
        name, _, rest = line.strip().partition(" ")
        if not rest.startswith("{"):
            continue
        report = json.loads(rest)
        clients = int(report.get("label", "fanout-0").rsplit("-", 1)[1])
        if report.get("ok"):
            ok[name][clients].append(report)
        else:
            connected = report.get("connected")
            if isinstance(connected, int) and connected < clients:
                why = f"{connected:,} of {clients:,} connected"
            else:
                why = report.get("error") or f"lost {report.get('lost'):,}"
            failed.append((name, clients, why))
    return ok, failed


def main(results, png):
    ok, failed = load(results)
    fig, (rate_ax, p99_ax) = plt.subplots(1, 2, figsize=(12, 4.8))
    for name, points in ok.items():
        xs = sorted(points)
        rates = [median(r["deliveries_per_sec"] for r in points[x]) / 1e3 for x in xs]
        p99s = [median(r["latency_us"]["p99"] for r in points[x]) / 1e3 for x in xs]
        style = dict(marker="o", linewidth=2.5 if name == "signalhub" else 1.5)
        rate_ax.plot(xs, rates, label=NAMES.get(name, name), **style)
        p99_ax.plot(xs, p99s, label=NAMES.get(name, name), **style)
    for ax in (rate_ax, p99_ax):
        ax.set_xscale("log")
        ax.set_xlabel("clients (one broadcast reaches all of them)")
        ax.grid(True, which="both", alpha=0.3)
    rate_ax.set_ylabel("deliveries per second (thousands)")
    rate_ax.set_title("fan-out throughput")
    p99_ax.set_yscale("log")
    p99_ax.set_ylabel("p99 latency (ms, log scale)")
    p99_ax.set_title("fan-out p99 latency (window of 16 messages)")
    rate_ax.legend()
    first_reason = {}
    for n, c, why in failed:
        first_reason.setdefault((n, c), why)
    notes = [f"{NAMES.get(n, n)} at {c:,}: {why}"[:90] for (n, c), why in sorted(first_reason.items())]
    rounds = max((len(v) for points in ok.values() for v in points.values()), default=0)
    footer = (f"2 cores shared with the load generator (wsload), 64-byte payloads, --rate 0; "
              f"medians of {rounds} round(s).")
    if notes:
        footer += "  Not drawn: " + "; ".join(notes)
    fig.text(0.01, 0.01, footer, fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(png, dpi=110)
    print(f"plot: {png}")
    for name, points in ok.items():
        row = ", ".join(
            f"{x:,}: {median(r['deliveries_per_sec'] for r in points[x]) / 1e3:.0f} k/s "
            f"p99 {median(r['latency_us']['p99'] for r in points[x]) / 1e3:.1f} ms"
            for x in sorted(points)
        )
        print(f"{NAMES.get(name, name)}: {row}")
    for note in notes:
        print(f"not ok: {note}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
