"""Audio features at 16 kHz mono: Whisper-style 80-bin log-mel and Whisper-tiny encoder states per video frame.

Conventions (Sonic / DICE-Talk): 25 fps video, 16 kHz audio, so one video frame is 640
samples and ``n_frames = n_samples // 640``. The log-mel uses a 10 ms hop (4 mel frames per video frame); the
Whisper encoder runs on 30 s windows and gives 50 Hz states (2 per video frame), all 5 hidden states (embedding
output + 4 layers) of 384 values, stored float16 as ``[2, 5, 384]`` per frame.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pyarrow as pa

SAMPLE_RATE = 16_000
VIDEO_FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS  # 640 (Sonic: audio_len = n_samples // 640)
# Whisper front end (openai/whisper audio.py constants: N_FFT=400, HOP_LENGTH=160, N_MELS=80, 30 s chunks).
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 80
MELS_PER_FRAME = SAMPLES_PER_FRAME // HOP_LENGTH  # 4
WHISPER_WINDOW_SAMPLES = 30 * SAMPLE_RATE  # 480,000 -> 3000 mel frames -> 1500 encoder states
WHISPER_STATES_PER_FRAME = 2  # 50 Hz encoder / 25 fps video
WHISPER_LAYERS = 5
WHISPER_DIM = 384


class SilentAudioError(ValueError):
    """The audio has no signal (peak below the threshold), so lip-sync features would be meaningless."""


@dataclass(frozen=True)
class AudioConfig:
    """Audio-feature settings. ``silence_peak``: clips whose absolute peak is below it are refused."""

    sample_rate: int = SAMPLE_RATE
    # None: whisper-tiny from the weights registry (stops with the download instructions when absent);
    # a folder path; or random:SEED for an uncalibrated random encoder, recorded as such in every output
    whisper: str | None = None
    silence_peak: float = 1e-3
    whisper_batch: int = 4


def n_video_frames(n_samples: int) -> int:
    """Number of 25 fps frames covered by ``n_samples`` at 16 kHz (floor, as Sonic's ``audio_len``)."""
    return n_samples // SAMPLES_PER_FRAME


def check_not_silent(samples: np.ndarray, peak: float, name: str) -> None:
    """Raise :class:`SilentAudioError` naming ``name`` when ``max |x| < peak``."""
    top = float(np.max(np.abs(samples))) if samples.size else 0.0
    if top < peak:
        raise SilentAudioError(f"{name}: audio is silent (peak |x| = {top:.2e} < {peak:.0e}); expected speech")


_MEL_CACHE: dict[int, Any] = {}


def _mel_transform(sample_rate: int) -> Any:
    import torchaudio

    if sample_rate not in _MEL_CACHE:
        # Slaney mel scale + Slaney norm = librosa's default filters, which Whisper uses.
        _MEL_CACHE[sample_rate] = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=N_FFT, win_length=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS,
            power=2.0, center=True, pad_mode="reflect", mel_scale="slaney", norm="slaney",
        )
    return _MEL_CACHE[sample_rate]


