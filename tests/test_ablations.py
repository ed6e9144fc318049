"""The appendix-B ablations of Slot Attention (paper appendix B, Figures 7-19 and the soft k-means reduction):
each option changes the computation as the paper describes, Proposition 1 still holds where it should, the
learning-rate schedule switches work, and every packaged experiment config loads.

Every comparison below runs two modules with the SAME parameters and the SAME initial slots, in float64, and
checks an exact relation (not merely that the outputs differ).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from slotlab.config import available_configs, config_dir, defaults_for, load_config, validate
from slotlab.modules.slot_attention import SlotAttention, soft_kmeans
from slotlab.train.schedule import lr_factor

B, N, K, D = 2, 30, 4, 16
# SlotAttention.step normalises the attention in float32 even for float64 modules (``logits.float()``), so a
# float64 recomputation agrees to float32 precision only.
TOL = {"rtol": 1e-5, "atol": 1e-6}


def attn_at(out, t: int) -> torch.Tensor:
    """Attention of iteration t (0-based) as float64: [B, K, N]."""
    return out.attn[:, t].double()


def make(seed: int = 0, **kw) -> SlotAttention:
    torch.manual_seed(seed)
    return SlotAttention(num_slots=K, dim=D, iters=3, hidden_dim=32, **kw).double()


def same_params(dst: SlotAttention, src: SlotAttention) -> SlotAttention:
    """Copy every parameter the two modules share (same name and shape) from ``src`` into ``dst``."""
    src_state = src.state_dict()
    own = dst.state_dict()
    dst.load_state_dict(
        {k: src_state[k] for k in own if k in src_state and src_state[k].shape == own[k].shape}, strict=False
    )
    return dst


def data(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, N, D, generator=g, dtype=torch.float64)  # [B, N, D]
    init = torch.randn(B, K, D, generator=g, dtype=torch.float64)  # [B, K, D]
    return x, init


def keys_values(sa: SlotAttention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unscaled keys and values of Algorithm 1: k(LN(x)), v(LN(x)), both [B, N, D]."""
    h = sa.norm_inputs(x)
    return sa.project_k(h), sa.project_v(h)


