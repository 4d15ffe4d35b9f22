"""The summary table printed after scoring: one line per metric of a results file."""

from __future__ import annotations

from pathlib import Path


def print_summary(path: Path) -> None:
    """Print the summary table (metric, value, interval, n, failures) of the results file ``path`` to stdout."""
    from dicetalk_bench.reports.runs import read_run
    from dicetalk_bench.summary_table import results_table

    run = read_run(path, load_features=False)
    print(f"{run.method} on {run.dataset} ({path}):")
    print(results_table(list(run.results.values())))