def log_mel(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Whisper log-mel of ``samples`` (S,) float32 -> (80, S // 160) float32.

    As openai/whisper ``log_mel_spectrogram``: |STFT|^2 (Hann 400, hop 160, centred), last frame dropped,
    Slaney mel filters, ``log10(max(x, 1e-10))``, floor at ``max - 8``, then ``(x + 4) / 4``.
    """
    import torch

    x = torch.as_tensor(np.ascontiguousarray(samples, dtype=np.float32))
    mel = _mel_transform(sample_rate)(x)[:, :-1]
    logm = torch.clamp(mel, min=1e-10).log10()
    logm = torch.maximum(logm, logm.max() - 8.0)
    return ((logm + 4.0) / 4.0).numpy().astype(np.float32)


def log_mel_per_frame(samples: np.ndarray, n_frames: int) -> np.ndarray:
    """(n_frames, 4, 80) float32: the 4 log-mel frames (10 ms) belonging to each 40 ms video frame."""
    m = log_mel(samples)  # (80, S // 160)
    need = n_frames * MELS_PER_FRAME
    if m.shape[1] < need:
        m = np.pad(m, ((0, 0), (0, need - m.shape[1])), mode="edge")
    return np.ascontiguousarray(m[:, :need].T.reshape(n_frames, MELS_PER_FRAME, N_MELS))


def whisper_states(samples: np.ndarray, encoder: Any, n_frames: int, batch: int = 4) -> np.ndarray:
    """Whisper encoder hidden states per video frame: (n_frames, 2, 5, 384) float16.

    The audio is cut into 30 s windows (zero-padded to 480,000 samples as Whisper requires); each window gives
    1500 states at 50 Hz of which the first ``ceil(len / 320)`` are kept; windows are concatenated and cut to
    ``2 * n_frames``. The encoder runs through :func:`~dicetalk_bench.preprocessing.whisper.encoder_hidden_states`
    (its last layer only for the kept states of the batch).
    """
    import torch

    from .whisper import encoder_hidden_states

    n_win = max(1, math.ceil(len(samples) / WHISPER_WINDOW_SAMPLES))
    mels, keep = [], []
    for w in range(n_win):
        chunk = samples[w * WHISPER_WINDOW_SAMPLES:(w + 1) * WHISPER_WINDOW_SAMPLES]
        keep.append(max(1, math.ceil(len(chunk) / (2 * HOP_LENGTH))))
        padded = np.zeros(WHISPER_WINDOW_SAMPLES, dtype=np.float32)
        padded[: len(chunk)] = chunk
        mels.append(log_mel(padded))
    states = []
    with torch.inference_mode():
        for i in range(0, n_win, batch):
            x = torch.from_numpy(np.stack(mels[i:i + batch]))
            kept = encoder_hidden_states(encoder, x, max(keep[i:i + batch]))  # (b, k, 5, 384)
            stacked = kept.to(torch.float16).numpy()
            for j in range(stacked.shape[0]):
                states.append(stacked[j, : keep[i + j]])
    allst = np.concatenate(states, axis=0)
    need = WHISPER_STATES_PER_FRAME * n_frames
    if allst.shape[0] < need:
        allst = np.concatenate([allst, np.repeat(allst[-1:], need - allst.shape[0], axis=0)], axis=0)
    return np.ascontiguousarray(allst[:need].reshape(n_frames, WHISPER_STATES_PER_FRAME, WHISPER_LAYERS, WHISPER_DIM))


# ------------------------------------------------------------------------------------------------ Parquet / Arrow
LOGMEL_TYPE = pa.fixed_shape_tensor(pa.float32(), [MELS_PER_FRAME, N_MELS])
WHISPER_TYPE = pa.fixed_shape_tensor(pa.float16(), [WHISPER_STATES_PER_FRAME, WHISPER_LAYERS, WHISPER_DIM])
AUDIO_SCHEMA = pa.schema([
    ("audio_id", pa.string()),
    ("frame", pa.int32()),
    ("logmel", LOGMEL_TYPE),
    ("whisper", WHISPER_TYPE),
])


def _tensor_array(values: np.ndarray, typ: pa.FixedShapeTensorType) -> pa.ExtensionArray:
    flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=typ.value_type)
    storage = pa.FixedSizeListArray.from_arrays(flat, int(np.prod(typ.shape)))
    return pa.ExtensionArray.from_storage(typ, storage)


def features_table(audio_id: str, logmel: np.ndarray, whisper: np.ndarray, metadata: Mapping[str, Any]) -> pa.Table:
    """One row per video frame; ``metadata`` (JSON-able) goes into the schema key-value metadata."""
    n = logmel.shape[0]
    if whisper.shape[0] != n:
        raise ValueError(f"{audio_id}: {n} log-mel frames but {whisper.shape[0]} whisper frames")
    schema = AUDIO_SCHEMA.with_metadata({"dicetalk_bench": json.dumps(dict(metadata), sort_keys=True)})
    return pa.table(
        [pa.array([audio_id] * n, pa.string()), pa.array(np.arange(n, dtype=np.int32)),
         _tensor_array(logmel.astype(np.float32), LOGMEL_TYPE), _tensor_array(whisper.astype(np.float16), WHISPER_TYPE)],
        schema=schema,
    )


def table_metadata(table_or_schema: pa.Table | pa.Schema) -> dict[str, Any]:
    """The ``dicetalk_bench`` key-value metadata of a features (or faces) table."""
    schema = table_or_schema.schema if isinstance(table_or_schema, pa.Table) else table_or_schema
    raw = (schema.metadata or {}).get(b"dicetalk_bench")
    return json.loads(raw) if raw else {}


def write_ipc(tables: Mapping[str, pa.Table], target: Path, metadata: Mapping[str, Any] | None = None) -> Path:
    """Arrow IPC (Feather v2, uncompressed) copy: one record batch per audio id, ids in the schema metadata.

    ``metadata`` (JSON-able, e.g. the Whisper record) goes under the schema key ``dicetalk_bench``.

    Read with :func:`read_ipc_clip` through a memory map: a random clip read costs microseconds and no copy,
    unlike a filtered Parquet read (~100 ms).
    """
    from dicetalk_bench.fileutil import atomic_path

    ids = sorted(tables)
    meta = {"dicetalk_bench_index": json.dumps(ids)}
    if metadata is not None:
        meta["dicetalk_bench"] = json.dumps(dict(metadata), sort_keys=True)
    schema = AUDIO_SCHEMA.with_metadata(meta)
    with atomic_path(target) as tmp:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            for i in ids:
                t = tables[i].replace_schema_metadata(None).cast(AUDIO_SCHEMA)
                writer.write_batch(t.combine_chunks().to_batches(max_chunksize=None)[0] if t.num_rows else
                                   pa.RecordBatch.from_pylist([], schema=AUDIO_SCHEMA))
    return Path(target)


def read_ipc_clip(path: Path, audio_id: str) -> dict[str, np.ndarray]:
    """Zero-copy ``{"logmel": (T, 4, 80) float32, "whisper": (T, 2, 5, 384) float16}`` for one audio id."""
    source = pa.memory_map(str(path), "r")
    reader = pa.ipc.open_file(source)
    ids = json.loads(reader.schema.metadata[b"dicetalk_bench_index"])
    try:
        batch = reader.get_batch(ids.index(audio_id))
    except ValueError:
        raise KeyError(f"{audio_id!r} is not in {path}") from None
    return {
        "logmel": batch.column("logmel").to_numpy_ndarray(),
        "whisper": batch.column("whisper").to_numpy_ndarray(),
    }
