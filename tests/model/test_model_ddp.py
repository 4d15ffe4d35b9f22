"""DDP with torchrun on 2 CPU ranks (gloo) gives the gradients of one process on the combined batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dicetalk_bench.model.train_loop import TrainConfig, compute_gradients, setup


@pytest.mark.slow
def test_two_rank_ddp_gradients_equal_single_process(preprocessed, priors_dir, svd_dir, tmp_path):
    # lambda_cls > 0: the classifier's dropout masks come from each sample's seed, so they agree across ranks
    raw = dict(model="tiny", data_root=str(preprocessed), emotion_source="class-mean", priors_dir=str(priors_dir), svd=str(svd_dir),
               allow_unverified=True,
               out_dir=str(tmp_path / "run"), num_frames=4, resolution=32, batch_size=2, lambda_cls=0.5,
               p_drop_conditions=0.5, p_drop_reference=0.5)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(raw))
    out = tmp_path / "grads.pt"
    with socket.socket() as sock:  # a free loopback port, so parallel test runs do not collide
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(port), str(Path(__file__).with_name("ddp_grad_worker.py")), str(cfg_path), str(out)],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = torch.load(out, weights_only=True)["grads"]

    cfg = TrainConfig(**{k: (Path(v) if k in ("data_root", "priors_dir", "out_dir") else v) for k, v in raw.items()})
    run = setup(cfg, "cpu")  # same initial weights: built from the same SVD folder and seed
    compute_gradients(run, 1)
    single = {n: p.grad for n, p in run.net.named_parameters() if p.grad is not None}
    assert set(single) == set(ddp)
    for name, g in single.items():
        torch.testing.assert_close(ddp[name], g, rtol=1e-4, atol=1e-6, msg=name)
    assert sum(float(g.abs().sum()) for g in single.values()) > 0
