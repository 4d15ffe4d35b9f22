"""torchrun worker of test_model_ddp.py: gradients of training step 1 on this rank's share of the batch.

Usage: torchrun --nproc_per_node 2 ddp_grad_worker.py CONFIG_JSON OUT_PT (rank 0 writes OUT_PT).
"""

import json
import sys
from pathlib import Path

import torch

from dicetalk_bench.model.train_loop import TrainConfig, compute_gradients, setup

torch.set_num_threads(1)
raw = json.loads(Path(sys.argv[1]).read_text())
cfg = TrainConfig(**{k: (Path(v) if k in ("data_root", "priors_dir", "out_dir") else v) for k, v in raw.items()})
run = setup(cfg, "cpu")
assert run.world == 2, run.world
terms = compute_gradients(run, 1)
grads = {n: p.grad.clone() for n, p in run.net.named_parameters() if p.grad is not None}
if run.rank == 0:
    torch.save({"grads": grads, "loss": float(terms["diffusion"])}, sys.argv[2])
torch.distributed.destroy_process_group()
