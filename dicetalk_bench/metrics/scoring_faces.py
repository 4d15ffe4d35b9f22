"""Registry compute functions for the face metrics: Sync-C/D, Emo-Acc, CSIM, and the paired PSNR/SSIM/LPIPS.

Each ``score_*`` has the registry signature ``fn(request: ScoreRequest) -> list[MetricResult]``. Videos are listed and
paired with :mod:`.video_set` (clip id; reference decoded at the generated fps; cut to the shorter; reference resized).
Faces are tracked on the decoded frames with ``preprocessing.faces.track`` (option ``faces.detector``: an object with
``detect(frame)``, replacing BlazeFace, e.g. in tests). A video that fails for a per-item reason (no face, unreadable,
too short, no audio, no label, no reference) is recorded with its reason and kind (:mod:`.failures`) and the run
goes on; any other error (missing weights, a bad option, a bug) stops the command. Failure policy: emotion accuracy
counts a failed video whose emotion is known as wrong; every other metric here excludes failed videos and reports
their rate (``protocol["failure_policy"]``; counts per kind in ``extra["failure_counts"]``).

Options (``request.options``): ``sync.mode`` (fast | parity | original), ``emo-acc.classifier`` (emotion-fan |
hsemotion | own:PATH), ``emo-acc.speakers`` (JSON clip id -> speaker, own classifier), ``emo-acc.aggregation``
(attention | mean-logit | majority), ``emo-acc.labels`` (JSON file clip id -> MEAD emotion; default: parsed from
the clip id), ``ssim.mode`` (gaussian | skimage-default), ``emo-acc.crop_scale`` (face crop side / larger box
side, default 1.2; own classifier: its checkpoint's).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import numpy as np

from dicetalk_bench.datasets import MEAD_EMOTION_CODES
from dicetalk_bench.errors import MISSING_REFERENCE, NO_FACE, NO_LABEL
from dicetalk_bench.metrics.failures import COUNT_AS_WRONG, EXCLUDE, FailureLog, attempt
from dicetalk_bench.metrics.registry import CSIM, EMO_ACC, LPIPS, PSNR, SSIM, SYNC_C, SYNC_D, ScoreRequest
from dicetalk_bench.metrics.result import MetricResult
from dicetalk_bench.preprocessing.crop import square_face_crops

__all__ = ["score_sync", "score_emo_acc", "score_csim", "score_psnr", "score_ssim", "score_lpips",
           "emotion_from_clip_id", "square_face_crops"]

log = logging.getLogger(__name__)

# MEAD file-name codes (EAT parses labels from them) and the MEAD folder names


def _track(frames: np.ndarray, fps: float, request: ScoreRequest):
    from dicetalk_bench.preprocessing import faces

    return faces.track(frames, fps=fps, detector=request.option("faces", "detector"))


# ------------------------------------------------------------------------------------------------ Sync-C / Sync-D
def score_sync(request: ScoreRequest) -> list[MetricResult]:
    """Sync-C and Sync-D of every video in ``request.videos`` (own audio track; no reference)."""
    from dicetalk_bench.metrics import sync
    from dicetalk_bench.metrics.syncnet import load_syncnet
    from dicetalk_bench.metrics.video_set import list_videos

    mode = request.option("sync", "mode", "fast")
    if mode not in ("fast", "parity", "original"):
        raise ValueError(f"option sync.mode={mode!r}: expected 'fast', 'parity' or 'original'")
    model, record = load_syncnet(request.weights.get("syncnet"), allow_unverified=request.allow_unverified,
                                 device=request.device)
    videos = list_videos(request.videos)
    tracks: dict[str, list[sync.SyncScores]] = {}
    failed = FailureLog()
    for entry in videos:
        scores = attempt(failed, entry.clip_id, lambda: sync.score_sync_video(
            entry.path, model, mode=mode, device=request.device, detector=request.option("faces", "detector")),
            what="sync")
        if scores is not None:
            tracks[entry.clip_id] = [scores]
    agg = sync.aggregate_sync(tracks, failed.reasons, failed.kinds)
    failed = FailureLog(dict(agg.failures), dict(agg.failure_kinds))
    protocol = {"mode": mode, "vshift": sync.VSHIFT, "window_frames": sync.WINDOW_FRAMES,
                "window_mfcc": sync.WINDOW_MFCC, "n_windows": "min_length - 5", "fps": sync.VIDEO_FPS,
                "audio_rate": sync.AUDIO_RATE, "mfcc": "python_speech_features 0.6 semantics, int16 scale",
                "crop": "syncnet_python crop_video (crop_scale 0.4, medfilt 13, pad 110, 224)",
                "face_track": "preprocessing.faces.track on the 25 fps frames",
                "aggregation": "longest track per video, mean over videos", "failure_policy": EXCLUDE}
    extra = {"n_without_face": agg.n_without_face, "failure_counts": failed.counts(),
             "offsets_frames": {k: s.offset_frames for k, s in agg.per_video.items()}}
    value_c = None if not agg.per_video else agg.sync_c
    value_d = None if not agg.per_video else agg.sync_d
    fields = failed.result_fields(videos.clip_ids)
    return [
        MetricResult(key=SYNC_C, value=value_c, higher_is_better=True, n_videos=agg.n_videos, protocol=protocol,
                     extractors=(record,), per_video={k: s.confidence for k, s in agg.per_video.items()},
                     extra=extra, **fields),
        MetricResult(key=SYNC_D, value=value_d, higher_is_better=False, n_videos=agg.n_videos, protocol=protocol,
                     extractors=(record,), per_video={k: s.min_dist for k, s in agg.per_video.items()},
                     extra=extra, **fields),
    ]


# ------------------------------------------------------------------------------------------------ Emo-Acc
def emotion_from_clip_id(clip_id: str) -> str | None:
    """MEAD emotion named in a clip id: a path part or ``_``/``-``-separated token equal to a MEAD name or code."""
    from dicetalk_bench.metrics.emotion import MEAD_EMOTIONS

    found = set()
    for token in re.split(r"[/_\-.\s]+", clip_id.lower()):
        if token in MEAD_EMOTIONS:
            found.add(token)
        elif token in MEAD_EMOTION_CODES:
            found.add(MEAD_EMOTION_CODES[token])
    return found.pop() if len(found) == 1 else None


def _read_clip_map(path: str, option: str, what: str) -> dict[str, Any]:
    """The JSON object (clip id -> ``what``) named by option ``emo-acc.<option>``; a clear error if unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"option emo-acc.{option}: cannot read {path} as a JSON object clip id -> {what} "
                         f"({exc})") from exc


