"""Slot Attention (Algorithm 1): shapes, Proposition 1, attention normalisation, gradients, K/T per call."""

import pytest
import torch

from slotlab import SlotAttention


def make(**kw):
    torch.manual_seed(0)
    return SlotAttention(num_slots=5, dim=16, input_dim=12, iters=3, hidden_dim=32, **kw).double()


def test_shapes_and_attention_of_every_iteration():
    sa = make()
    x = torch.randn(3, 40, 12, dtype=torch.float64)
    out = sa(x)
    assert out.slots.shape == (3, 5, 16)
    assert out.attn.shape == (3, 3, 5, 40)  # [B, T, K, N]
    assert out.init_slots.shape == (3, 5, 16)
    out = sa(x, num_slots=7, iters=5)
    assert out.slots.shape == (3, 7, 16)
    assert out.attn.shape == (3, 5, 7, 40)


def test_attention_sums_to_one_over_slots():
    sa = make()
    out = sa(torch.randn(2, 30, 12, dtype=torch.float64))
    sums = out.attn.sum(dim=2)  # over K
    torch.testing.assert_close(sums, torch.ones_like(sums))
    assert (out.attn > 0).all()


def test_permutation_invariance_over_inputs():
    sa = make()
    x = torch.randn(2, 30, 12, dtype=torch.float64)
    init = sa.initial_slots(2).double()
    perm = torch.randperm(30)
    a = sa(x, slots=init)
    b = sa(x[:, perm], slots=init)
    torch.testing.assert_close(a.slots, b.slots)
    torch.testing.assert_close(a.attn[..., perm], b.attn)
    assert (a.slots - init).abs().max() > 1e-3  # the iterations did change the slots


def test_permutation_equivariance_over_slots():
    sa = make()
    x = torch.randn(2, 30, 12, dtype=torch.float64)
    init = sa.initial_slots(2).double()
    perm = torch.randperm(5)
    a = sa(x, slots=init)
    b = sa(x, slots=init[:, perm])
    torch.testing.assert_close(a.slots[:, perm], b.slots)
    torch.testing.assert_close(a.attn[:, :, perm], b.attn)


def test_gradients_reach_mu_and_sigma():
    sa = SlotAttention(num_slots=4, dim=8, iters=2, hidden_dim=16)
    out = sa(torch.randn(2, 10, 8))
    out.slots.pow(2).sum().backward()
    assert sa.slots_mu.grad is not None and sa.slots_mu.grad.abs().sum() > 0
    assert sa.slots_log_sigma.grad is not None and sa.slots_log_sigma.grad.abs().sum() > 0


def test_fresh_noise_every_call_and_reproducible_with_seed():
    sa = make()
    x = torch.randn(1, 10, 12, dtype=torch.float64)
    torch.manual_seed(3)
    a = sa(x).slots
    b = sa(x).slots
    torch.manual_seed(3)
    c = sa(x).slots
    assert (a - b).abs().max() > 1e-6
    torch.testing.assert_close(a, c)


def test_matches_a_literal_transcription_of_algorithm_1():
    sa = make()
    x = torch.randn(2, 20, 12, dtype=torch.float64)
    init = sa.initial_slots(2).double()
    out = sa(x, slots=init)
    # Algorithm 1 written out line by line (q scaled by D**-0.5, softmax over slots, +eps, weighted mean).
    inputs = sa.norm_inputs(x)
    k, v = sa.project_k(inputs), sa.project_v(inputs)
    slots = init
    for _ in range(3):
        prev = slots
        q = sa.project_q(sa.norm_slots(slots)) * 16**-0.5
        attn = torch.einsum("bnd,bkd->bnk", k, q).softmax(dim=-1) + 1e-8  # [B, N, K]
        w = attn / attn.sum(dim=1, keepdim=True)
        updates = torch.einsum("bnk,bnd->bkd", w, v)
        slots = sa.gru(updates.reshape(-1, 16), prev.reshape(-1, 16)).view(2, 5, 16)
        slots = slots + sa.mlp(sa.norm_mlp(slots))
    torch.testing.assert_close(out.slots, slots)


@pytest.mark.parametrize("bad", [0, -1])
def test_invalid_k_and_t(bad):
    with pytest.raises(ValueError, match="num_slots"):
        SlotAttention(num_slots=bad)
    sa = SlotAttention(num_slots=3, dim=8)
    with pytest.raises(ValueError, match="iters"):
        sa(torch.randn(1, 4, 8), iters=bad)
    with pytest.raises(ValueError, match="num_slots"):
        sa(torch.randn(1, 4, 8), num_slots=bad)


def test_wrong_input_shape_is_named():
    sa = SlotAttention(num_slots=3, dim=8)
    with pytest.raises(ValueError, match=r"inputs must be \[B, N, 8\]"):
        sa(torch.randn(4, 8))


@pytest.mark.parametrize(
    "options", [{}, {"softmax_axis": "inputs"}, {"aggregation": "sum_layernorm"}, {"eps_placement": "denominator"}]
)
def test_reassociated_projections_compute_the_same_function(options):
    """(q W_k) x^T and (attn x) W_v^T (default) equal Algorithm 1's projected keys and values to rounding."""
    sa = make(**options)
    x = torch.randn(2, 30, 12, dtype=torch.float64)
    init = sa.initial_slots(2).double()
    fast = sa(x, slots=init)
    sa.reassociate = False
    literal = sa(x, slots=init)
    torch.testing.assert_close(fast.slots, literal.slots, rtol=0, atol=1e-12)
    torch.testing.assert_close(fast.attn, literal.attn, rtol=0, atol=1e-12)
    g_fast = torch.autograd.grad(sa(x, slots=init).slots.sum(), sa.project_k.weight)[0]
    sa.reassociate = True
    g_lit = torch.autograd.grad(sa(x, slots=init).slots.sum(), sa.project_k.weight)[0]
    torch.testing.assert_close(g_fast, g_lit, rtol=0, atol=1e-10)


def test_implicit_differentiation_same_forward_gradient_through_last_iteration_only():
    torch.manual_seed(0)
    plain = SlotAttention(num_slots=4, dim=16, iters=3, hidden_dim=32).double()
    implicit = SlotAttention(num_slots=4, dim=16, iters=3, hidden_dim=32, implicit_differentiation=True).double()
    implicit.load_state_dict(plain.state_dict())
    x = torch.randn(2, 30, 16, dtype=torch.double)
    noise = torch.randn(2, 4, 16, dtype=torch.double)
    a, b = plain(x, noise=noise), implicit(x, noise=noise)
    assert torch.equal(a.slots, b.slots) and torch.equal(a.attn, b.attn)  # the forward values are unchanged
    b.slots.square().sum().backward()
    # The gradient equals that of one plain iteration started from the (detached) iterate of T-1 iterations,
    # plus the straight-through path to the initial slots.
    ref = SlotAttention(num_slots=4, dim=16, iters=1, hidden_dim=32).double()
    ref.load_state_dict(plain.state_dict())
    with torch.no_grad():
        start = plain(x, noise=noise, iters=2).slots
    init = ref.initial_slots(2, noise=noise)
    one = ref(x, slots=start + (init - init.detach()), iters=1)
    one.slots.square().sum().backward()
    for (name, p), q in zip(implicit.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    assert implicit.slots_mu.grad.abs().sum() > 0 and implicit.slots_log_sigma.grad.abs().sum() > 0
