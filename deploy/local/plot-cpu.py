#!/usr/bin/env python3
"""CPU per record of the bare pipe and recast as an SVG bar chart, each bar
split into the process's own threads and the Kafka client library's, from
a CSV of throughput.sh medians (build,batch,pipe_own,pipe_client,
recast_own,recast_client in µs per record; `#` lines are comments). No
plotting library: the SVG is written by hand.
    deploy/local/plot-cpu.py docs/images/cpu-per-record.csv > docs/images/cpu-per-record.svg
"""
import csv
import sys

rows = [r for r in csv.DictReader(line for line in open(sys.argv[1]) if not line.startswith("#"))]
tools = ("pipe", "recast")


def total(row, tool):
    return float(row[f"{tool}_own"]) + float(row[f"{tool}_client"])


# Room for each group's two label lines ("139aef7, 5,000/txn").
width, height, left, bottom, top = max(640, 80 + 150 * len(rows)), 320, 60, 50, 60
scale_max = max(total(r, tool) for r in rows for tool in tools) * 1.15
plot_h = height - bottom - top
group_w = (width - left - 20) / len(rows)
bar_w = group_w * 0.32
colours = {
    ("pipe", "own"): "#718096",
    ("pipe", "client"): "#cbd5e0",
    ("recast", "own"): "#2b6cb0",
    ("recast", "client"): "#90cdf4",
}


def y(value):
    return top + plot_h - value / scale_max * plot_h


out = [
    f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
    f'font-family="sans-serif" font-size="12">',
    f'<rect width="{width}" height="{height}" fill="white"/>',
    f'<text x="{left}" y="20" font-size="14" font-weight="bold">'
    "CPU µs per record (user + system), lower is better</text>",
]
for tick in range(0, int(scale_max) + 1, 5):
    out.append(f'<line x1="{left}" x2="{width - 20}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e2e8f0"/>')
    out.append(f'<text x="{left - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>')
for i, r in enumerate(rows):
    x0 = left + i * group_w + group_w * 0.15
    for j, tool in enumerate(tools):
        x = x0 + j * (bar_w + 4)
        base = 0.0
        # The process's own threads at the bottom, the client's on top.
        for part in ("own", "client"):
            value = float(r[f"{tool}_{part}"])
            out.append(
                f'<rect x="{x:.1f}" y="{y(base + value):.1f}" width="{bar_w:.1f}" '
                f'height="{y(base) - y(base + value):.1f}" fill="{colours[(tool, part)]}"/>'
            )
            base += value
        out.append(f'<text x="{x + bar_w / 2:.1f}" y="{y(base) - 4:.1f}" text-anchor="middle">{base:.1f}</text>')
    ratio = total(r, "recast") / total(r, "pipe")
    label_x = x0 + bar_w + 2
    out.append(
        f'<text x="{label_x:.1f}" y="{height - bottom + 18}" text-anchor="middle">'
        f'{r["build"]}, {int(r["batch"]):,}/txn</text>'
    )
    out.append(f'<text x="{label_x:.1f}" y="{height - bottom + 34}" text-anchor="middle">{ratio:.2f}× pipe</text>')
legend = [
    (("pipe", "own"), "pipe, own threads"),
    (("pipe", "client"), "pipe, client library"),
    (("recast", "own"), "recast, own threads"),
    (("recast", "client"), "recast, client library"),
]
for k, (key, text) in enumerate(legend):
    lx = left + k * 150
    out.append(f'<rect x="{lx}" y="32" width="12" height="12" fill="{colours[key]}"/>')
    out.append(f'<text x="{lx + 16}" y="42">{text}</text>')
out.append("</svg>")
print("\n".join(out))