def _labels(request: ScoreRequest, clip_ids: list[str], failed: FailureLog) -> dict[str, str]:
    """True emotion of each clip; clips without one are recorded in ``failed`` (kind ``no-label``)."""
    path = request.option(EMO_ACC, "labels")
    if path:
        given = _read_clip_map(path, "labels", "emotion")
        labels = {cid: str(given[cid]).lower() for cid in clip_ids if cid in given}
        for cid in clip_ids:
            if cid not in labels:
                failed.add(cid, NO_LABEL, f"no true emotion for clip {cid!r} in {path}")
        return labels
    labels = {}
    for cid in clip_ids:
        emo = emotion_from_clip_id(cid)
        if emo is None:
            failed.add(cid, NO_LABEL, f"cannot tell the true emotion from clip id {cid!r}; name it (e.g. "
                                      f"M003_angry_001) or pass option emo-acc.labels=FILE.json")
        else:
            labels[cid] = emo
    return labels


def _emotion_classifier(request: ScoreRequest) -> tuple[Any, dict, str]:
    """Option ``emo-acc.classifier``: ``emotion-fan`` (default), ``hsemotion`` or ``own:PATH`` (a train-emotion
    checkpoint) -> (classifier, weights record, description)."""
    choice = str(request.option(EMO_ACC, "classifier", "emotion-fan"))
    if choice == "emotion-fan":
        from dicetalk_bench.metrics.emotion import load_emotion_fan

        clf, record = load_emotion_fan(request.weights.get("emotion-fan"), allow_unverified=request.allow_unverified,
                                       device=request.device)
        return clf, record, "Emotion-FAN ResNet18-AT MEAD-8 (EAT)"
    if choice == "hsemotion":
        from dicetalk_bench.metrics.hsemotion import load_hsemotion

        clf, record = load_hsemotion(request.weights.get("hsemotion-enet-b0-8"),
                                     allow_unverified=request.allow_unverified, device=request.device)
        return clf, record, "HSEmotion EfficientNet-B0 AffectNet-8 (enet_b0_8_best_afew)"
    if choice.startswith("own:") and len(choice) > 4:
        from dicetalk_bench.metrics.emotion_own_checkpoint import load_own_classifier

        clf, record = load_own_classifier(choice[4:])
        return clf, record, "own MEAD-8 classifier (train-emotion), per-speaker normalised"
    raise ValueError(f"option emo-acc.classifier={choice!r}: expected 'emotion-fan', 'hsemotion' or 'own:PATH'")


