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


@pytest.mark.parametrize("shifted", [True, False])
@pytest.mark.parametrize("size", [(16, 16), (15, 17), (8, 9)])
@pytest.mark.parametrize("kernel,stride", [(5, 1), (5, 2), (3, 1), (3, 2), (4, 2), (4, 1), (2, 2), (5, 3)])
def test_same_conv_matches_tf_rule(size, kernel, stride, shifted):
    torch.manual_seed(0)
    layer = SameConv2d(3, 4, kernel, stride, shifted_kernel=shifted).double()
    x = torch.randn(2, 3, *size, dtype=torch.double, requires_grad=True)
    y = layer(x)
    assert y.shape[-2:] == (math.ceil(size[0] / stride), math.ceil(size[1] / stride))
    ref = tf_conv_reference(x, layer.weight, layer.bias, stride)
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, layer.weight, layer.bias), g)
    for a, b in zip(grads, torch.autograd.grad(ref, (x, layer.weight, layer.bias), g), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


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


@pytest.mark.parametrize("channels_last", [True, False])
@pytest.mark.parametrize("kernel,stride", [(5, 2), (5, 1), (3, 1), (3, 2), (4, 2), (4, 1), (5, 3), (1, 1)])
def test_phase_conv_transpose_channels_last_matches_tf_rule(channels_last, kernel, stride):
    """Every stride (stride 1: the flipped-kernel convolution) and both memory layouts; output channels_last for a
    channels_last input (the phase-major shuffle); gradients of input, weight and bias."""
    torch.manual_seed(0)
    layer = SameConvTranspose2d(6, 5, kernel, stride).double()
    x = torch.randn(3, 6, 7, 6, dtype=torch.double)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    y = layer(x)
    ref = tf_conv_transpose_reference(x, layer.weight, layer.bias, stride)
    assert y.shape == ref.shape == (3, 5, 7 * stride, 6 * stride)
    if channels_last:
        assert y.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, (x, layer.weight, layer.bias), g)
    ref_grads = torch.autograd.grad(ref, (x, layer.weight, layer.bias), g)
    for a, b in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


def test_phase_major_channels_when_the_convolution_output_is_not_channels_last(monkeypatch):
    """If the convolution returns another layout for a channels_last input, the phase-major channels are reordered
    for F.pixel_shuffle: still the TF result."""
    import slotlab.modules.same as same

    torch.manual_seed(0)
    layer = SameConvTranspose2d(4, 3, 5, 2).double()
    x = torch.randn(2, 4, 5, 6, dtype=torch.double).contiguous(memory_format=torch.channels_last)
    conv2d = F.conv2d
    monkeypatch.setattr(same.F, "conv2d", lambda *a, **kw: conv2d(*a, **kw).contiguous())
    y = layer(x)
    torch.testing.assert_close(y, tf_conv_transpose_reference(x, layer.weight, layer.bias, 2), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kernel,stride", [(5, 2), (3, 2), (4, 2), (5, 3), (2, 2), (1, 2), (6, 4), (3, 3)])
def test_phase_kernels_by_slicing_equal_the_index_table(kernel, stride):
    """The sliced sub-kernels hold exactly the taps of the index table (zero where there is none)."""
    from slotlab.modules.same import _phase_kernels, _phase_taps, same_transpose_crop

    torch.manual_seed(0)
    weight = torch.randn(3, 2, kernel, kernel, dtype=torch.double)
    before, _ = same_transpose_crop(kernel, stride)
    index, j_min, j_max = _phase_taps(kernel, stride, before)
    j = j_max - j_min + 1
    taps = F.pad(weight, (0, 1, 0, 1))  # index == kernel: a zero tap
    expected = taps[:, :, index[:, :, None, None], index[None, None, :, :]]  # [C, O, s, J, s, J]
    got = _phase_kernels(_phase_kernels(weight, -2, stride, before, j_min, j), -1, stride, before, j_min, j)
    assert torch.equal(got, expected)


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("size", [(8, 8), (7, 5)])
@pytest.mark.parametrize("kernel,stride", [(5, 2), (5, 1), (3, 1), (3, 2), (4, 2), (5, 3)])
def test_ones_taps_give_the_response_to_an_all_ones_image(transpose, size, kernel, stride):
    """The tap tables the decoder's factorisation uses: layer(ones) - bias == sum of the taps that see the image."""
    torch.manual_seed(0)
    layer = (SameConvTranspose2d if transpose else SameConv2d)(3, 4, kernel, stride).double()
    ones = torch.ones(1, 3, *size, dtype=torch.double)
    rows, cols = layer.ones_taps(*size)
    pattern = "cokl,hk,wl->ohw" if transpose else "ockl,hk,wl->ohw"
    expected = torch.einsum(pattern, layer.weight, rows, cols) + layer.bias[:, None, None]
    torch.testing.assert_close(layer(ones)[0], expected, rtol=0, atol=1e-12)
