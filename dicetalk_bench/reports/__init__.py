"""Results files -> leaderboard: tables, bootstrap confidence intervals, provenance, HTML/CSV/LaTeX/JSON.

Modules: :mod:`.provenance` (the record stored with every results
file), :mod:`.leaderboard` (results files -> per-dataset tables with direction-aware best/second marks),
:mod:`.render` (tables -> ``index.html``, ``results.json``, ``results.csv``, ``results.tex``: one module per file,
:mod:`.page_html`, :mod:`.export_json`, :mod:`.export_csv`, :mod:`.export_latex`, sharing :mod:`.cell_text`).
Importing this package imports nothing heavy (numpy only in the submodules; no torch).
"""