def _speakers(request: ScoreRequest, clip_ids: list[str]) -> tuple[dict[str, str], str]:
    """Speaker of each clip for per-speaker normalisation: option ``emo-acc.speakers`` (JSON clip id -> speaker) or
    the MEAD actor id in the clip id; clips without one are pooled as one group ``"?"`` (logged)."""
    from dicetalk_bench.metrics.emotion_own_features import speaker_from_clip_id

    path = request.option(EMO_ACC, "speakers")
    given = _read_clip_map(path, "speakers", "speaker") if path else {}
    out = {cid: str(given[cid]) if cid in given else (speaker_from_clip_id(cid) or "?") for cid in clip_ids}
    unknown = sorted(cid for cid, s in out.items() if s == "?")
    if unknown:
        log.warning("emo-acc: no speaker for %d clips (e.g. %s): they are normalised as one group", len(unknown),
                    unknown[0])
    return out, (str(path) if path else "MEAD actor id parsed from the clip id")


def score_emo_acc(request: ScoreRequest) -> list[MetricResult]:
    """Video-level emotion accuracy of the generated videos (default classifier: Emotion-FAN, EAT's MEAD-8
    protocol; option ``emo-acc.classifier``: ``hsemotion`` or ``own:PATH``).

    Failure policy ``count-as-wrong``: a video whose true emotion is known but that cannot be classified (no face,
    unreadable, too short) counts as a wrong prediction and stays in the denominator (``per_video`` 0); a video
    without a true emotion cannot be judged and is left out (kind ``no-label``, counted in the failure rate).
    """
    from dicetalk_bench import media
    from dicetalk_bench.fileutil import sha256_file
    from dicetalk_bench.metrics.emotion import score_emotion
    from dicetalk_bench.metrics.video_set import list_videos

    clf, record, description = _emotion_classifier(request)
    own = hasattr(clf, "protocol")
    aggregation = request.option(EMO_ACC, "aggregation", "attention" if hasattr(clf, "video_logits") else "mean-logit")
    scale = float(request.option(EMO_ACC, "crop_scale", clf.protocol.crop_scale if own else 1.2))
    size = clf.protocol.input_size if own else 224
    videos = list_videos(request.videos)
    failed = FailureLog()
    truth = _labels(request, videos.clip_ids, failed)

    def face_crops(path: Path) -> np.ndarray:
        video = media.read_video(path)
        track = _track(video.frames, video.fps, request)
        return square_face_crops(video.frames, track.boxes_xyxy, scale, size)

    crops: dict[str, np.ndarray] = {}
    for entry in videos:
        if entry.clip_id in truth:
            c = attempt(failed, entry.clip_id, lambda: face_crops(entry.path), what="emo-acc")
            if c is not None:
                crops[entry.clip_id] = c
    labels_file = request.option(EMO_ACC, "labels")
    protocol = {"classifier": description, "aggregation": aggregation,
                "input": f"square face crop (crop_scale x larger box side) -> {size}, RGB",
                "crop_scale": scale, "labels": "JSON file (clip id -> emotion)" if labels_file else "parsed from clip id",
                "failure_policy": COUNT_AS_WRONG}
    predictions: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if labels_file:  # the file's content changes the number, its path does not
        protocol["labels_sha256"] = sha256_file(labels_file)
        extra["labels_file"] = str(labels_file)
    if crops:
        if own:
            from dicetalk_bench.metrics.emotion_own_classifier import score_speaker_normalised

            speakers, source = _speakers(request, list(crops))
            acc = score_speaker_normalised(clf, crops, {k: truth[k] for k in crops}, speakers,
                                           aggregation=aggregation)
            speakers_file = request.option(EMO_ACC, "speakers")
            if speakers_file:
                source = "JSON file (clip id -> speaker)"
                protocol["speakers_sha256"] = sha256_file(speakers_file)
                extra["speakers_file"] = str(speakers_file)
            protocol |= {"speaker_normalisation": "mean feature of each speaker's videos subtracted",
                         "speakers": source, "own_protocol": clf.meta.get("input", {}),
                         "own_test_metrics": clf.meta.get("test_metrics")}
        else:
            acc = score_emotion(clf, crops, {k: truth[k] for k in crops}, aggregation=aggregation)
        for cid, reason in acc.failures.items():  # the classifiers leave out only videos without face frames
            failed.add(cid, NO_FACE, reason)
        predictions = dict(acc.predictions)
        extra |= {"per_class": dict(acc.per_class), "confusion": acc.confusion.tolist(),
                  "labels_order": list(acc.per_class)}
    judged = sorted(cid for cid in truth if cid in predictions or cid in failed)
    per_video = {cid: float(predictions.get(cid) == truth[cid]) for cid in judged}
    value = 100.0 * sum(per_video.values()) / len(judged) if judged else None
    extra |= {"predictions": predictions, "failure_counts": failed.counts(),
              "n_counted_wrong": sum(1 for cid in judged if cid not in predictions)}
    return [MetricResult(key=EMO_ACC, value=value, higher_is_better=True, n_videos=len(judged), protocol=protocol,
                         extractors=(record,), per_video=per_video, extra=extra,
                         **failed.result_fields(videos.clip_ids))]


