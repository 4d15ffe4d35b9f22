"""Metric keys: the name of each built-in metric in results, options and the leaderboard.

Use these constants, never string literals, in code that produces or reads results. They live apart from
:mod:`.registry` so that the modules the registry calls (e.g. :mod:`.intervals`) can name metrics without
importing it.
"""

from __future__ import annotations

FID = "fid"
KID = "kid"
FVD = "fvd"
SYNC_C = "sync-c"
SYNC_D = "sync-d"
EMO_ACC = "emo-acc"
CSIM = "csim"
PSNR = "psnr"
SSIM = "ssim"
LPIPS = "lpips"
