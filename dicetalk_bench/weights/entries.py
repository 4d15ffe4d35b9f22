"""The table of every pretrained file dicetalk_bench uses, as data: one :class:`WeightsEntry` per file or folder.

Hashes are pinned where a public source gives them (``sha256_source`` says which); an entry without an automatic
source says where to download it by hand (``manual``). Add an entry here (see docs/architecture.md); the module that
loads it registers its random-weights builder itself.
"""

from __future__ import annotations

from dicetalk_bench.datasets import MEAD_EMOTIONS

from .entry import WeightsEntry

# mediapipe 0.10.21 is the last release whose wheel bundles the BlazeFace tflite models
# (later wheels fetch them at run time). The file hashes below were computed from
# mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl (wheel sha256 05dc4a9e...cfe3).
MEDIAPIPE_WHEEL_SPEC = "mediapipe==0.10.21"
_WHEEL_PIP_FLAGS = (
    "--no-deps", "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64",
    "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
)

_NC = "CC BY-NC-SA 4.0 (non-commercial, share-alike; (c) the DICE-Talk authors, Tan et al. 2025)"
_MEAD_NC = "MEAD licence: non-commercial research only"
_PRIOR_NAMES = tuple(f"{e}.npy" for e in MEAD_EMOTIONS)
_DICETALK_HF = "https://huggingface.co/EEEELY/DICE-Talk"
_DICETALK_MANUAL = (f"{_DICETALK_HF} (or the Google Drive link in the toto222/DICE-Talk README); "
                    "put the file into $DICETALK_BENCH_WEIGHTS_DIR")
_VGG_LIPSYNC = "https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/"
_ADRIANB = "https://www.adrianbulat.com/downloads/python-fan/"

