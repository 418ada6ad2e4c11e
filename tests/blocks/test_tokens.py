"""Token blocks (gatedxattn, qformer): the reference code written out (open_flamingo's
``GatedCrossAttentionBlock``, LAVIS's ``BertLayer`` on the query path) and compared; parameters,
MACs and qformer's backward split by hand; NxC inputs on the command line."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fusioncli import create_fusion
from fusioncli.analysis import analyze
from fusioncli.errors import SpecError

from cli_helpers import run_main


def randomize(block, seed=5, scale=0.2):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in block.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)


def gated_xattn_reference(x, media, w, heads, dim_head):
    """open_flamingo helpers.py: MaskedCrossAttention (media_locations None) and GatedCrossAttentionBlock,
    with einops' rearranges written as reshapes and media given as (B, T_img=1, n, D)."""
    media = media.unsqueeze(1)
    h = heads
    xn = F.layer_norm(x, x.shape[-1:], w["norm.weight"], w["norm.bias"])
    q = F.linear(xn, w["to_q.weight"])
    media = media.flatten(1, 2)  # "b t n d -> b (t n) d"
    k, v = F.linear(media, w["to_kv.weight"]).chunk(2, dim=-1)
    q, k, v = (t.reshape(t.shape[0], t.shape[1], h, -1).permute(0, 2, 1, 3) for t in (q, k, v))  # b n (h d) -> b h n d
    q = q * dim_head ** -0.5
    sim = torch.einsum("... i d, ... j d -> ... i j", q, k)
    sim = sim - sim.amax(dim=-1, keepdim=True).detach()
    attn = sim.softmax(dim=-1)
    out = torch.einsum("... i j, ... j d -> ... i d", attn, v)
    out = out.permute(0, 2, 1, 3).flatten(2)  # b h n d -> b n (h d)
    x = F.linear(out, w["to_out.weight"]) * w["attn_gate"].tanh() + x
    ff = F.linear(F.gelu(F.linear(F.layer_norm(x, x.shape[-1:], w["ff.0.weight"], w["ff.0.bias"]), w["ff.1.weight"])),
                  w["ff.3.weight"])
    return ff * w["ff_gate"].tanh() + x


@pytest.mark.parametrize("dims,heads,dim_head", [((32, 32), 4, 16), ((24, 40), 2, 8)])
def test_gatedxattn_equals_the_reference_code(dims, heads, dim_head):
    torch.manual_seed(0)
    block = create_fusion("gatedxattn", list(dims), dims[0], num_heads=heads, dim_head=dim_head).eval()
    randomize(block)
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    assert w["attn_gate"].abs() > 0.01 and w["ff_gate"].abs() > 0.01  # both gates open
    gen = torch.Generator().manual_seed(1)
    x, media = torch.randn(2, 7, dims[0], generator=gen), torch.randn(2, 11, dims[1], generator=gen)
    with torch.no_grad():
        y = block(x, media)
    assert y.shape == (2, 7, dims[0])
    torch.testing.assert_close(y, gated_xattn_reference(x, media, w, heads, dim_head), rtol=1e-5, atol=1e-5)


def test_gatedxattn_starts_as_the_identity():
    block = create_fusion("gatedxattn", [32, 48], 32).eval()
    x = torch.randn(1, 5, 32)
    with torch.no_grad():
        assert torch.equal(block(x, torch.randn(1, 9, 48)), x)  # tanh(0) = 0 on both branches


def bert_attention(x, context, w, prefix, heads):
    """LAVIS BertSelfAttention (masks of zeros left out, dropout off) and BertSelfOutput."""
    q = F.linear(x, w[f"{prefix}.query.weight"], w[f"{prefix}.query.bias"])
    k = F.linear(context, w[f"{prefix}.key.weight"], w[f"{prefix}.key.bias"])
    v = F.linear(context, w[f"{prefix}.value.weight"], w[f"{prefix}.value.bias"])
    d = x.shape[-1] // heads

    def transpose_for_scores(t):
        return t.view(*t.shape[:-1], heads, d).permute(0, 2, 1, 3)

    q, k, v = transpose_for_scores(q), transpose_for_scores(k), transpose_for_scores(v)
    scores = torch.matmul(q, k.transpose(-1, -2)) / d ** 0.5
    ctx = torch.matmul(torch.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).contiguous().flatten(2)
    out = F.linear(ctx, w[f"{prefix}.dense.weight"], w[f"{prefix}.dense.bias"])
    return F.layer_norm(out + x, x.shape[-1:], w[f"{prefix}.LayerNorm.weight"], w[f"{prefix}.LayerNorm.bias"], 1e-12)


def qformer_reference(image, w, heads):
    """Blip2Qformer: query_tokens.expand(B), BertEmbeddings' LayerNorm, then BertLayer with query_length = n:
    self-attention, cross-attention to the image, feed_forward_chunk_query."""
    queries = w["query_tokens"].expand(image.shape[0], -1, -1)
    h = F.layer_norm(queries, queries.shape[-1:], w["embed_norm.weight"], w["embed_norm.bias"], 1e-12)
    h = bert_attention(h, h, w, "attention", heads)
    h = bert_attention(h, image, w, "crossattention", heads)
    inter = F.gelu(F.linear(h, w["intermediate_query.0.weight"], w["intermediate_query.0.bias"]))
    out = F.linear(inter, w["output_query.weight"], w["output_query.bias"])
    return F.layer_norm(out + h, h.shape[-1:], w["output_norm.weight"], w["output_norm.bias"], 1e-12)


