"""Network tests: shapes through every module, official names on the meta device, adapter init, VQ gradients."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from dicetalk_bench.model.attention import CrossAttnContext, DecoupledCrossAttnProcessor
from dicetalk_bench.model.audio_proj import AudioProjModel
from dicetalk_bench.model.config import PAPER, TINY, get_model_config
from dicetalk_bench.model.emotion_bank import EmotionModel, vector_quantise
from dicetalk_bench.model.network import (DiceTalkNetwork, build_audio_proj, build_emotion_model,
                                          build_pose_guider)
from dicetalk_bench.model.unet import build_unet, unet_kwargs

DATA = Path(__file__).resolve().parents[1] / "data"


def official_keys(name: str) -> dict[str, tuple[int, ...]]:
    """Read tests/data/official_keys_<name>.tsv (first line: '# source')."""
    lines = (DATA / f"official_keys_{name}.tsv").read_text().splitlines()
    assert lines[0].startswith("# ") and "a8a92b1" in lines[0]
    return {n: tuple(ast.literal_eval(s)) for n, s in (line.split("\t") for line in lines[1:])}


def shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize(
    "name, builder, n_params",
    [
        ("pose_guider", build_pose_guider, 1_086_480),
        ("audio_linear", build_audio_proj, 54_300_672),
        ("emo_model", build_emotion_model, 74_860_822),
        ("unet_svd_xt_with_ip_adapters", build_unet, 1_626_859_242),
    ],
)
def test_paper_modules_have_official_names_and_shapes(name, builder, n_params):
    with torch.device("meta"):
        module = builder(PAPER)
    ours, official = shapes(module), official_keys(name)
    assert sorted(ours) == sorted(official)
    assert ours == official
    assert sum(p.numel() for p in module.parameters()) == n_params


def test_paper_unet_has_two_ip_branches_on_every_cross_attention():
    with torch.device("meta"):
        unet = build_unet(PAPER)
    ip = [k for k in unet.state_dict() if ".processor.to_" in k]
    assert len(ip) == 128  # 32 attn2 layers (16 spatial + 16 temporal) x {k, v} x 2 branches
    assert sum(unet.state_dict()[k].numel() for k in ip) == 102_236_160
    assert not any("attn1.processor" in k for k in unet.state_dict())


def test_ip_kv_initialised_from_layer_kv():
    torch.manual_seed(0)
    unet = build_unet(TINY)
    n = 0
    for name, module in unet.named_modules():
        if name.endswith("attn2"):
            for i in range(2):
                assert torch.equal(module.processor.to_k_ip[i].weight, module.to_k.weight)
                assert torch.equal(module.processor.to_v_ip[i].weight, module.to_v.weight)
            n += 1
    assert n == 8  # tiny: down 1 + mid 1 + up 2 transformers, each with one spatial and one temporal attn2


def test_unet_without_conditions_equals_stock_diffusers():
    """With no IP tokens and frame-constant CLIP tokens, our forward reproduces diffusers' forward."""
    from diffusers import UNetSpatioTemporalConditionModel

    torch.manual_seed(0)
    ours = build_unet(TINY).eval()
    stock = UNetSpatioTemporalConditionModel(**unet_kwargs(TINY)).eval()
    result = stock.load_state_dict(ours.state_dict(), strict=False)
    assert result.missing_keys == [] and all(".processor." in k for k in result.unexpected_keys)
    x, clip = torch.randn(2, 3, 8, 8, 8), torch.randn(2, 1, 32)
    ids, t = torch.tensor([[12.5, 8.0, 16.0]] * 2), torch.tensor([0.3, -0.7])
    with torch.no_grad():
        a = ours(x, t, clip, ids).sample
        b = stock(x, t, clip, ids).sample
    assert a.shape == (2, 3, 4, 8, 8)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def _toy_attention(dim: int = 16, heads: int = 2):
    from diffusers.models.attention_processor import Attention

    torch.manual_seed(1)
    attn = Attention(query_dim=dim, cross_attention_dim=12, heads=heads, dim_head=dim // heads)
    proc = DecoupledCrossAttnProcessor(12, dim, (3, 5), (0.5, 2.0))
    proc.init_from_attention(attn)
    with torch.no_grad():  # make the branches differ from the main K/V
        for p in proc.parameters():
            p.add_(0.1 * torch.randn_like(p))
    attn.set_processor(proc)
    return attn, proc


def _ref_attention(q, k, v, heads):
    n, lq, c = q.shape
    d = c // heads
    q, k, v = (x.reshape(x.shape[0], x.shape[1], heads, d).permute(0, 2, 1, 3) for x in (q, k, v))
    w = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1)
    return (w @ v).permute(0, 2, 1, 3).reshape(n, lq, c)


