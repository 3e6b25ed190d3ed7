#!/usr/bin/env python3
"""Turns cairn_bench --json lines into markdown tables and PNG plots.

    plot_results.py SUITE.jsonl OUT_DIR

Writes OUT_DIR/tables.md (every op at every size and rank count, each figure beside its
baselines, with the issue's targets checked at 256 MiB per rank) and, when matplotlib is
installed (python3-matplotlib), OUT_DIR/save_throughput.png, load_throughput.png,
throughput_vs_ranks.png, reshard.png and async_stall.png.
"""
import json
import os
import sys

BACKENDS = ["hdf5", "hdf5-agg", "posix"]
BASELINES = ["posix-raw", "hdf5-hand"]
TARGET_MIB = 256


def load_lines(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows


def by_op(rows, op):
    return sorted((r for r in rows if r["op"] == op), key=lambda r: (r["mib_per_rank"], r["ranks"]))


def fmt(value, digits=1):
    return "n/a" if value is None else f"{value:.{digits}f}"


def mib_s(row, method):
    m = row["methods"].get(method)
    return None if m is None else m["mib_s"]


def throughput_table(rows, op, extra_methods):
    methods = [m for m in BACKENDS + extra_methods + BASELINES if any(m in r["methods"] for r in rows)]
    out = [f"| ranks | MiB/rank | " + " | ".join(f"{m} MiB/s" for m in methods) +
           " | best backend | best / posix-raw | hdf5 / hdf5-hand | hdf5 / posix-raw |",
           "|" + "---:|" * (len(methods) + 6)]
    for r in rows:
        backends = [b for b in BACKENDS if b in r["methods"]]
        best = max(backends, key=lambda b: mib_s(r, b)) if backends else None
        raw, hand, h5 = mib_s(r, "posix-raw"), mib_s(r, "hdf5-hand"), mib_s(r, "hdf5")
        cells = [fmt(mib_s(r, m)) for m in methods]
        out.append(f"| {r['ranks']} | {r['mib_per_rank']} | " + " | ".join(cells) +
                   f" | {best or 'n/a'} | {fmt(mib_s(r, best) / raw if best and raw else None, 2)}"
                   f" | {fmt(h5 / hand if h5 and hand else None, 2)} | {fmt(h5 / raw if h5 and raw else None, 2)} |")
    return "\n".join(out)


def reshard_table(rows):
    out = ["| saved on | loaded on | MiB/rank saved | " +
           " | ".join(f"{b} same s | {b} resharded s | {b} ratio" for b in BACKENDS) + " |",
           "|" + "---:|" * (3 + 3 * len(BACKENDS))]
    for r in rows:
        cells = []
        for b in BACKENDS:
            same, re = r["methods"].get(b + "-same"), r["methods"].get(b + "-reshard")
            cells += [fmt(same and same["median_s"], 3), fmt(re and re["median_s"], 3),
                      fmt(re and re.get("time_over_same_layout"), 2)]
        out.append(f"| {r['ranks']} | {r['load_ranks']} | {r['mib_per_rank']} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def async_table(rows):
    modes = ["copy", "zero-copy", "bounded"]
    out = ["| ranks | MiB/rank | memcpy ms | " + " | ".join(f"{m} stall ms | {m} / memcpy" for m in modes) + " |",
           "|" + "---:|" * (3 + 2 * len(modes))]
    for r in rows:
        cells = []
        for m in modes:
            mode = r["modes"].get(m)
            cells += [fmt(mode and 1000 * mode["call_median_s"], 2), fmt(mode and mode["call_over_memcpy"], 2)]
        out.append(f"| {r['ranks']} | {r['mib_per_rank']} | {fmt(1000 * r['memcpy_median_s'], 2)} | " +
                   " | ".join(cells) + " |")
    return "\n".join(out)


def targets(rows):
    """The performance issue's targets, at TARGET_MIB per rank."""
    lines = []

    def check(name, value, limit, at_most=False):
        if value is None:
            lines.append(f"| {name} | n/a | {'<=' if at_most else '>='} {limit} | not measured |")
            return
        ok = value <= limit if at_most else value >= limit
        lines.append(f"| {name} | {value:.2f} | {'<=' if at_most else '>='} {limit} | {'met' if ok else 'NOT met'} |")

    for r in by_op(rows, "save"):
        if r["mib_per_rank"] != TARGET_MIB:
            continue
        raw, hand = mib_s(r, "posix-raw"), mib_s(r, "hdf5-hand")
        best = max((mib_s(r, b) or 0.0) for b in BACKENDS)
        check(f"save, best backend / posix-raw, {r['ranks']} rank(s)", best / raw if raw else None, 0.9)
        check(f"save, hdf5 / hdf5-hand, {r['ranks']} rank(s)", (mib_s(r, "hdf5") or 0) / hand if hand else None, 1.0)
    for r in by_op(rows, "load"):
        if r["mib_per_rank"] != TARGET_MIB:
            continue
        raw = mib_s(r, "posix-raw")
        check(f"load, hdf5 (checked) / posix-raw, {r['ranks']} rank(s)",
              (mib_s(r, "hdf5") or 0) / raw if raw else None, 0.9)
    for r in by_op(rows, "reshard"):
        if r["mib_per_rank"] != TARGET_MIB or r["ranks"] != 4:
            continue
        for b in BACKENDS:
            m = r["methods"].get(b + "-reshard")
            check(f"resharded load {r['ranks']} to {r['load_ranks']}, {b}, time / same layout",
                  m and m.get("time_over_same_layout"), 1.25, at_most=True)
    if not lines:
        return ""
    return "\n".join(["| target | measured | wanted | |", "|---|---:|---:|---|"] + lines)


def write_tables(rows, out_dir):
    parts = ["# cairn_bench results", ""]
    machine = os.path.join(out_dir, "machine.md")
    if os.path.exists(machine):
        parts += [open(machine).read().replace("# Machine", "## Machine"), ""]
    runs = sorted({r["runs"] for r in rows})
    parts += [f"Every figure is the median of {', '.join(map(str, runs))} runs; the methods of an op alternate "
              "run by run. MiB/s is aggregate: all ranks' bytes over the slowest rank's time between barriers.", ""]
    t = targets(rows)
    if t:
        parts += [f"## Targets ({TARGET_MIB} MiB per rank)", "", t, ""]
    parts += ["## Save", "", throughput_table(by_op(rows, "save"), "save", []), ""]
    parts += ["## Load (checked: every byte against its chunk's checksum; nocheck: without)", "",
              throughput_table(by_op(rows, "load"), "load", [b + "-nocheck" for b in BACKENDS]), ""]
    loads = by_op(rows, "load")
    if loads:
        worst = max(max(m.get("resident_after_drop", 0) or 0 for m in r["methods"].values()) for r in loads)
        parts += [f"Before every load the files are fsync'd and dropped from the page cache "
                  f"(POSIX_FADV_DONTNEED, best effort); at most {100 * worst:.0f}% of a file's pages stayed "
                  "resident. Reads may still come from a cache below (a virtual disk's).", ""]
    parts += ["## Resharded load (saved on P ranks, loaded on P-1; at 1 rank into three uneven chunks)", "",
              reshard_table(by_op(rows, "reshard")), ""]
    parts += ["## async_save stall (the call's wall time) against memcpy of the same bytes", "",
              async_table(by_op(rows, "async")), ""]
    bad = [r for r in rows if r.get("verified") is False]
    parts += ["Load checks: " + ("FAILED in " + ", ".join(f"{r['op']} {r['ranks']}x{r['mib_per_rank']}"
                                                             for r in bad) if bad else "passed in every run."), ""]
    path = os.path.join(out_dir, "tables.md")
    with open(path, "w") as f:
        f.write("\n".join(parts))
    return path, not bad


def plot(rows, out_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plot_results.py: matplotlib is not installed (apt-get install python3-matplotlib); tables only",
              file=sys.stderr)
        return []
    written = []
    ranks = sorted({r["ranks"] for r in rows})
    styles = {"hdf5": "o-", "hdf5-agg": "s-", "posix": "^-", "posix-raw": "k--", "hdf5-hand": "k:"}

    for op in ("save", "load"):
        data = by_op(rows, op)
        if not data:
            continue
        fig, axes = plt.subplots(1, len(ranks), figsize=(5 * len(ranks), 4), squeeze=False)
        for ax, p in zip(axes[0], ranks):
            sub = [r for r in data if r["ranks"] == p]
            for m in BACKENDS + BASELINES:
                pts = [(r["mib_per_rank"], mib_s(r, m)) for r in sub if m in r["methods"]]
                if pts:
                    ax.plot([x for x, _ in pts], [y for _, y in pts], styles[m], label=m)
            ax.set_xscale("log", base=2)
            ax.set_title(f"{op}, {p} rank{'s' if p > 1 else ''}")
            ax.set_xlabel("MiB per rank")
            ax.set_ylabel("aggregate MiB/s")
            ax.grid(True, alpha=0.3)
        axes[0][0].legend()
        fig.tight_layout()
        path = os.path.join(out_dir, f"{op}_throughput.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, op in zip(axes, ("save", "load")):
        sub = [r for r in by_op(rows, op) if r["mib_per_rank"] == TARGET_MIB]
        for m in BACKENDS + BASELINES:
            pts = sorted((r["ranks"], mib_s(r, m)) for r in sub if m in r["methods"])
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], styles[m], label=m)
        ax.set_title(f"{op}, {TARGET_MIB} MiB per rank")
        ax.set_xlabel("ranks")
        ax.set_ylabel("aggregate MiB/s")
        ax.set_xticks(ranks)
        ax.grid(True, alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    path = os.path.join(out_dir, "throughput_vs_ranks.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)

    data = by_op(rows, "reshard")
    if data:
        fig, ax = plt.subplots(figsize=(10, 4))
        labels = [f"{r['ranks']}->{r['load_ranks']}\n{r['mib_per_rank']} MiB" for r in data]
        width = 0.8 / len(BACKENDS)
        for i, b in enumerate(BACKENDS):
            vals = [(r["methods"].get(b + "-reshard") or {}).get("time_over_same_layout") or 0 for r in data]
            ax.bar([x + i * width for x in range(len(data))], vals, width, label=b)
        ax.axhline(1.25, color="k", linestyle="--", linewidth=1, label="target 1.25")
        ax.set_xticks([x + width for x in range(len(data))])
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("resharded / same-layout load time")
        ax.legend()
        fig.tight_layout()
        path = os.path.join(out_dir, "reshard.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)

    data = by_op(rows, "async")
    if data:
        fig, axes = plt.subplots(1, len(ranks), figsize=(5 * len(ranks), 4), squeeze=False)
        for ax, p in zip(axes[0], ranks):
            sub = [r for r in data if r["ranks"] == p]
            xs = [r["mib_per_rank"] for r in sub]
            ax.plot(xs, [1000 * r["memcpy_median_s"] for r in sub], "k--", label="memcpy")
            for mode, style in (("copy", "o-"), ("zero-copy", "s-"), ("bounded", "^-")):
                ys = [1000 * r["modes"][mode]["call_median_s"] if mode in r["modes"] else None for r in sub]
                ax.plot(xs, ys, style, label=f"async_save, {mode}")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"stall, {p} rank{'s' if p > 1 else ''}")
            ax.set_xlabel("MiB per rank")
            ax.set_ylabel("ms (slowest rank)")
            ax.grid(True, alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, "async_stall.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_results.py SUITE.jsonl OUT_DIR")
    rows = load_lines(sys.argv[1])
    if not rows:
        sys.exit(f"plot_results.py: no JSON lines in {sys.argv[1]}")
    os.makedirs(sys.argv[2], exist_ok=True)
    path, ok = write_tables(rows, sys.argv[2])
    print(f"plot_results.py: wrote {path}")
    for p in plot(rows, sys.argv[2]):
        print(f"plot_results.py: wrote {p}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