def randomize_layernorms(sa: nn.Module, seed: int = 3) -> None:
    """LayerNorm starts as weight 1 / bias 0; random affine parameters make the checks non-trivial."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in sa.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.copy_(1 + 0.5 * torch.randn(m.weight.shape, generator=g, dtype=m.weight.dtype))
                m.bias.copy_(0.5 * torch.randn(m.bias.shape, generator=g, dtype=m.bias.dtype))


# ------------------------------------------------------------------------------------------ the default


def test_default_equals_hand_written_algorithm_1():
    sa = make()
    randomize_layernorms(sa)
    x, init = data()
    out = sa(x, slots=init, iters=2)
    k, v = keys_values(sa, x)
    slots = init
    for t in range(2):
        q = sa.project_q(sa.norm_slots(slots))  # [B, K, D]
        attn = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(D), dim=1)  # over slots, [B, K, N]
        torch.testing.assert_close(attn_at(out, t), attn, **TOL)
        w = (attn + sa.eps) / (attn + sa.eps).sum(-1, keepdim=True)  # weighted mean over inputs
        updates = w @ v  # [B, K, D]
        slots = sa.gru(updates.reshape(-1, D), slots.reshape(-1, D)).view(B, K, D)
        slots = slots + sa.mlp(sa.norm_mlp(slots))
    torch.testing.assert_close(out.slots, slots, **TOL)


# ------------------------------------------------------------------------- aggregation (Figure 7)


def test_sum_aggregation_is_mean_times_attention_mass():
    # With the direct update and no MLP the slots after one iteration ARE the aggregated updates.
    mean = make(update="direct", mlp=False)
    summ = same_params(make(seed=5, aggregation="sum", update="direct", mlp=False), mean)
    x, init = data()
    a, b = mean(x, slots=init, iters=1), summ(x, slots=init, iters=1)
    torch.testing.assert_close(a.attn, b.attn)  # same attention, only line 8 differs
    mass = (attn_at(a, 0) + mean.eps).sum(-1, keepdim=True)  # [B, K, 1] attention mass per slot
    torch.testing.assert_close(b.slots, a.slots * mass, **TOL)
    assert not torch.allclose(b.slots, a.slots)


def test_sum_aggregation_feeds_the_gru_with_the_weighted_sum():
    sa = make(aggregation="sum")
    x, init = data()
    out = sa(x, slots=init, iters=1)
    _, v = keys_values(sa, x)
    updates = (attn_at(out, 0) + sa.eps) @ v  # weighted sum, [B, K, D]
    expected = sa.gru(updates.reshape(-1, D), init.reshape(-1, D)).view(B, K, D)
    expected = expected + sa.mlp(sa.norm_mlp(expected))
    torch.testing.assert_close(out.slots, expected, **TOL)


def test_sum_layernorm_is_layernorm_of_the_sum_updates():
    summ = make(aggregation="sum", update="direct", mlp=False)
    sln = same_params(make(seed=5, aggregation="sum_layernorm", update="direct", mlp=False), summ)
    assert isinstance(sln.norm_updates, nn.LayerNorm) and summ.norm_updates is None
    randomize_layernorms(sln.norm_updates)
    seen = {}
    sln.norm_updates.register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    x, init = data()
    sum_updates = summ(x, slots=init, iters=1).slots  # [B, K, D] = weighted sum of v
    out = sln(x, slots=init, iters=1)
    torch.testing.assert_close(seen["inp"], sum_updates)  # the LayerNorm sees the weighted sum ...
    w, bias = sln.norm_updates.weight, sln.norm_updates.bias
    eps = sln.norm_updates.eps
    assert eps == 1e-3  # Keras' default, as the reference code
    torch.testing.assert_close(out.slots, F.layer_norm(sum_updates, (D,), w, bias, eps))  # ... and its output is used
    torch.testing.assert_close(out.slots, seen["out"])


# --------------------------------------------------------------------- softmax axis (Figure 10)


def test_softmax_over_inputs_normalises_rows_not_columns():
    sa = make(softmax_axis="inputs")
    x, init = data()
    attn = sa(x, slots=init).attn  # [B, T, K, N]
    torch.testing.assert_close(attn.sum(-1), torch.ones(B, 3, K, dtype=attn.dtype))  # over N
    assert not torch.allclose(attn.sum(2), torch.ones(B, 3, N, dtype=attn.dtype))  # not over K
    default = make().forward(x, slots=init).attn
    torch.testing.assert_close(default.sum(2), torch.ones(B, 3, N, dtype=attn.dtype))  # default: over K


def test_softmax_over_inputs_removes_the_competition_between_slots():
    x, init = data()
    other = init.clone()
    other[:, 1:] = torch.randn_like(other[:, 1:])  # change every slot but slot 0
    indep = make(softmax_axis="inputs")
    a, b = indep(x, slots=init, iters=1), indep(x, slots=other, iters=1)
    torch.testing.assert_close(a.attn[:, 0, 0], b.attn[:, 0, 0])  # slot 0 does not see the others
    torch.testing.assert_close(a.slots[:, 0], b.slots[:, 0])
    comp = make()
    a, b = comp(x, slots=init, iters=1), comp(x, slots=other, iters=1)
    assert not torch.allclose(a.attn[:, 0, 0], b.attn[:, 0, 0])  # with the paper's axis it does


# --------------------------------------------------------------------- update function (Figure 11)


def test_direct_update_without_mlp_is_exactly_the_weighted_mean_of_v():
    sa = make(update="direct", mlp=False)
    assert sa.gru is None and not any(isinstance(m, nn.GRUCell) for m in sa.modules())
    x, init = data()
    out = sa(x, slots=init, iters=2)
    _, v = keys_values(sa, x)
    attn = attn_at(out, -1) + sa.eps  # [B, K, N]
    torch.testing.assert_close(out.slots, (attn / attn.sum(-1, keepdim=True)) @ v, **TOL)


def test_direct_update_keeps_the_residual_mlp():
    sa = make(update="direct")
    x, init = data()
    out = sa(x, slots=init, iters=1)
    _, v = keys_values(sa, x)
    attn = attn_at(out, 0) + sa.eps
    u = (attn / attn.sum(-1, keepdim=True)) @ v
    torch.testing.assert_close(out.slots, u + sa.mlp(sa.norm_mlp(u)), **TOL)


# ------------------------------------------------------------------------- LayerNorm (Figure 13)


def test_layer_norm_false_has_no_layernorm_and_is_not_scale_invariant():
    sa = make(layer_norm=False)
    assert not any(isinstance(m, nn.LayerNorm) for m in sa.modules())
    assert any(isinstance(m, nn.LayerNorm) for m in make().modules())
    x, init = data()
    a, b = sa(x, slots=init, iters=1), sa(3.0 * x, slots=init, iters=1)
    assert not torch.allclose(a.attn, b.attn, atol=1e-3)  # logits scale with the inputs


def test_layer_norm_makes_attention_invariant_to_input_scale():
    sa = make(layer_norm_eps=1e-8)
    x, init = data()
    a, b = sa(x, slots=init), sa(3.0 * x, slots=init)
    # LayerNorm(c x) = LayerNorm(x) up to its eps relative to the input variance (~1 here): a tiny eps isolates
    # the property (with the default 1e-3 the two differ by ~eps * (1 - 1/c^2) / 2).
    torch.testing.assert_close(a.attn, b.attn, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(a.slots, b.slots, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------- MLP (Figure 14)


def test_mlp_false_has_no_mlp_params_and_returns_the_gru_output():
    full = make()
    sa = same_params(make(seed=5, mlp=False), full)
    assert sa.mlp is None and not any(n.startswith("mlp.") for n, _ in sa.named_parameters())
    n_mlp = sum(p.numel() for p in full.mlp.parameters())
    assert sum(p.numel() for p in full.parameters()) - sum(p.numel() for p in sa.parameters()) == n_mlp
    x, init = data()
    out = sa(x, slots=init, iters=1)
    _, v = keys_values(sa, x)
    attn = attn_at(out, 0) + sa.eps
    u = (attn / attn.sum(-1, keepdim=True)) @ v
    torch.testing.assert_close(out.slots, sa.gru(u.reshape(-1, D), init.reshape(-1, D)).view(B, K, D), **TOL)
    assert not torch.allclose(out.slots, full(x, slots=init, iters=1).slots)


# ----------------------------------------------------------------------- temperature (Figure 15)


class _Scale(nn.Module):
    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.c


@pytest.mark.parametrize("temperature", [1.0, 0.5, 10.0])
def test_temperature_equals_default_with_rescaled_queries(temperature):
    default = make()
    warm = same_params(make(seed=5, temperature=temperature), default)
    x, init = data()
    out = warm(x, slots=init)
    # The default divides the logits by sqrt(D); temperature t divides by t: scale q by sqrt(D) / t.
    default.project_q = nn.Sequential(default.project_q, _Scale(math.sqrt(D) / temperature))
    ref = default(x, slots=init)
    torch.testing.assert_close(out.attn, ref.attn, **TOL)
    torch.testing.assert_close(out.slots, ref.slots, **TOL)
    # And directly: the first attention is softmax over slots of q k^T / t.
    k, _ = keys_values(warm, x)
    q = warm.project_q(warm.norm_slots(init))
    torch.testing.assert_close(attn_at(out, 0), torch.softmax(q @ k.transpose(1, 2) / temperature, dim=1), **TOL)


def test_temperature_sqrt_d_is_the_default():
    default = make()
    same = same_params(make(seed=5, temperature=math.sqrt(D)), default)
    x, init = data()
    torch.testing.assert_close(same(x, slots=init).slots, default(x, slots=init).slots, **TOL)


# -------------------------------------------------------------------------- eps offset (Figure 16)


def test_eps_in_denominator_differs_by_the_expected_amount():
    eps = 1e-3  # large enough for the difference to be far above float64 round-off
    on_attn = make(eps=eps, update="direct", mlp=False)
    on_den = same_params(make(seed=5, eps=eps, eps_placement="denominator", update="direct", mlp=False), on_attn)
    x, init = data()
    a, b = on_attn(x, slots=init, iters=1), on_den(x, slots=init, iters=1)
    torch.testing.assert_close(a.attn, b.attn)
    attn = attn_at(a, 0)  # [B, K, N]
    _, v = keys_values(on_attn, x)
    w_attn = (attn + eps) / (attn + eps).sum(-1, keepdim=True)
    w_den = attn / (attn.sum(-1, keepdim=True) + eps)
    torch.testing.assert_close(a.slots, w_attn @ v, **TOL)
    torch.testing.assert_close(b.slots, w_den @ v, **TOL)  # the recomputation
    diff = b.slots - a.slots
    torch.testing.assert_close(diff, (w_den - w_attn) @ v, **TOL)
    assert diff.abs().max() > 1e-5
    # Tiny: each weight moves by at most ~ eps * (N + 1) / (attention mass of the slot).
    bound = eps * (N + 1) / attn.sum(-1, keepdim=True)
    assert ((w_den - w_attn).abs() <= bound).all()


def test_eps_placement_barely_matters_at_the_paper_eps():
    a = make()
    b = same_params(make(seed=5, eps_placement="denominator"), a)
    x, init = data()
    torch.testing.assert_close(a(x, slots=init).slots, b(x, slots=init).slots, atol=1e-6, rtol=1e-6)


# ------------------------------------------------------------------- slot initialisation (Figure 9)


def test_per_slot_init_learns_distinct_means_and_fixes_k():
    sa = make(slot_init="per_slot")
    assert sa.slots_mu.shape == (1, K, D) and sa.slots_log_sigma.shape == (1, K, D)
    assert make().slots_mu.shape == (1, 1, D)
    dist = torch.cdist(sa.slots_mu[0], sa.slots_mu[0])  # [K, K]
    assert dist[~torch.eye(K, dtype=torch.bool)].min() > 0.1  # a distinct mean per slot
    with torch.no_grad():
        sa.slots_log_sigma.fill_(-30.0)  # sigma ~ 0: the samples are the means
    init = sa.initial_slots(3)
    torch.testing.assert_close(init, sa.slots_mu.expand(3, K, D))  # slot j ~ N(mu_j, sigma_j)
    with pytest.raises(ValueError, match="per_slot"):
        sa.initial_slots(3, K + 1)
    with pytest.raises(ValueError, match="per_slot"):
        sa(torch.randn(3, N, D, dtype=torch.float64), num_slots=K - 1)
    assert make().initial_slots(3, K + 3).shape == (3, K + 3, D)  # the shared default allows any K


def test_shared_init_slots_are_exchangeable_per_slot_init_is_not():
    shared, per_slot = make(), make(slot_init="per_slot")
    torch.manual_seed(0)
    s = shared.initial_slots(4000)
    torch.manual_seed(0)
    p = per_slot.initial_slots(4000)
    mean_s, mean_p = s.mean(0), p.mean(0)  # [K, D]
    assert (mean_s - mean_s[0]).abs().max() < 0.15  # every slot has the same distribution
    assert (mean_p - mean_p[0]).abs().max() > 0.3


def test_learned_queries_are_deterministic_distinct_and_fix_k():
    """BO-QSA's initialisation (not in the paper): slot j starts at its own learned query, with no noise."""
    sa = make(slot_init="queries")
    assert sa.slots_mu.shape == (1, K, D) and sa.slots_log_sigma is None
    assert {n for n, _ in sa.named_parameters()} >= {"slots_mu"}
    assert not any("log_sigma" in n for n, _ in sa.named_parameters())  # nothing unused (DDP would object)
    torch.manual_seed(0)
    a = sa.initial_slots(3)
    torch.manual_seed(1)
    b = sa.initial_slots(3, noise=torch.randn(3, K, D, dtype=torch.float64))
    torch.testing.assert_close(a, sa.slots_mu.expand(3, K, D), rtol=0, atol=0)  # the queries themselves
    torch.testing.assert_close(a, b, rtol=0, atol=0)  # no randomness at all
    dist = torch.cdist(sa.slots_mu[0], sa.slots_mu[0])  # [K, K]
    assert dist[~torch.eye(K, dtype=torch.bool)].min() > 0.1  # a distinct query per slot
    with pytest.raises(ValueError, match="queries"):
        sa.initial_slots(3, K + 1)
    x, _ = data()
    torch.testing.assert_close(sa(x).slots, sa(x).slots, rtol=0, atol=0)  # the whole forward is deterministic