def test_processor_matches_closed_form_with_masks():
    attn, proc = _toy_attention()
    h = torch.randn(4, 7, 16)
    clip, a, e = torch.randn(4, 1, 12), torch.randn(4, 3, 12), torch.randn(4, 5, 12)
    mask = (torch.rand(4, 7) > 0.5).float()
    out = attn(h, encoder_hidden_states=CrossAttnContext(clip, (a, e), (mask, None)))
    q = attn.to_q(h)
    ref = _ref_attention(q, attn.to_k(clip), attn.to_v(clip), 2)
    ref = ref + 0.5 * mask[..., None] * _ref_attention(q, proc.to_k_ip[0](a), proc.to_v_ip[0](a), 2)
    ref = ref + 2.0 * _ref_attention(q, proc.to_k_ip[1](e), proc.to_v_ip[1](e), 2)
    torch.testing.assert_close(out, attn.to_out[0](ref), rtol=1e-5, atol=1e-5)


def test_processor_context_rows_are_shared_by_consecutive_queries():
    attn, _ = _toy_attention()
    h = torch.randn(6, 4, 16)
    ctx = CrossAttnContext(torch.randn(2, 1, 12), (torch.randn(2, 3, 12), torch.randn(2, 5, 12)))
    expanded = CrossAttnContext(ctx.clip.repeat_interleave(3, 0),
                                tuple(t.repeat_interleave(3, 0) for t in ctx.ip_tokens))
    torch.testing.assert_close(attn(h, encoder_hidden_states=ctx), attn(h, encoder_hidden_states=expanded))


def test_processor_rejects_wrong_token_counts():
    attn, _ = _toy_attention()
    with pytest.raises(ValueError, match="expected 3 tokens"):
        attn(torch.randn(1, 4, 16), encoder_hidden_states=CrossAttnContext(
            torch.randn(1, 1, 12), (torch.randn(1, 4, 12), torch.randn(1, 5, 12))))
    with pytest.raises(ValueError, match="2 IP token streams"):
        attn(torch.randn(1, 4, 16), encoder_hidden_states=CrossAttnContext(
            torch.randn(1, 1, 12), (torch.randn(1, 3, 12),)))


def test_temporal_blocks_see_frame_averaged_tokens():
    from dicetalk_bench.model.unet import _Conditions, _temporal_context

    tokens = torch.randn(2 * 5, 4, 8)
    cond = _Conditions(clip=torch.randn(10, 1, 8), ip_tokens=(tokens, tokens * 2), face_mask=None, num_frames=5)
    ctx = _temporal_context(cond)
    torch.testing.assert_close(ctx.ip_tokens[0], tokens.reshape(2, 5, 4, 8).mean(1))
    assert ctx.clip.shape == (2, 1, 8) and ctx.ip_masks is None


def test_face_mask_confines_conditions_in_spatial_blocks():
    """With a zero face mask, audio/emotion reach the output only through the temporal (clip-averaged) path:
    changing one frame's audio while keeping the clip average fixed leaves the output unchanged."""
    torch.manual_seed(0)
    unet = build_unet(TINY).eval()
    x, clip, ids = torch.randn(1, 4, 8, 8, 8), torch.randn(1, 1, 32), torch.tensor([[12.5, 8.0, 16.0]])
    audio, emo = torch.randn(1, 4, 4, 32), torch.randn(1, 4, 4, 32)
    swapped = audio.flip(1)  # same frame average, different per-frame tokens
    zero = torch.zeros(1, 4, 1, 64, 64)
    ones = torch.ones(1, 4, 1, 64, 64)
    with torch.no_grad():
        run = lambda a, m: unet(x, 0.1, clip, ids, audio_tokens=a, emotion_tokens=emo, face_mask=m).sample
        torch.testing.assert_close(run(audio, zero), run(swapped, zero), rtol=1e-5, atol=1e-5)
        assert (run(audio, ones) - run(swapped, ones)).abs().max() > 1e-3


def test_tiny_network_shapes_and_backward():
    torch.manual_seed(0)
    net = DiceTalkNetwork(TINY)
    b, f = 2, 3
    out = net(torch.randn(b, f, 8, 8, 8), torch.tensor([0.1, 0.2]), torch.randn(b, 1, 32),
              torch.tensor([[12.5, 8.0, 16.0]] * b), torch.randn(b, f, 10, 5, 384), torch.randn(b, f, 256),
              torch.ones(b, f, 3, 64, 64), drop_conditions=torch.tensor([True, False]), retrieval=True)
    assert out.unet.sample.shape == (b, f, 4, 8, 8)
    assert out.unet.mid_features.shape == (b * f, 64, 4, 4)
    assert out.emotion.tokens.shape == (b, f, 4, 32)
    logits = net.emo_model.classifier(out.unet.mid_features)
    assert logits.shape == (b * f, 22)
    (out.unet.sample.square().mean() + out.emotion.vq_loss + logits.logsumexp(1).mean()).backward()
    assert net.audio_proj.proj1.weight.grad.abs().sum() > 0
    assert net.emo_model.codebook.codebook.weight.grad.abs().sum() > 0