_ENTRIES: tuple[WeightsEntry, ...] = (
    # ---- DICE-Talk model -----------------------------------------------------------------
    WeightsEntry(
        key="svd-xt", filename="stable-video-diffusion-img2vid-xt", kind="folder", sha256=None, size_bytes=None,
        licence="Stability AI Community License (see the model card; earlier releases: SVD non-commercial licence)",
        source_url="https://huggingface.co/stabilityai/stable-video-diffusion-img2vid-xt",
        component="dicetalk_bench.model (VAE, CLIP image encoder, base UNet, scheduler)",
        manual=("huggingface-cli download stabilityai/stable-video-diffusion-img2vid-xt --local-dir "
                "$DICETALK_BENCH_WEIGHTS_DIR/stable-video-diffusion-img2vid-xt (gated: accept the licence first)"),
        notes="diffusers folder; the manifest covers every non-hidden file you downloaded, so pin it with verify --pin",
    ),
    WeightsEntry(
        key="whisper-tiny", filename="whisper-tiny", kind="folder", sha256=None, size_bytes=None,
        licence="MIT (OpenAI Whisper)", source_url="https://huggingface.co/openai/whisper-tiny",
        component="dicetalk_bench.preprocessing.whisper (audio features)",
        manual="huggingface-cli download openai/whisper-tiny --local-dir $DICETALK_BENCH_WEIGHTS_DIR/whisper-tiny",
        notes="transformers folder",
    ),
    WeightsEntry(
        key="dicetalk-unet", filename="unet.pth", kind="file", sha256=None, size_bytes=None, licence=_NC,
        source_url=_DICETALK_HF, component="dicetalk_bench.model (fine-tuned SVD UNet with IP-adapter branches)",
manual=_DICETALK_MANUAL,
        notes="loaded strict=False on top of svd-xt/unet upstream",
    ),
    WeightsEntry(
        key="dicetalk-pose-guider", filename="pose_guider.pth", kind="file", sha256=None, size_bytes=None,
        licence=_NC, source_url=_DICETALK_HF, component="dicetalk_bench.model (PoseGuider)",
manual=_DICETALK_MANUAL,
    ),
    WeightsEntry(
        key="dicetalk-audio-linear", filename="audio_linear.pth", kind="file", sha256=None, size_bytes=None,
        licence=_NC, source_url=_DICETALK_HF, component="dicetalk_bench.model (AudioProjModel)",
manual=_DICETALK_MANUAL,
    ),
    WeightsEntry(
        key="dicetalk-emo-model", filename="emo_model.pth", kind="file", sha256=None, size_bytes=None,
        licence=_NC, source_url=_DICETALK_HF, component="dicetalk_bench.model (EmotionModel: bank, attention)",
manual=_DICETALK_MANUAL,
    ),
    WeightsEntry(
        key="dicetalk-priors", filename="emo", kind="folder",
        # Manifest of the 8 released priors (toto222/DICE-Talk@a8a92b1 examples/emo/*.npy), 1,403 bytes each.
        sha256="65d53f47d3fecfee64e44590425740d0def7dc7b434913cb6858b2ae397bc1ba", size_bytes=8 * 1403,
        licence=_NC + "; MEAD-derived emotion set (" + _MEAD_NC + ")",
        source_url="https://github.com/toto222/DICE-Talk/tree/a8a92b1/examples/emo",
        component="dicetalk_bench.model (P-mode emotion priors mu, (1, 256) float32 each)",
        manual=("copy examples/emo/*.npy of a toto222/DICE-Talk checkout (commit a8a92b1) into "
                "$DICETALK_BENCH_WEIGHTS_DIR/emo/"),
        files=_PRIOR_NAMES, sha256_source="reference note official_priors (release files at a8a92b1)",
        notes="pickled .npy (dict {'mu': array}); load through a restricted unpickler",
    ),
    WeightsEntry(
        key="rife-hdv3", filename="flownet.pkl", kind="file", sha256=None, size_bytes=None,
        licence="MIT (RIFE, Huang et al. ECCV 2022: megvii-research/ECCV2022-RIFE, hzwer/Practical-RIFE)",
        source_url=_DICETALK_HF + " (RIFE/flownet.pkl)",
        component="dicetalk_bench.model.rife (12.5 -> 25 fps interpolation of the release's sampling)",
manual=_DICETALK_MANUAL,
        notes="HDv3 IFNet state dict with a `module.` prefix (DataParallel); which RIFE HDv3 version the release "
              "ships is not stated, so pin the downloaded file with verify --pin",
    ),
    # ---- Metric extractors -------------------------------------------------------------------
    WeightsEntry(
        key="inception-fid", filename="pt_inception-2015-12-05-6726825d.pth", kind="file",
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2", size_bytes=None,
        licence="Apache-2.0 (pytorch-fid / torch-fidelity port of TF inception-2015-12-05)",
        source_url="https://github.com/mseitzer/pytorch-fid/releases/tag/fid_weights",
        component="dicetalk_bench.metrics.inception (FID)", torch_hub=True,
        download_url=("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                      "pt_inception-2015-12-05-6726825d.pth"),
        alt_filenames=("weights-inception-2015-12-05-6726825d.pth",),
        sha256_source="torch.hub name prefix 6726825d; full hash recorded identically by several public projects",
        notes="torch-fidelity ships the same bytes as weights-inception-2015-12-05-6726825d.pth (either name is found)",
    ),
    WeightsEntry(
        key="i3d-400", filename="i3d_pretrained_400.pt", kind="file", sha256=None, size_bytes=None,
        licence="Apache-2.0 (piergiaj/pytorch-i3d port of DeepMind Kinetics-400 I3D)",
        source_url="https://github.com/songweige/TATS (tats/fvd/i3d_pretrained_400.pt)",
        component="dicetalk_bench.metrics.i3d (FVD, videogpt/cd-fvd layout)",
        manual="i3d_pretrained_400.pt from github.com/songweige/TATS (tats/fvd/), as cd-fvd and DisCo use it",
    ),
    WeightsEntry(
        key="i3d-torchscript", filename="i3d_torchscript.pt", kind="file", sha256=None, size_bytes=None,
        licence="unstated (StyleGAN-V release; the repository has no LICENSE file)",
        source_url="https://github.com/universome/stylegan-v (src/metrics/frechet_video_distance.py)",
        component="dicetalk_bench.metrics.i3d (FVD, StyleGAN-V TorchScript backend)",
        manual="the i3d_torchscript.pt link in universome/stylegan-v src/metrics/frechet_video_distance.py",
        notes="TorchScript: loaded with load_torchscript() only after the hash check",
    ),
    WeightsEntry(
        key="syncnet", filename="syncnet_v2.model", kind="file",
        sha256="961e8696f888fce4f3f3a6c3d5b3267cf5b343100b238e79b2659bff2c605442", size_bytes=54_573_114,
        licence="research use, Creative Commons Attribution (VGG lipsync page); code MIT",
        source_url="https://www.robots.ox.ac.uk/~vgg/software/lipsync/", component="dicetalk_bench.metrics.syncnet",
        download_url=_VGG_LIPSYNC + "syncnet_v2.model",
        sha256_source="prefix/suffix 961e8696...5442 in syncnet-python 0.2.3 METADATA; full hash from public projects",
    ),
    WeightsEntry(
        key="fan-2d", filename="2DFAN4-11f355bf06.pth.tar", kind="file",
        sha256="11f355bf0693120222f5955ce3f9dc8fb5763ebb30a47d7906e509490d32e4aa", size_bytes=None,
        licence="BSD-3-Clause (face-alignment, A. Bulat)", source_url=_ADRIANB + "2DFAN4-11f355bf06.pth.tar",
        component="dicetalk_bench.preprocessing.landmarks (face-alignment FAN, 68 landmarks)", torch_hub=True,
        download_url=_ADRIANB + "2DFAN4-11f355bf06.pth.tar",
        sha256_source="torch.hub name prefix 11f355bf06; full hash recorded by a public project",
    ),
    WeightsEntry(
        key="s3fd", filename="s3fd-619a316812.pth", kind="file",
        sha256="619a31681264d3f7f7fc7a16a42cbbe8b23f31a256f75a366e5a1bcd59b33543", size_bytes=None,
        licence="BSD-3-Clause (face-alignment, A. Bulat)", source_url=_ADRIANB + "s3fd-619a316812.pth",
        component="dicetalk_bench.preprocessing.landmarks (face-alignment S3FD detector)", torch_hub=True,
        download_url=_ADRIANB + "s3fd-619a316812.pth",
        sha256_source="torch.hub name prefix 619a316812; full hash recorded by a public project",
    ),
    WeightsEntry(
        key="lpips-alex", filename="alexnet-owt-7be5be79.pth", kind="file",
        sha256="7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02", size_bytes=244_862_944,
        licence=("BSD-3-Clause (torchvision); ImageNet-trained weights: ImageNet terms (non-commercial research). "
                 "LPIPS linear layers: BSD-2-Clause, inside the lpips wheel"),
        source_url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        component="dicetalk_bench.metrics.pixel (LPIPS, net='alex', version 0.1)", torch_hub=True,
        download_url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        sha256_source="torch.hub name prefix 7be5be79; full hash recorded by a public project",
        notes=("this is the AlexNet backbone that lpips.LPIPS(net='alex') loads through torchvision from "
               "$TORCH_HOME/hub/checkpoints; the linear layers lpips/weights/v0.1/alex.pth ship in the lpips 0.1.4 "
               "wheel (sha256 df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0, 6,009 bytes)"),
    ),
    WeightsEntry(
        key="emotion-fan", filename="self_relation-attention_61_84.3655", kind="file", sha256=None,
        size_bytes=None,
        licence="non-commercial research: trained on MEAD (" + _MEAD_NC + "); Emotion-FAN code licence unstated",
        source_url="https://github.com/yuangan/evaluation_eat (authors' Google Drive archive)",
        component="dicetalk_bench.metrics.emotion (Emo-Acc, Emotion-FAN ResNet18 MEAD-8, EAT protocol)",
        manual="the Emotion-FAN MEAD checkpoint in the evaluation_eat Google Drive archive (yuangan/evaluation_eat)",
    ),
    WeightsEntry(
        key="hsemotion-enet-b0-8", filename="enet_b0_8_best_afew.pt", kind="file", sha256=None, size_bytes=None,
        licence="Apache-2.0 (HSEmotion code and models); trained on AffectNet (research-use dataset licence)",
        source_url="https://github.com/HSE-asavchenko/face-emotion-recognition (models/affectnet_emotions)",
        component="dicetalk_bench.metrics.emotion (Emo-Acc, HSEmotion EfficientNet-B0 AffectNet-8)",
        manual="enet_b0_8_best_afew.pt from github.com/HSE-asavchenko/face-emotion-recognition (models/)",
        pickled=True, converted_filename="enet_b0_8_best_afew.safetensors",
        notes="a whole pickled timm model: run `weights convert hsemotion-enet-b0-8 --trust-pickle IN OUT` once",
    ),
    WeightsEntry(
        key="arcface-r100", filename="arcface_r100.pth", kind="file", sha256=None, size_bytes=None,
        licence="insightface pretrained models: non-commercial research only",
        source_url="https://github.com/deepinsight/insightface (model_zoo, ArcFace ResNet-100)",
        component="dicetalk_bench.metrics.identity (CSIM)",
        manual="an ArcFace ResNet-100 state dict from the insightface model zoo, saved as arcface_r100.pth",
    ),
    WeightsEntry(
        key="blazeface-short", filename="face_detection_short_range.tflite", kind="file",
        sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8", size_bytes=229_714,
        licence="Apache-2.0 (MediaPipe)", source_url="https://pypi.org/project/mediapipe/0.10.21/",
        component="dicetalk_bench.preprocessing.faces (BlazeFace short range, faces within ~2 m)",
        wheel=(MEDIAPIPE_WHEEL_SPEC, "mediapipe/modules/face_detection/face_detection_short_range.tflite"),
        sha256_source="computed from the mediapipe 0.10.21 cp311 manylinux_2_28_x86_64 wheel",
    ),
    WeightsEntry(
        key="blazeface-full", filename="face_detection_full_range_sparse.tflite", kind="file",
        sha256="2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1", size_bytes=676_746,
        licence="Apache-2.0 (MediaPipe)", source_url="https://pypi.org/project/mediapipe/0.10.21/",
        component="dicetalk_bench.preprocessing.faces (BlazeFace full range sparse, for 1080p frames)",
        wheel=(MEDIAPIPE_WHEEL_SPEC, "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite"),
        sha256_source="computed from the mediapipe 0.10.21 cp311 manylinux_2_28_x86_64 wheel",
    ),
)