def test_bo_qsa_queries_learn_straight_through_the_last_iteration():
    """BO-QSA = learned queries + the bi-level scheme (implicit_differentiation): the forward is the plain one, and
    the queries' gradient is the gradient reaching the last iteration's input slots (straight through)."""
    plain = make(slot_init="queries")
    bo = same_params(make(seed=3, slot_init="queries", implicit_differentiation=True), plain)
    x, _ = data()
    out_plain, out_bo = plain(x), bo(x)
    torch.testing.assert_close(out_bo.slots, out_plain.slots)
    out_bo.slots.square().sum().backward()
    # Reference: start the last iteration from the (detached) slots of T-1 iterations, take their gradient.
    ref = same_params(make(seed=4, slot_init="queries"), plain)
    with torch.no_grad():
        before_last = ref(x, iters=2).slots
    start = before_last.clone().requires_grad_(True)
    ref(x, iters=1, slots=start).slots.square().sum().backward()
    torch.testing.assert_close(bo.slots_mu.grad[0], start.grad.sum(0))
    assert bo.slots_mu.grad.abs().sum() > 0


# ------------------------------------------------------------------------------- soft k-means


def test_soft_kmeans_one_iteration_is_a_soft_kmeans_step():
    sa = soft_kmeans(K, D).double()
    assert set(dict(sa.named_parameters())) == {"slots_mu", "slots_log_sigma"}  # nothing else is learned
    x, mu = data()
    out = sa(x, slots=mu, iters=1)
    # Soft k-means with dot-product scores: responsibilities r_nk = softmax_k(x_n . mu_k / sqrt(D)),
    # new centre mu_k = sum_n r_nk x_n / sum_n r_nk (r offset by eps as in Algorithm 1).
    r = torch.softmax(torch.einsum("bnd,bkd->bnk", x, mu) / math.sqrt(D), dim=-1)  # [B, N, K]
    r = r + sa.eps
    centres = torch.einsum("bnk,bnd->bkd", r, x) / r.sum(1)[..., None]  # [B, K, D]
    torch.testing.assert_close(out.slots, centres, **TOL)
    # Two iterations = two soft k-means steps.
    r2 = torch.softmax(torch.einsum("bnd,bkd->bnk", x, centres) / math.sqrt(D), dim=-1) + sa.eps
    torch.testing.assert_close(
        sa(x, slots=mu, iters=2).slots, torch.einsum("bnk,bnd->bkd", r2, x) / r2.sum(1)[..., None], **TOL
    )


