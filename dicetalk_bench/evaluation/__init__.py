"""Evaluation runs: score one method's videos into a results file, and build the leaderboard from results files.

The command line is ``python -m dicetalk_bench.evaluate`` (:mod:`dicetalk_bench.evaluate`: arguments only); the
work is here, one job per module:

- :mod:`.config`: :class:`~.config.EvalConfig` (the resolved settings, saved beside the results) and
  :class:`~.config.EvaluateError` (a problem the user must fix).
- :mod:`.split`: the test split of a preprocessing output, and the ground-truth folder linked from it.
- :mod:`.generation`: generate the test split from a trained checkpoint (``--checkpoint``).
- :mod:`.reference_rows`: the ceiling (``--real``) and baseline (``--baseline``) rows built from the test clips.
- :mod:`.per_emotion`: the clips' emotions and FID/FVD per emotion stored in the results.
- :mod:`.run`: :func:`~.run.run_evaluation`, generate (or build a row) and score, then write the results file.
- :mod:`.summary`: the summary table printed after scoring.
- :mod:`.leaderboard`: :func:`~.leaderboard.run_leaderboard`, results files to the HTML/CSV/LaTeX leaderboard.

Importing these modules is cheap: each imports its heavy dependencies inside its functions.
"""
