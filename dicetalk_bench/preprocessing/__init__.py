"""Raw MEAD / HDTF -> aligned 25 fps face clips, face tracks, audio features and Parquet manifests.

Modules (one job each): :mod:`.discovery_mead` / :mod:`.discovery_hdtf` (list the raw trees),
:mod:`.manifest` (clip records and the ``clips.parquet`` schema), :mod:`.faces` (detect + track + smooth),
:mod:`.crop` (pure crop geometry), :mod:`.audio_features` (log-mel, Whisper states), :mod:`.whisper`
(encoder loading), :mod:`.landmarks` (optional FAN); the pipeline: :mod:`.preprocess_config` (settings and their
hashes), :mod:`.task_records` (tasks, output paths, records), :mod:`.clip_frames` (a clip's frame range and frame
buffer), :mod:`.faces_table` (the per-frame face table), :mod:`.tasks` (per-clip work), :mod:`.planning` (what is
done already), :mod:`.preflight` (checks before any work), :mod:`.run_outputs` (manifests from the records),
:mod:`.orchestration` (serial or Dask runs); :mod:`.pipeline` re-exports their public names.
"""

__all__ = ["load_manifest"]


def __getattr__(name: str):
    # load_manifest imports pyarrow; resolve it lazily so importing the package stays cheap
    if name == "load_manifest":
        from dicetalk_bench.preprocessing.manifest import load_manifest

        return load_manifest
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