# ------------------------------------------------------------------------------------------------ paired metrics
def _paired(request: ScoreRequest, key: str, higher: bool, protocol: Mapping[str, Any], extractors: tuple = (), *,
            per_pair: Callable[[Any], float] | None = None,
            per_frames: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None) -> list[MetricResult]:
    """A paired metric over the pairs of ``request``. ``per_frames(generated, reference) -> (n,)`` scores frames
    as the videos are decoded in chunks (:func:`.video_set.score_pair_chunks`: memory bounded by a chunk, the
    video's value the mean of its per-frame values); ``per_pair(PairedFrames) -> float`` gets the whole aligned
    arrays (CSIM: the face track needs the whole clip)."""
    from dicetalk_bench.metrics.video_set import (FRAME_SIZE_RULE, list_videos, pair_videos,
                                                  pairs_reference_sha256, read_pair, score_pair_chunks)

    if request.reference is None:
        raise ValueError(f"{key} is a paired metric: pass --reference DIR with the ground-truth videos")
    if (per_pair is None) == (per_frames is None):
        raise ValueError("give exactly one of per_pair and per_frames")
    generated = list_videos(request.videos)
    pairing = pair_videos(generated, list_videos(request.reference))
    failed = FailureLog()
    for cid in pairing.missing_reference:
        failed.add(cid, MISSING_REFERENCE, f"no reference video with clip id {cid!r}")
    per_video: dict[str, float] = {}
    n_frames = 0
    dropped, resized = {}, []
    for gen, ref in pairing.pairs:
        if per_frames is not None:
            pair = attempt(failed, gen.clip_id, lambda: score_pair_chunks(gen, ref, per_frames), what=key)
            if pair is None:
                continue
            score = float(np.mean(pair.values))
            n_frames += pair.n_frames
        else:
            pair = attempt(failed, gen.clip_id, lambda: read_pair(gen, ref), what=key)
            if pair is None:
                continue
            score = attempt(failed, gen.clip_id, lambda: float(per_pair(pair)), what=key)
            if score is None:
                continue
            n_frames += len(pair.generated)
        per_video[gen.clip_id] = score
        if pair.dropped_generated or pair.dropped_reference:
            dropped[gen.clip_id] = [pair.dropped_generated, pair.dropped_reference]
        if pair.resized_reference:
            resized.append(gen.clip_id)
    value = float(np.mean(list(per_video.values()))) if per_video else None
    return [MetricResult(key=key, value=value, higher_is_better=higher, n_videos=len(per_video), n_frames=n_frames,
                         protocol=dict(protocol) | {"pairing": "video_set pairing rule (docs/metrics.md)",
                                                    "aggregation": "mean over frames, then mean over videos",
                                                    "failure_policy": EXCLUDE,
                                                    "reference_sha256": pairs_reference_sha256(pairing),
                                                    "frame_size_rule": FRAME_SIZE_RULE,
                                                    "reference_resized": bool(resized)},
                         extractors=extractors, per_video=per_video,
                         extra={"dropped_frames": dropped, "resized_reference": resized,
                                "unmatched_reference": list(pairing.unmatched_reference),
                                "failure_counts": failed.counts()},
                         **failed.result_fields(generated.clip_ids))]


