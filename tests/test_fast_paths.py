"""Exact fast paths of the 128x128 models' layers: same values as the plain computation (float64, gradients too)."""

import pytest
import torch

from slotlab.modules.encoders import SlotInputEncoder
from slotlab.modules.position import SoftPositionEmbed


@pytest.mark.parametrize("channels_last", [True, False])
def test_position_embedding_added_to_tokens_equals_adding_to_the_map(channels_last):
    torch.manual_seed(0)
    pos = SoftPositionEmbed(5, (6, 7)).double()
    x = torch.randn(3, 5, 6, 7, dtype=torch.double)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    ref = pos(x).flatten(2).transpose(1, 2)  # [B, N, C]
    got = pos.add_to_tokens(x.flatten(2).transpose(1, 2), x.shape[-2:])
    assert torch.equal(got, ref)
    g = torch.randn_like(ref)
    params = (x, pos.dense.weight, pos.dense.bias)
    for a, b in zip(torch.autograd.grad(got, params, g), torch.autograd.grad(ref, params, g), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="position embedding expects"):
        pos.add_to_tokens(x.flatten(2).transpose(1, 2), (7, 6))


@pytest.mark.parametrize("strides", [(1, 1), (1, 2)])
def test_slot_input_encoder_equals_the_plain_computation(strides):
    """CNN -> + position embedding on the map -> flatten -> LayerNorm -> MLP, written out."""
    torch.manual_seed(0)
    enc = SlotInputEncoder((10, 12), (6, 6), strides, out_dim=4).double()
    image = torch.randn(2, 3, 10, 12, dtype=torch.double)
    x = enc.pos(enc.cnn(image)).flatten(2).transpose(1, 2)
    torch.testing.assert_close(enc(image), enc.mlp(enc.norm(x)), rtol=0, atol=1e-12)
    cl = enc.to(memory_format=torch.channels_last)(image.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(cl, enc.mlp(enc.norm(x)), rtol=0, atol=1e-12)
