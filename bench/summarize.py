"""Median table of anchorbench runs (bench/run.sh), or turn wrk's text into one JSON line."""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import defaultdict
from typing import Any


def wrk_line(target: str, text: str) -> dict[str, Any]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]

    def ms(label: str) -> float | None:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
        if not m:
            return None
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "target": target,
        "scenario": "toml (wrk)",
        "result": {
            "rps": rps,
            "p50_ms": ms("50"),
            "p99_ms": ms("99"),
            "errors": int(errors.group(1)) if errors else 0,
        },
    }


def cpu_ms(result: dict[str, Any]) -> float | None:
    """Server CPU per successful operation (the server's process tree, --watch-pid)."""
    ok, cpu = result.get("ok"), result.get("server_cpu_s")
    return cpu * 1000 / ok if ok and cpu is not None else None


def table(path: str, cpu: bool = False) -> str:
    runs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    order: list[str] = []
    for line in open(path, encoding="utf-8"):
        row = json.loads(line)
        runs[(row["scenario"], row["target"])].append(row["result"])
        if row["scenario"] not in order:
            order.append(row["scenario"])

    def med(results: list[dict[str, Any]], key: str) -> float | None:
        values = [r[key] for r in results if r.get(key) is not None]
        return statistics.median(values) if values else None

    out = [
        "| scenario | gateway ops/s | p50 ms | p99 ms | errors | polaris ops/s | p99 ms | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    if cpu:
        out[0] += " gateway CPU ms/op | polaris CPU ms/op |"
        out[1] += " ---: | ---: |"
    for scenario in order:
        g, p = runs.get((scenario, "gateway"), []), runs.get((scenario, "polaris"), [])
        g_rps, p_rps = med(g, "rps"), med(p, "rps")
        ratio = f"{g_rps / p_rps:.1f}x" if g_rps and p_rps else "-"

        def f(v: float | None, digits: int = 1) -> str:
            return "-" if v is None else f"{v:,.{digits}f}"

        errors = sum(r.get("errors", 0) or 0 for r in g)
        row = (
            f"| {scenario} | {f(g_rps, 0)} | {f(med(g, 'p50_ms'))} | "
            f"{f(med(g, 'p99_ms'))} | {errors} | {f(p_rps, 0)} | "
            f"{f(med(p, 'p99_ms'))} | {ratio} |"
        )
        if cpu:

            def cpu_med(results: list[dict[str, Any]]) -> float | None:
                values = [v for v in map(cpu_ms, results) if v is not None]
                return statistics.median(values) if values else None

            row += f" {f(cpu_med(g), 2)} | {f(cpu_med(p), 2)} |"
        out.append(row)
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("path", nargs="?")
    parser.add_argument("--wrk", metavar="TARGET", help="read wrk output on stdin")
    parser.add_argument("--cpu", action="store_true", help="add server CPU ms per operation")
    args = parser.parse_args()
    if args.wrk:
        print(json.dumps(wrk_line(args.wrk, sys.stdin.read())))
    else:
        print(table(args.path, args.cpu))


if __name__ == "__main__":
    main()
