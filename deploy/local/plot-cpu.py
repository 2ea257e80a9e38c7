#!/usr/bin/env python3
"""CPU per record of recast and the bare pipe as an SVG bar chart, from a
CSV of throughput.sh medians (build,batch,pipe_us,recast_us; `#` lines are
comments). No plotting library: the SVG is written by hand.
    deploy/local/plot-cpu.py docs/images/cpu-per-record.csv > docs/images/cpu-per-record.svg
"""
import csv
import sys

rows = [r for r in csv.DictReader(line for line in open(sys.argv[1]) if not line.startswith("#"))]
# Room for each group's two label lines ("2 threads, 5,000 per txn").
width, height, left, bottom, top = max(640, 80 + 150 * len(rows)), 300, 60, 50, 40
scale_max = max(max(float(r["pipe_us"]), float(r["recast_us"])) for r in rows) * 1.15
plot_h = height - bottom - top
group_w = (width - left - 20) / len(rows)
bar_w = group_w * 0.32
colours = {"pipe": "#9aa5b1", "recast": "#2b6cb0"}


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
    for j, tool in enumerate(("pipe", "recast")):
        value = float(r[f"{tool}_us"])
        x = x0 + j * (bar_w + 4)
        out.append(
            f'<rect x="{x:.1f}" y="{y(value):.1f}" width="{bar_w:.1f}" '
            f'height="{top + plot_h - y(value):.1f}" fill="{colours[tool]}"/>'
        )
        out.append(f'<text x="{x + bar_w / 2:.1f}" y="{y(value) - 4:.1f}" text-anchor="middle">{value:.1f}</text>')
    ratio = float(r["recast_us"]) / float(r["pipe_us"])
    label_x = x0 + bar_w + 2
    out.append(
        f'<text x="{label_x:.1f}" y="{height - bottom + 18}" text-anchor="middle">'
        f'{r["build"]}, {int(r["batch"]):,}/txn</text>'
    )
    out.append(f'<text x="{label_x:.1f}" y="{height - bottom + 34}" text-anchor="middle">{ratio:.2f}× pipe</text>')
for k, tool in enumerate(("pipe", "recast")):
    lx = width - 170 + k * 80
    out.append(f'<rect x="{lx}" y="10" width="12" height="12" fill="{colours[tool]}"/>')
    out.append(f'<text x="{lx + 16}" y="20">{"bare pipe" if tool == "pipe" else "recast"}</text>')
out.append("</svg>")
print("\n".join(out))
