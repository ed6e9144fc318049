"""Object-discovery model: shapes for both decoder sizes, the mixture, and the exact decoder factorisation."""

import pytest
import torch

from slotlab.modules.decoders import SpatialBroadcastDecoder, clevr_layers, full_resolution_layers
from slotlab.tasks.object_discovery.model import ObjectDiscoveryModel


def test_tetrominoes_model_outputs():
    torch.manual_seed(0)
    m = ObjectDiscoveryModel((35, 35), num_slots=4)
    x = torch.rand(2, 3, 35, 35) * 2 - 1
    out = m(x)
    assert out.recon.shape == (2, 3, 35, 35)
    assert out.recons.shape == (2, 4, 3, 35, 35)
    assert out.masks.shape == (2, 4, 1, 35, 35)
    assert out.slots.shape == (2, 4, 64)
    assert out.attn.shape == (2, 3, 4, 35 * 35)
    torch.testing.assert_close(out.masks.sum(1), torch.ones(2, 1, 35, 35))
    torch.testing.assert_close(out.recon, (out.recons * out.masks).sum(1))
    out6 = m(x, num_slots=6, iters=5)
    assert out6.masks.shape == (2, 6, 1, 35, 35) and out6.attn.shape == (2, 5, 6, 1225)
    loss = m.loss(out, x)
    loss.backward()
    assert all(p.grad is not None for p in m.parameters())


def test_clevr_sized_model_outputs():
    m = ObjectDiscoveryModel((128, 128), 7, encoder_channels=(64,) * 4, decoder="clevr", decoder_channels=64)
    out = m(torch.zeros(1, 3, 128, 128))
    assert out.recon.shape == (1, 3, 128, 128) and out.masks.shape == (1, 7, 1, 128, 128)


@pytest.mark.parametrize(
    "layers,res", [(full_resolution_layers(8), (11, 9)), (clevr_layers(8), (4, 3))], ids=["conv", "convT"]
)
def test_decoder_first_layer_factorisation_is_exact(layers, res):
    torch.manual_seed(0)
    dec = SpatialBroadcastDecoder(16, res, layers, factorize_first_layer=True).double()
    slots = torch.randn(2, 3, 16, dtype=torch.float64)
    a = dec(slots)
    dec.factorize_first_layer = False
    b = dec(slots)
    torch.testing.assert_close(a.recon, b.recon, rtol=0, atol=1e-12)
    torch.testing.assert_close(a.masks, b.masks, rtol=0, atol=1e-12)
    # And gradients agree too (the factorised path trains the same weights).
    ga = torch.autograd.grad(dec(slots).recon.sum(), dec.layers[0].weight)[0]
    dec.factorize_first_layer = True
    gb = torch.autograd.grad(dec(slots).recon.sum(), dec.layers[0].weight)[0]
    torch.testing.assert_close(ga, gb, rtol=0, atol=1e-10)


def test_wrong_image_shape_is_named():
    m = ObjectDiscoveryModel((35, 35))
    with pytest.raises(ValueError, match=r"image must be \[B, 3, 35, 35\]"):
        m(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="divisible by 16"):
        ObjectDiscoveryModel((35, 35), decoder="clevr")
