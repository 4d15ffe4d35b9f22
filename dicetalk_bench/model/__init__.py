"""The DICE-Talk network (arXiv:2504.18087), its emotion embedder, training loop and sampler.

Modules: ``config`` (PAPER / TINY sizes), ``attention`` (decoupled IP cross-attention), ``unet`` (SVD UNet with
DICE-Talk conditioning), ``pose_guider``, ``audio_proj``, ``emotion_bank``, ``official`` (release checkpoints),
``priors`` (safe .npy emotion priors), ``emotion_embedder`` (V-mode embedder), ``sampling`` (pure sampler maths).
Import the submodules directly; this package imports nothing heavy.
"""