@pytest.mark.parametrize("cin,heads,queries", [(48, 4, 6), (20, 2, 3)])
def test_qformer_equals_the_reference_code(cin, heads, queries):
    torch.manual_seed(0)
    block = create_fusion("qformer", [cin], 32, num_heads=heads, num_queries=queries).eval()
    randomize(block)
    w = {k: v.detach().clone() for k, v in block.state_dict().items()}
    image = torch.randn(2, 13, cin, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = block(image)
    assert y.shape == (2, queries, 32)
    torch.testing.assert_close(y, qformer_reference(image, w, heads), rtol=1e-5, atol=1e-5)


def test_parameters_by_hand():
    d = dv = 1024
    e = 8 * 64
    block = create_fusion("gatedxattn", [d, dv], d)
    # LN 2D, to_q D*E, to_kv Dv*2E, to_out E*D, gate 1, FFN LN 2D + D*4D + 4D*D, gate 1 (no biases)
    assert sum(p.numel() for p in block.parameters()) == \
        2 * d + d * e + dv * 2 * e + e * d + 1 + 2 * d + 2 * 4 * d * d + 1 == 10_489_858
    c, ci, i, n = 768, 1408, 3072, 32
    block = create_fusion("qformer", [ci], c)
    # queries n*C + LN 2C; self-attention q, k, v, dense (C*C + C each) + LN 2C; cross-attention q and dense
    # (C*C + C), k and v (Ci*C + C) + LN 2C; FFN C*I + I, I*C + C, LN 2C
    assert sum(p.numel() for p in block.parameters()) == \
        (n * c + 2 * c) + (4 * (c * c + c) + 2 * c) + (2 * (c * c + c) + 2 * (ci * c + c) + 2 * c) \
        + (c * i + i + i * c + c + 2 * c) == 10_460_928


def test_macs_by_hand():
    n1, n2, d, e, h = 64, 256, 1024, 512, 8
    r = analyze("gatedxattn", inputs=["64x1024", "256x1024"], out=d, time=False)
    # to_q, to_kv, Q K^T and A V per head (dh = 64), to_out, the FFN's two linears
    assert r.cost.macs == (n1 * d * e + n2 * d * 2 * e + 2 * h * n1 * n2 * 64 + n1 * e * d
                           + 2 * n1 * d * 4 * d) == 889_192_448
    assert r.outputs == [[1, n1, d]] and r.cost.uncounted_ops == {}
    r = analyze("qformer", time=False)
    assert r.cost.macs == QFORMER_FORWARD == 834_256_896
    assert r.outputs == [[1, 32, 768]]


# qformer at its default (257 image tokens of 1408, 32 queries of 768, 12 heads of 64), batch 1:
Q, N, C, CI, HD = 32, 257, 768, 1408, 12 * 64
SELF_LINEARS = 4 * Q * C * C                  # q, k, v, dense on the queries
SELF_PRODUCTS = 2 * 12 * Q * Q * 64           # Q K^T and A V
CROSS_Q_DENSE = 2 * Q * C * C                 # the cross-attention's query and dense
CROSS_KV = 2 * N * CI * C                     # keys and values from the image tokens
CROSS_PRODUCT = 12 * Q * N * 64               # each of Q K^T and A V
FFN = 2 * Q * C * 4 * C
QFORMER_FORWARD = SELF_LINEARS + SELF_PRODUCTS + CROSS_Q_DENSE + CROSS_KV + 2 * CROSS_PRODUCT + FFN


def test_qformer_backward_split_by_hand():
    """Every product's backward takes its forward MACs per operand needing a gradient (2x in all). Towards
    the image alone, only what the image reaches runs backward: the key and value linears' grad_input, the
    cross products' three activation gradients (K in Q K^T; A and V in A V), the dense and the FFN's
    grad_input. The rest, the queries' path and all weight gradients, exists for the parameters."""
    r = analyze("qformer", time=False, train=True)
    b = r.training.backward
    towards_image = CROSS_KV + 3 * CROSS_PRODUCT + Q * C * C + FFN
    assert b.macs == 2 * QFORMER_FORWARD
    assert b.grad_input_macs == towards_image == 744_628_224
    assert b.grad_weight_macs == 2 * QFORMER_FORWARD - towards_image == 923_885_568
    assert b.uncounted_ops == {}


def test_tokens_on_the_command_line():
    code, out, err = run_main("inspect", "gatedxattn", "--in", "64x1024", "--in", "256x1024", "--no-time",
                              "--format", "json")
    assert code == 0, err
    import json

    report = json.loads(out)
    report = report.get("reports", [report])[0] if isinstance(report, dict) else report[0]
    assert report["outputs"] == [[1, 64, 1024]] and report["cost"]["macs"] == 889_192_448


@pytest.mark.parametrize("args,words", [
    (("gatedxattn", "--in", "64x32x32", "--in", "256x1024"), ["--in: invalid value '64x32x32'", "NxC tokens"]),
    (("qformer", "--in", "257x1408", "--out", "770"), ["divisible by num_heads, got 770 and 12"]),
    (("gatedxattn", "--in", "64x512", "--in", "256x1024"), ["keeps the text width", "width 512, got 1024"]),
])
def test_bad_token_inputs(args, words):
    code, out, err = run_main("inspect", *args, "--no-time")
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and all(w in err for w in words), err


def test_token_blocks_refuse_maps_in_python():
    with pytest.raises(SpecError, match=r"takes tokens \(B, N, C\); input 0 has shape \(1, 8, 4, 4\)"):
        create_fusion("qformer", [8], 16, num_heads=2)(torch.randn(1, 8, 4, 4))