def test_soft_kmeans_needs_matching_input_size():
    with pytest.raises(ValueError, match="identity_projections"):
        SlotAttention(K, dim=D, input_dim=D + 1, identity_projections=True)


# ------------------------------------------------------------------------------ iterations (Figure 12)


def test_fewer_iterations_are_a_prefix_of_more():
    sa = make()
    x, init = data()
    three = sa(x, slots=init, iters=3)
    for t in (1, 2):
        out = sa(x, slots=init, iters=t)
        assert out.attn.shape == (B, t, K, N)
        torch.testing.assert_close(out.attn, three.attn[:, :t])
    assert SlotAttention(K, dim=D, iters=1)(x.float()).attn.shape == (B, 1, K, N)


# ------------------------------------------------------------ Proposition 1 under the ablations

ABLATIONS = [
    {},
    {"aggregation": "sum"},
    {"aggregation": "sum_layernorm"},
    {"softmax_axis": "inputs"},
    {"slot_init": "per_slot"},
    {"slot_init": "queries"},
    {"update": "direct"},
    {"layer_norm": False},
    {"mlp": False},
    {"temperature": 1.0},
    {"eps_placement": "denominator"},
    {"identity_projections": True, "update": "direct", "layer_norm": False, "mlp": False},
]


@pytest.mark.parametrize("options", ABLATIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_proposition_1_holds_under_each_ablation(options):
    """Given the initial slots, every ablation keeps input-permutation invariance and slot-permutation
    equivariance (all operations are per input / per slot with shared weights, and the softmax and the sums
    are over whole axes). Per-slot initialisation breaks exchangeability of the *initial* slots only."""
    sa = make(**options)
    randomize_layernorms(sa)
    x, init = data()
    g = torch.Generator().manual_seed(7)
    pi, ps = torch.randperm(N, generator=g), torch.randperm(K, generator=g)
    out = sa(x, slots=init)
    permuted = sa(x[:, pi], slots=init[:, ps])
    torch.testing.assert_close(permuted.slots, out.slots[:, ps])
    torch.testing.assert_close(permuted.attn, out.attn[:, :, ps][..., pi])


# ------------------------------------------------------------- position embedding (Figure 8)


def test_no_position_embedding_removes_the_positional_term():
    from slotlab.modules.encoders import SlotInputEncoder

    torch.manual_seed(0)
    with_pos = SlotInputEncoder((9, 9), (8, 8), (1, 1), out_dim=D, position_embedding=True).double()
    without = SlotInputEncoder((9, 9), (8, 8), (1, 1), out_dim=D, position_embedding=False).double()
    without.load_state_dict({k: v for k, v in with_pos.state_dict().items() if not k.startswith("pos.")})
    assert without.pos is None and not any(n.startswith("pos.") for n, _ in without.named_parameters())
    image = torch.randn(2, 3, 9, 9, dtype=torch.float64)
    feats = without.cnn(image).flatten(2).transpose(1, 2)  # [B, N, C] no position added
    torch.testing.assert_close(without(image), without.mlp(without.norm(feats)))
    pos = with_pos.pos.embedding().flatten(2).transpose(1, 2)  # [1, N, C] the learned position term
    torch.testing.assert_close(with_pos(image), with_pos.mlp(with_pos.norm(feats + pos)))
    assert not torch.allclose(with_pos(image), without(image))


# -------------------------------------------------------------- learning-rate schedule (Figs 17-18)


def test_schedule_no_warmup_starts_at_full_rate():
    assert lr_factor(0, 0, 0.5, 100_000) == 1.0
    assert lr_factor(0, 10_000, 0.5, 100_000) == 0.0  # the paper's warmup starts at 0
    assert lr_factor(5_000, 10_000, 0.5, 100_000) == pytest.approx(0.5 * 0.5**0.05)


def test_schedule_decay_rate_one_means_no_decay():
    for step in (10_000, 100_000, 499_999):
        assert lr_factor(step, 10_000, 1.0, 100_000) == 1.0
    assert lr_factor(100_000, 10_000, 0.5, 100_000) == pytest.approx(0.5)  # the paper's decay: halves per 100k
    assert lr_factor(300_000, 0, 0.5, 100_000) == pytest.approx(0.125)


# --------------------------------------------------------------------------------- packaged configs

# What each appendix-B ablation config changes relative to clevr6.yaml (dotted key -> value).
ABLATION_CONFIGS = {
    "ablation_weighted_sum": {"model.slot_attention.aggregation": "sum"},
    "ablation_sum_layernorm": {"model.slot_attention.aggregation": "sum_layernorm"},
    "ablation_no_position_embedding": {"model.position_embedding": False},
    "ablation_per_slot_init": {"model.slot_attention.slot_init": "per_slot"},
    "ablation_softmax_inputs": {"model.slot_attention.softmax_axis": "inputs"},
    "ablation_no_gru": {"model.slot_attention.update": "direct"},
    "ablation_train_iters_1": {"model.iters": 1},
    "ablation_train_iters_2": {"model.iters": 2},
    "ablation_train_iters_4": {"model.iters": 4},
    "ablation_no_layernorm": {"model.slot_attention.layer_norm": False},
    "ablation_no_mlp": {"model.slot_attention.mlp": False},
    "ablation_temperature_1": {"model.slot_attention.temperature": 1.0},
    "ablation_eps_denominator": {"model.slot_attention.eps_placement": "denominator"},
    "ablation_no_warmup": {"optim.warmup_steps": 0},
    "ablation_no_decay": {"optim.decay_rate": 1.0},
    "ablation_more_slots": {"model.num_slots": 11},
    "ablation_soft_kmeans": {
        "model.slot_attention.identity_projections": True,
        "model.slot_attention.update": "direct",
        "model.slot_attention.layer_norm": False,
        "model.slot_attention.mlp": False,
    },
}
PAPER_CONFIGS = {  # name -> (dataset, K, model kind)
    "clevr6": ("clevr6", 7, "slot_attention"),
    "clevr6_greyscale": ("clevr6_greyscale", 7, "slot_attention"),
    "multi_dsprites": ("multi_dsprites", 6, "slot_attention"),
    "multi_dsprites_binarized": ("multi_dsprites_binarized", 4, "slot_attention"),
    "clevr6_slot_mlp": ("clevr6", 7, "slot_mlp"),
    "multi_dsprites_slot_mlp": ("multi_dsprites", 6, "slot_mlp"),
    "tetrominoes_slot_mlp": ("tetrominoes", 4, "slot_mlp"),
}
# Image sizes of the datasets that are not (yet) registered, to build their models anyway.
KNOWN_SIZES = {
    "clevr6": (128, 128),
    "clevr10": (128, 128),
    "clevr6_greyscale": (128, 128),
    "multi_dsprites": (64, 64),
    "multi_dsprites_binarized": (64, 64),
    "tetrominoes": (35, 35),
}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _dataset_registered(name: str) -> bool:
    from slotlab.data.registry import dataset_names

    return name in dataset_names()


def test_expected_configs_are_packaged():
    names = set(available_configs())
    missing = (set(ABLATION_CONFIGS) | set(PAPER_CONFIGS)) - names
    assert not missing
    assert {"tetrominoes_quick_weighted_sum", "tetrominoes_quick_softmax_inputs"} <= names


@pytest.mark.parametrize("name", available_configs())
def test_every_packaged_config_loads(name):
    text = (config_dir() / f"{name}.yaml").read_text()
    if name in ABLATION_CONFIGS or name in PAPER_CONFIGS or name.startswith("tetrominoes"):
        assert text.startswith("#"), "a paper config starts with a comment naming the result it reproduces"
    raw = yaml.safe_load(text)
    assert isinstance(raw, dict)
    cfg = load_config(name)  # inheritance + validation of every key and type + value checks
    assert validate(cfg, defaults_for(cfg["task"])) == cfg
    if cfg["task"] != "object_discovery" or cfg["model"]["kind"] != "slot_attention":
        return  # other tasks / model kinds are built by their own code
    from slotlab.tasks.object_discovery import build_model

    size = KNOWN_SIZES.get(cfg["data"]["name"])
    if _dataset_registered(cfg["data"]["name"]):
        from slotlab.data.registry import get_dataset

        size = get_dataset(cfg["data"]["name"]).image_size
    if size is None:
        pytest.skip(f"dataset {cfg['data']['name']!r} not registered and its size is unknown here")
    model = build_model(cfg["model"], size)  # the ablation options are accepted by the modules
    assert model.slot_attention.num_slots == cfg["model"]["num_slots"]
    assert model.slot_attention.iters == cfg["model"]["iters"]


@pytest.mark.parametrize("name", sorted(ABLATION_CONFIGS))
def test_ablation_config_changes_exactly_its_option(name):
    base, cfg = _flat(load_config("clevr6")), _flat(load_config(name))
    changed = {k: v for k, v in cfg.items() if base[k] != v}
    assert changed == ABLATION_CONFIGS[name]


@pytest.mark.parametrize("name", sorted(PAPER_CONFIGS))
def test_paper_configs(name):
    cfg = load_config(name)
    dataset, k, kind = PAPER_CONFIGS[name]
    assert (cfg["data"]["name"], cfg["model"]["num_slots"], cfg["model"]["kind"]) == (dataset, k, kind)
    assert cfg["model"]["iters"] == 3 and cfg["optim"]["lr"] == 4e-4 and cfg["data"]["batch_size"] == 64
    assert cfg["trainer"]["max_steps"] == 500_000 and cfg["optim"]["warmup_steps"] == 10_000
    if dataset.startswith("clevr"):
        assert cfg["model"]["decoder"] == "clevr" and cfg["model"]["encoder_channels"] == [64] * 4
        assert cfg["model"]["decoder_channels"] == 64
    else:
        assert cfg["model"]["decoder"] == "full_resolution"


@pytest.mark.parametrize(
    "name,key,value",
    [
        ("tetrominoes_quick_weighted_sum", "model.slot_attention.aggregation", "sum"),
        ("tetrominoes_quick_softmax_inputs", "model.slot_attention.softmax_axis", "inputs"),
    ],
)
def test_quick_tetrominoes_ablations(name, key, value):
    base, cfg = _flat(load_config("tetrominoes_quick")), _flat(load_config(name))
    assert {k: v for k, v in cfg.items() if base[k] != v} == {key: value}


# The Tetrominoes CPU presets: every key they change from the paper's config, so a new deviation cannot slip in
# unnamed. Each changed key's leaf name must also appear in the preset's header comment.
TETROMINOES_PRESETS = {
    "tetrominoes_quick": {
        "data.batch_size": 8,
        "model.weight_init": "torch",
        "model.slot_attention.slot_init": "queries",
        "model.slot_attention.implicit_differentiation": True,
        "optim.warmup_steps": 1000,
        "optim.decay_steps": 10000,
        "optim.ema_decay": 0.999,
        "trainer.max_steps": 12000,
        "trainer.val_every": 500,
    },
}
TETROMINOES_PRESETS["tetrominoes_long"] = {
    **TETROMINOES_PRESETS["tetrominoes_quick"],
    "data.batch_size": 16,
    "trainer.max_steps": 100000,
    "trainer.max_minutes": 120,
}
TETROMINOES_PRESETS["tetrominoes_quick_shared_init"] = {
    **{k: v for k, v in TETROMINOES_PRESETS["tetrominoes_quick"].items() if not k.startswith("model.slot_attention.")},
    "data.batch_size": 16,
}


@pytest.mark.parametrize("name", sorted(TETROMINOES_PRESETS))
def test_tetrominoes_cpu_presets_change_only_named_keys(name):
    from slotlab.config import resolve_config_path

    paper, cfg = _flat(load_config("tetrominoes")), _flat(load_config(name))
    assert {k: v for k, v in cfg.items() if paper[k] != v} == TETROMINOES_PRESETS[name]
    lines = resolve_config_path("tetrominoes_quick").read_text().splitlines()
    header = "\n".join(line for line in lines if line.startswith("#"))
    for key in TETROMINOES_PRESETS["tetrominoes_quick"]:
        assert key.split(".")[-1] in header, f"{key} is not named in tetrominoes_quick.yaml's header"
