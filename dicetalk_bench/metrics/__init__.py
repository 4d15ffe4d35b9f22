"""Metrics for emotional talking-head videos: FID, KID, FVD, Sync-C/D, emotion accuracy, CSIM, PSNR/SSIM/LPIPS.

Importing this package is cheap on purpose (no torch): the extractor modules import their heavy dependencies.

- :mod:`.registry`: metric names, directions and compute functions (the CLI dispatches through it).
- :mod:`.result`: the versioned :class:`~.result.MetricResult` format every metric returns.
- :mod:`.frechet`, :mod:`.kid`: pure maths on features. :mod:`.inception`, :mod:`.i3d`: extractors.
- :mod:`.fid`, :mod:`.fvd`: the set-level metrics. :mod:`.video_set`: folders of videos and the pairing rule.
- :mod:`.scoring`: score a list of metrics on one request (what the command line and evaluation runs call).

Command line: ``python -m dicetalk_bench.metrics score --videos DIR [--reference DIR] --metrics fid,fvd --out r.json``.
"""

from dicetalk_bench.metrics.registry import METRICS, MetricSpec, get_metric, metric_names, register
from dicetalk_bench.metrics.result import SCHEMA_VERSION, MetricResult, load_results, save_results

__all__ = ["METRICS", "MetricSpec", "MetricResult", "SCHEMA_VERSION", "get_metric", "load_results", "metric_names",
           "register", "save_results"]