def score_psnr(request: ScoreRequest) -> list[MetricResult]:
    from dicetalk_bench.metrics import pixel

    protocol = {"data_range": 255, "color": "RGB", "per": "frame", "cap_db": pixel.PSNR_CAP_DB}
    return _paired(request, PSNR, True, protocol, per_frames=lambda g, r: pixel.frame_psnr(g, r, pixel.PSNR_CAP_DB))


def score_ssim(request: ScoreRequest) -> list[MetricResult]:
    from dicetalk_bench.metrics import pixel

    mode = request.option(SSIM, "mode", "gaussian")
    return _paired(request, SSIM, True, {"mode": mode, "data_range": 255, "color": "RGB channels averaged"},
                   per_frames=lambda g, r: pixel.frame_ssim(g, r, mode))


def score_lpips(request: ScoreRequest) -> list[MetricResult]:
    from dicetalk_bench.metrics.pixel import load_lpips

    metric, record = load_lpips(request.weights.get("lpips-alex"), allow_unverified=request.allow_unverified,
                                device=request.device)
    return _paired(request, LPIPS, False, {"net": "alex", "version": "0.1", "input": "RGB [-1, 1]"}, (record,),
                   per_frames=metric)


def score_csim(request: ScoreRequest) -> list[MetricResult]:
    """CSIM: per generated video, mean cosine of ArcFace embeddings of its aligned frames to the aligned first frame
    of its ground-truth video (the reference frame)."""
    from dicetalk_bench.metrics.identity import align_from_track, csim, load_arcface

    embedder, record = load_arcface(request.weights.get("arcface-r100"), allow_unverified=request.allow_unverified,
                                    device=request.device)

    def per_pair(pair) -> float:
        gen_track = _track(pair.generated, pair.fps, request)
        ref_track = _track(pair.reference[:1], pair.fps, request)
        gen_faces = align_from_track(pair.generated, gen_track.keypoints)
        ref_face = align_from_track(pair.reference[:1], ref_track.keypoints)[0]
        return csim(embedder, gen_faces, ref_face)

    return _paired(request, CSIM, True,
                   {"backbone": "arcface_torch iresnet100", "alignment": "similarity to the ArcFace 112 template "
                    "from eyes, nose, mouth centre", "reference_frame": "first frame of the ground-truth video"},
                   (record,), per_pair=per_pair)
