"""TF "SAME" alignment of slotlab's convolutions (the reference code's Keras layers), in float64.

The references are written from TF's documented rule, not from slotlab's code: a convolution pads
``total = max((ceil(n / s) - 1) * s + k - n, 0)`` with the smaller half before; a transposed convolution keeps
rows ``[(k - s) // 2 : (k - s) // 2 + n * s]`` of the full (unpadded) result.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from slotlab.modules.same import SameConv2d, SameConvTranspose2d, phase_conv_transpose


def tf_conv_reference(x, weight, bias, stride):
    k = weight.shape[-1]
    pads = []
    for n in (x.shape[-1], x.shape[-2]):  # F.pad order: last axis first
        total = max((math.ceil(n / stride) - 1) * stride + k - n, 0)
        pads += [total // 2, total - total // 2]
    return F.conv2d(F.pad(x, pads), weight, bias, stride)


def tf_conv_transpose_reference(x, weight, bias, stride):
    k = weight.shape[-1]
    full = F.conv_transpose2d(x, weight, bias, stride)  # [B, O, (n-1)s + k, ...]
    before = max(k - stride, 0) // 2
    n, m = x.shape[-2:]
    return full[..., before : before + n * stride, before : before + m * stride]


@pytest.mark.parametrize("size", [(16, 16), (15, 17), (8, 9)])
@pytest.mark.parametrize("kernel,stride", [(5, 1), (5, 2), (3, 1), (3, 2), (4, 2)])
def test_same_conv_matches_tf_rule(size, kernel, stride):
    torch.manual_seed(0)
    layer = SameConv2d(3, 4, kernel, stride).double()
    x = torch.randn(2, 3, *size, dtype=torch.double)
    y = layer(x)
    assert y.shape[-2:] == (math.ceil(size[0] / stride), math.ceil(size[1] / stride))
    torch.testing.assert_close(y, tf_conv_reference(x, layer.weight, layer.bias, stride), rtol=0, atol=1e-12)


def test_kernel5_stride2_pads_one_before_two_after():
    """The case the reference facts name: torch's symmetric padding=2 is shifted by one pixel."""
    torch.manual_seed(0)
    layer = SameConv2d(1, 1, 5, 2).double()
    x = torch.randn(1, 1, 16, 16, dtype=torch.double)
    symmetric = F.conv2d(x, layer.weight, layer.bias, 2, padding=2)
    assert not torch.allclose(layer(x), symmetric)
    torch.testing.assert_close(layer(x), F.conv2d(F.pad(x, (1, 2, 1, 2)), layer.weight, layer.bias, 2))


@pytest.mark.parametrize("phase", [True, False])
@pytest.mark.parametrize("kernel,stride", [(5, 2), (5, 1), (3, 1), (3, 2), (4, 2), (5, 3)])
def test_same_conv_transpose_matches_tf_rule_with_gradients(phase, kernel, stride):
    torch.manual_seed(0)
    layer = SameConvTranspose2d(3, 4, kernel, stride, phase_decomposition=phase).double()
    x = torch.randn(2, 3, 6, 5, dtype=torch.double, requires_grad=True)
    y = layer(x)
    assert y.shape[-2:] == (6 * stride, 5 * stride)
    ref = tf_conv_transpose_reference(x, layer.weight, layer.bias, stride)
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, layer.weight, layer.bias), g)
    ref_grads = torch.autograd.grad(ref, (x, layer.weight, layer.bias), g)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


def test_phase_decomposition_under_bf16_autocast_is_close_to_fp32():
    torch.manual_seed(0)
    layer = SameConvTranspose2d(16, 8, 5, 2)
    x = torch.randn(2, 16, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = phase_conv_transpose(x, layer.weight, layer.bias, 2)
    ref = tf_conv_transpose_reference(x, layer.weight, layer.bias, 2)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref, rtol=0.05, atol=0.05)  # bf16 rounding (8-bit mantissa)
