"""The benchmarks' plots (PNG, matplotlib: the `bench` extra) and tables (summary.md), from their JSON.

Each `<results>/<part>.json` that exists gives `<part>.png` and its section of `summary.md` (the tables
the README shows), each naming the machine it came from. A missing part is skipped; without matplotlib
only summary.md is written.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .machine import one_line


def _load(results: Path, name: str) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    if not path.is_file():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _caption(data: dict[str, Any]) -> str:
    machine = data.get("machine")
    when = data.get("measured_at", "")
    return (one_line(machine) if machine else "machine not recorded") + (f"; {when}" if when else "")


# -- tables ---------------------------------------------------------------------------------------


def _ms(x: float | None) -> str:
    return "-" if x is None else (f"{x:.2f}" if x < 10 else f"{x:,.0f}")


def table_sandbox(d: dict[str, Any]) -> str:
    rows = [
        "| runtime | cold start p50 / p95 / p99 | warm start (pool) p50 / p95 / p99 | bare `docker run` p50 "
        "| cold / bare | cell round trip p50 / p95 / p99 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for rt, f in d["runtimes"].items():
        rows.append(
            f"| {rt} | {_ms(f['cold_start_ms_p50'])} / {_ms(f['cold_start_ms_p95'])} / "
            f"{_ms(f['cold_start_ms_p99'])} ms | {_ms(f['warm_start_ms_p50'])} / "
            f"{_ms(f['warm_start_ms_p95'])} / "
            f"{_ms(f['warm_start_ms_p99'])} ms | {_ms(f['bare_docker_run_ms_p50'])} ms | "
            f"{f['cold_start_ratio']:.2f} | {f['cell_rtt_p50_ms']:.2f} / {f['cell_rtt_p95_ms']:.2f} / "
            f"{f['cell_rtt_p99_ms']:.2f} ms |"
        )
    return "\n".join(rows)


def table_llm(d: dict[str, Any]) -> str:
    return "\n".join(
        [
            "| `llm_query` overhead p50 / p95 / p99 | round trip p50 / p95 / p99 | 32 x 200 ms batched "
            "| sequential | speed-up |",
            "| --- | --- | --- | --- | --- |",
            f"| {d['overhead_p50_ms']:.2f} / {d.get('overhead_p95_ms', 0):.2f} / "
            f"{d['overhead_p99_ms']:.2f} ms | {d['round_trip_p50_ms']:.2f} / "
            f"{d.get('round_trip_p95_ms', 0):.2f} / {d.get('round_trip_p99_ms', 0):.2f} ms | "
            f"{d['batched_32_s']:.3f} s | {d['sequential_32_s']:.3f} s | {d['batch_speedup']:.1f}x |",
        ]
    )


def table_context(d: dict[str, Any]) -> str:
    rows = [
        "| runtime | read every file p50 / p95 | local | ratio | `grep` a word p50 / p95 | local | ratio "
        "| orchestrator RSS growth |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for rt, f in d["runtimes"].items():
        rows.append(
            f"| {rt} | {f['api_read_all_s']:.3f} / {f['api_read_all_p95_s']:.3f} s | "
            f"{d['local_read_all_s']:.3f} s | {f['read_ratio']:.2f} | {f['api_grep_s']:.3f} / "
            f"{f['api_grep_p95_s']:.3f} s | {d['local_grep_s']:.3f} s | {f['grep_ratio']:.2f} | "
            f"{f['orchestrator_peak_rss_growth_bytes'] / 1e6:.1f} MB |"
        )
    return "\n".join(rows)


def table_server(d: dict[str, Any]) -> str:
    rows = [
        "| clients | Execute cells/s | Execute p50 / p99 ms | failures | session cells/s "
        "| session p50 / p99 ms | failures | MiB per session sandbox |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for level in d["levels"]:
        e, s = level["execute"], level["session"]
        rows.append(
            f"| {level['clients']} | {e['cells_per_s']} | {e['p50_ms']} / {e['p99_ms']} | {e['failures']} "
            f"| {s['cells_per_s']} | {s['p50_ms']} / {s['p99_ms']} | {s['failures']} "
            f"| {s['memory_per_session_mib_p50']} |"
        )
    o = d["overhead"]
    rows.append("")
    rows.append(
        f"Server overhead per RunCell: p50 {o['grpc_p50_ms']} ms over gRPC against {o['direct_p50_ms']} ms "
        f"for `SandboxSession.run`, **{o['overhead_p50_ms']} ms** (target <= {o['target_ms']} ms)."
    )
    return "\n".join(rows)


def table_capacity(d: dict[str, Any]) -> str:
    rows = ["| runtime | idle sandbox memory p50 / p95 / max |", "| --- | --- |"]
    for rt, f in d["idle"].items():
        rows.append(
            f"| {rt} | {f['idle_mib_p50']:.1f} / {f['idle_mib_p95']:.1f} / {f['idle_mib_max']:.1f} MiB |"
        )
    m = d["most"]
    rows += [
        "",
        "| asked | held (each answering a cell) | first failure | time to open all | one cell in each, "
        "at once | cell p50 / p99 | host memory per sandbox | orchestrator RSS per sandbox |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| {m['asked']} | **{m['held']}** | {m['first_failure'] or 'none'} | {m['open_all_s']:.1f} s | "
        f"{m['one_cell_each_at_once_s']:.2f} s | {_ms(m['cell_p50_ms'])} / {_ms(m['cell_p99_ms'])} ms | "
        f"{m['host_memory_per_sandbox_mib']:.1f} MiB | {m['orchestrator_rss_per_sandbox_mib']:.2f} MiB |",
    ]
    return "\n".join(rows)


def table_oolong(d: dict[str, Any]) -> str:
    summary = d["summary"]
    sizes = sorted({s["size"] for s in summary})
    contenders = list(dict.fromkeys(s["contender"] for s in summary))
    by = {(s["size"], s["contender"]): s for s in summary}
    head = "| contender | " + " | ".join(f"F1 @{n}" for n in sizes) + " | "
    head += " | ".join(f"platform s/task @{n} (p50 / p95)" for n in sizes) + " |"
    rows = [head, "| --- |" + " --- |" * (2 * len(sizes))]
    for c in contenders:
        f1 = [f"{by[(n, c)]['f1']:.3f}" if (n, c) in by else "-" for n in sizes]
        plat = [
            f"{by[(n, c)]['platform_p50_s']:.3f} / {by[(n, c)]['platform_p95_s']:.3f}"
            if (n, c) in by
            else "-"
            for n in sizes
        ]
        rows.append(f"| {c} | " + " | ".join(f1 + plat) + " |")
    return "\n".join(rows)


TABLES: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "sandbox": ("Sandbox start and cell round trip", table_sandbox),
    "llm": ("Sub-calls", table_llm),
    "context": ("Reading the 45 MB context", table_context),
    "server": ("rlm serve, concurrent clients", table_server),
    "capacity": ("Capacity", table_capacity),
    "oolong": ("OOLONG-Pairs offline: platform overhead (scripted model), not model accuracy", table_oolong),
}


def summary_markdown(results: Path) -> str:
    parts = []
    for name, (title, make) in TABLES.items():
        data = _load(results, name)
        if data is None:
            continue
        parts.append(f"### {title}\n\n{make(data)}\n\n_{_caption(data)}; {data.get('took_s', '?')} s_\n")
    return "\n".join(parts)


# -- plots ----------------------------------------------------------------------------------------


def _plot_sandbox(plt: Any, d: dict[str, Any]) -> Any:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    runtimes = list(d["runtimes"])
    kinds = [
        ("cold_start", "cold start"),
        ("warm_start", "warm start (pool)"),
        ("bare_docker_run", "bare docker run"),
    ]
    width = 0.25
    for i, (key, label) in enumerate(kinds):
        p50 = [d["runtimes"][r][f"{key}_ms_p50"] for r in runtimes]
        p95 = [d["runtimes"][r][f"{key}_ms_p95"] for r in runtimes]
        xs = [j + (i - 1) * width for j in range(len(runtimes))]
        ax1.bar(
            xs, p50, width, label=label, yerr=[[0] * len(p50), [b - a for a, b in zip(p50, p95, strict=True)]]
        )
    ax1.set_xticks(range(len(runtimes)), runtimes)
    ax1.set_ylabel("ms to the first cell's result (p50, bar to p95)")
    ax1.legend(fontsize=8)
    ax1.set_title("start")
    for r in runtimes:
        samples = sorted(d["runtimes"][r].get("cell_rtt_samples_ms", []))
        if samples:
            ax2.plot([i / len(samples) * 100 for i in range(len(samples))], samples, label=r)
    ax2.set_yscale("log")
    ax2.set_xlabel("percentile")
    ax2.set_ylabel("cell round trip, ms")
    ax2.legend(fontsize=8)
    ax2.set_title("cell round trip (pass)")
    return fig


def _plot_llm(plt: Any, d: dict[str, Any]) -> Any:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    samples = sorted(d.get("overhead_samples_ms", []))
    if samples:
        ax1.plot([i / len(samples) * 100 for i in range(len(samples))], samples)
    ax1.axhline(1.0, color="grey", linestyle="--", linewidth=1, label="target p50 1 ms")
    ax1.set_xlabel("percentile")
    ax1.set_ylabel("llm_query overhead, ms")
    ax1.legend(fontsize=8)
    ax1.set_title(f"llm_query overhead ({d['calls']} calls)")
    ax2.bar(
        ["batched", "sequential"], [d["batched_32_s"], d["sequential_32_s"]], color=["tab:green", "tab:red"]
    )
    ax2.set_ylabel("s for 32 sub-calls of 200 ms")
    ax2.set_title(f"llm_query_batched: {d['batch_speedup']:.1f}x")
    return fig


def _plot_context(plt: Any, d: dict[str, Any]) -> Any:
    fig, ax = plt.subplots(figsize=(8, 3.8))
    labels, values, colors = [], [], []
    labels += ["local read"]
    values += [d["local_read_all_s"]]
    colors += ["grey"]
    for rt, f in d["runtimes"].items():
        labels.append(f"{rt} read_file")
        values.append(f["api_read_all_s"])
        colors.append("tab:blue" if rt == "runc" else "tab:orange")
    labels.append("local grep")
    values.append(d["local_grep_s"])
    colors.append("grey")
    for rt, f in d["runtimes"].items():
        labels.append(f"{rt} grep")
        values.append(f["api_grep_s"])
        colors.append("tab:blue" if rt == "runc" else "tab:orange")
    ax.bar(labels, values, color=colors)
    ax.set_ylabel("s (median)")
    ax.set_title(f"{d['files']:,} files, {d['bytes'] / 1e6:.1f} MB: every file read, one word grepped")
    ax.tick_params(axis="x", labelsize=8)
    return fig


def _plot_server(plt: Any, d: dict[str, Any]) -> Any:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    clients = [lv["clients"] for lv in d["levels"]]
    ax1.plot(
        clients, [lv["execute"]["cells_per_s"] for lv in d["levels"]], "o-", label="Execute (fresh sandbox)"
    )
    ax1.plot(clients, [lv["session"]["cells_per_s"] for lv in d["levels"]], "o-", label="session cell")
    ax1.set_yscale("log")
    ax1.set_xlabel("concurrent clients")
    ax1.set_ylabel("cells/s")
    ax1.legend(fontsize=8)
    for kind in ("execute", "session"):
        ax2.plot(clients, [lv[kind]["p50_ms"] for lv in d["levels"]], "o-", label=f"{kind} p50")
        ax2.plot(clients, [lv[kind]["p99_ms"] for lv in d["levels"]], "o--", label=f"{kind} p99")
    ax2.set_yscale("log")
    ax2.set_xlabel("concurrent clients")
    ax2.set_ylabel("ms per call")
    ax2.legend(fontsize=8)
    return fig


def _plot_capacity(plt: Any, d: dict[str, Any]) -> Any:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    runtimes = list(d["idle"])
    ax1.boxplot([d["idle"][r]["idle_mib_samples"] for r in runtimes], tick_labels=runtimes)
    ax1.axhline(25 / 1.048576, color="grey", linestyle="--", linewidth=1, label="target 25 MB")
    ax1.set_ylabel("MiB per idle sandbox")
    ax1.legend(fontsize=8)
    m = d["most"]
    ax2.bar(["target", "held"], [m["target"], m["held"]], color=["grey", "tab:green"])
    ax2.set_title(f"concurrent sandboxes (asked {m['asked']})")
    return fig


def _plot_oolong(plt: Any, d: dict[str, Any]) -> Any:
    fig, ax = plt.subplots(figsize=(9, 3.8))
    summary = d["summary"]
    sizes = sorted({s["size"] for s in summary})
    contenders = list(dict.fromkeys(s["contender"] for s in summary))
    by = {(s["size"], s["contender"]): s for s in summary}
    width = 0.8 / max(1, len(contenders))
    for i, c in enumerate(contenders):
        xs = [j + (i - (len(contenders) - 1) / 2) * width for j in range(len(sizes))]
        p50 = [by[(n, c)]["platform_p50_s"] if (n, c) in by else 0 for n in sizes]
        p95 = [by[(n, c)]["platform_p95_s"] if (n, c) in by else 0 for n in sizes]
        ax.bar(xs, p50, width, label=c, yerr=[[0] * len(p50), [b - a for a, b in zip(p50, p95, strict=True)]])
    ax.axhline(2.0, color="grey", linestyle="--", linewidth=1, label="target 2 s at 500")
    ax.set_xticks(range(len(sizes)), [f"{n} entries" for n in sizes])
    ax.set_ylabel("platform s per task (p50, bar to p95)")
    ax.set_title("OOLONG-Pairs offline: the platform's own time per task (scripted model)")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    return fig


PLOTS: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    "sandbox": _plot_sandbox,
    "llm": _plot_llm,
    "context": _plot_context,
    "server": _plot_server,
    "capacity": _plot_capacity,
    "oolong": _plot_oolong,
}


def draw_all(results: Path, say: Callable[[str], None] = print) -> list[Path]:
    written = []
    summary = results / "summary.md"
    text = summary_markdown(results)
    if text:
        summary.write_text(text)
        written.append(summary)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("no plots: matplotlib is not installed (pip install 'rlm-orchestrator[bench]', or make bench)")
        return written
    for name, plot in PLOTS.items():
        data = _load(results, name)
        if data is None:
            continue
        fig = plot(plt, data)
        caption = textwrap.fill(_caption(data), 130)
        fig.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=7, color="dimgrey")
        fig.tight_layout(rect=(0, 0.03 + 0.03 * caption.count("\n"), 1, 1))
        path = results / f"{name}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written