def test_pose_guider_shapes_and_zero_init():
    pg = build_pose_guider(PAPER)
    mask = torch.rand(1, 2, 3, 64, 48)
    out = pg(mask)
    assert out.shape == (1, 2, 320, 8, 6)
    assert torch.count_nonzero(out) == 0  # zero-initialised conv_out: a fresh guider leaves the UNet unchanged
    with pytest.raises(ValueError, match=r"\(B, F, C, H, W\)"):
        pg(torch.rand(2, 3, 64, 64))


def test_audio_proj_shapes_and_errors():
    proj = AudioProjModel(10, 5, 384, 16, 8, 3)
    out = proj(torch.randn(2, 7, 10, 5, 384))
    assert out.shape == (2, 7, 3, 8)
    torch.testing.assert_close(out.mean(-1), torch.zeros(2, 7, 3), atol=1e-5, rtol=0)  # LayerNorm over tokens
    with pytest.raises(ValueError, match="10, 5, 384"):
        proj(torch.randn(2, 10, 4, 384))


def test_vector_quantise_values_loss_and_straight_through_gradient():
    torch.manual_seed(0)
    codebook = torch.randn(6, 4, requires_grad=True)
    z = torch.randn(5, 4, requires_grad=True)
    q_st, loss, idx = vector_quantise(z, codebook, 0.25)
    nearest = torch.cdist(z.detach(), codebook.detach()).argmin(1)
    assert torch.equal(idx, nearest)
    torch.testing.assert_close(q_st, codebook[idx].detach())
    expected = 1.25 * F.mse_loss(codebook[idx].detach(), z.detach())
    torch.testing.assert_close(loss, expected)
    g = torch.randn(5, 4)
    (gz,) = torch.autograd.grad((q_st * g).sum(), z, retain_graph=True)
    torch.testing.assert_close(gz, g)  # straight-through: identity Jacobian
    gz_loss, gc_loss = torch.autograd.grad(loss, (z, codebook))
    diff = (z - codebook[idx]).detach()
    torch.testing.assert_close(gz_loss, 0.25 * 2 * diff / diff.numel())
    expected_c = torch.zeros(6, 4).index_add_(0, idx, -2 * diff / diff.numel())
    torch.testing.assert_close(gc_loss, expected_c)


def test_emotion_model_modes_and_dropout():
    torch.manual_seed(0)
    emo: EmotionModel = build_emotion_model(TINY).eval()
    prior = torch.randn(2, 3, 256)
    agg = emo(prior, retrieval=False)
    ret = emo(prior, retrieval=True)
    assert agg.tokens.shape == ret.tokens.shape == (2, 3, 4, 32)
    assert agg.vq_loss.item() == 0.0 and ret.vq_loss.item() > 0.0
    assert agg.indices.shape == (2, 3)
    dropped = emo(prior, drop=torch.tensor([True, False]), retrieval=True)
    null = emo(torch.zeros_like(prior), retrieval=True)
    # retrieval with a dropped row: zero prior and zero code, as the release's mask hook
    kv0 = emo.kv_tokens_linear(torch.zeros(1, 1, 1, 32))
    q0 = emo.emo_linear(torch.zeros(1, 1, 1, 256))
    torch.testing.assert_close(dropped.tokens[0], emo.attention(q0, kv0).expand(3, -1, -1))
    torch.testing.assert_close(dropped.tokens[1], ret.tokens[1])
    assert not torch.allclose(null.tokens[0], dropped.tokens[0])  # null prior still retrieves a code
    with pytest.raises(ValueError, match="256"):
        emo(torch.randn(2, 3, 128))


def test_model_config_lookup():
    assert get_model_config("tiny") is TINY and get_model_config("paper") is PAPER
    with pytest.raises(ValueError, match="tiny"):
        get_model_config("huge")
    with pytest.raises(Exception):
        TINY.ip_scales = (0.0, 0.0)  # frozen


def test_face_mask_downsampling_equals_diffusers_ip_adapter_mask_processor():
    """The release downsamples the face mask with diffusers' IPAdapterMaskProcessor.downsample (bicubic) for every
    block; ours must give the same weights per query position (a soft LANCZOS-edged mask, 64 px -> 8 and 4)."""
    from diffusers.image_processor import IPAdapterMaskProcessor

    from dicetalk_bench.model.release_image import soft_face_mask
    from dicetalk_bench.model.unet import downsample_face_mask

    mask = torch.from_numpy(soft_face_mask((30, 25, 150, 170), 192, 192, 64, 64))[None, None]
    for side in (8, 4):
        ours = downsample_face_mask(mask, side, side).flatten(1)
        ref = IPAdapterMaskProcessor.downsample(mask[:, 0], 1, side * side, 1)[..., 0]
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
    area = torch.nn.functional.adaptive_avg_pool2d(mask, (8, 8)).flatten(1)
    assert (downsample_face_mask(mask, 8, 8).flatten(1) - area).abs().max() > 0.05  # not area averaging
