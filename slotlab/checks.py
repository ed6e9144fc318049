"""Checks of the arrays the Python API is given (``SlotAttention``, the models, ``fg_ari``, average precision), with
errors that name the argument and what to pass: its type, dtype, shape, and finite values. The checks on type, dtype
and shape are O(1) (no pass over the data, no device sync) and trace under ``torch.compile``. Not part of the paper.

Choices: a floating-point tensor of another precision than a module's (float64 into a float32 module, float32
into a bf16 one) is cast to the module's dtype, except under autocast, which chooses the precision itself; integer
and bool tensors (e.g. uint8 pixels) and numpy arrays are refused for modules (the scaling of pixels is the
caller's to choose). The metrics accept numpy arrays.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from slotlab.errors import NonFiniteOutputError


class InputTypeError(TypeError):
    """An argument of the wrong type, e.g. a numpy array where a torch.Tensor is expected."""


class InputDtypeError(TypeError, ValueError):
    """A tensor of a dtype that cannot be used (e.g. uint8 pixels where float features are expected)."""


class InputShapeError(ValueError):
    """A tensor of the wrong shape, or an empty one where at least one element is needed."""


class NonFiniteInputError(ValueError):
    """A metric input that holds NaN or Inf values: a metric of them is not a score."""

    def __init__(self, name: str, nan: int, inf: int, total: int) -> None:
        self.name, self.nan, self.inf, self.total = name, nan, inf, total
        super().__init__(
            f"{name} holds {nan + inf} non-finite entries ({nan} NaN, {inf} Inf) of {total}; a score of NaN / Inf "
            "values would be meaningless. Check what produced them (a diverged model gives NaN outputs)."
        )


def _type_name(x: object) -> str:
    t = type(x)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__name__}"


def none_or_positive(name: str, value: float | None) -> float | None:
    """``value`` if it is None (an option off) or a number > 0, else ValueError naming ``name``."""
    if value is not None and not value > 0:
        raise ValueError(f"{name} must be None or > 0, got {value!r}")
    return value


def require_tensor(x: object, name: str, expect: str) -> Tensor:
    """``x`` itself when it is a torch.Tensor; else InputTypeError saying what to pass."""
    if isinstance(x, Tensor):
        return x
    hint = f"; convert it with torch.from_numpy({name})" if isinstance(x, np.ndarray) else ""
    raise InputTypeError(f"{name} must be a torch.Tensor {expect}, got {_type_name(x)}{hint}")


def as_tensor(x: object, name: str, expect: str) -> Tensor:
    """A torch.Tensor or a numpy array as a tensor (numpy arrays are wrapped without a copy); else InputTypeError."""
    if isinstance(x, np.ndarray):
        try:
            return torch.from_numpy(np.ascontiguousarray(x))
        except TypeError:  # object, string, unsigned 16..64-bit arrays
            raise InputDtypeError(f"{name} must be numbers {expect}, got a numpy array of {x.dtype}") from None
    return require_tensor(x, name, expect)


def float_input(x: object, name: str, dtype: torch.dtype, expect: str, hint: str = "") -> Tensor:
    """``x`` as the floating-point input of a module whose parameters are ``dtype``: a tensor (InputTypeError
    otherwise) of a floating dtype (InputDtypeError otherwise; ``hint`` says how to convert), cast to ``dtype``
    unless autocast is on for its device (autocast then picks each op's precision)."""
    x = require_tensor(x, name, expect)
    if not x.is_floating_point():
        raise InputDtypeError(f"{name} must be a floating-point tensor {expect}, got {x.dtype}{hint}")
    if x.dtype != dtype and not _autocast_on(x.device.type):
        x = x.to(dtype)
    return x


def _autocast_on(device_type: str) -> bool:
    return device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type)


def require_nonempty(x: Tensor, name: str, dims: str, what: tuple[int, ...] = (0,)) -> None:
    """InputShapeError when a dimension of ``what`` (default: the batch) of ``x`` is 0; ``dims`` names the
    dimensions, e.g. "[B, N, D]"."""
    axes = dims.strip("[]").split(", ")
    for d in what:
        if x.shape[d] == 0:
            raise InputShapeError(
                f"{name} is empty: shape {tuple(x.shape)} has {axes[d]} = 0; pass {dims} with {axes[d]} >= 1"
            )


def require_finite(x: Tensor | np.ndarray, name: str) -> None:
    """NonFiniteInputError (with the counts of NaN and Inf entries) when ``x`` holds a non-finite value. One pass
    over ``x``; on a GPU one device sync."""
    if isinstance(x, Tensor):
        if not x.is_floating_point() and not x.is_complex():
            return
        if bool(torch.isfinite(x).all()):
            return
        nan = int(torch.isnan(x).sum())
        raise NonFiniteInputError(name, nan, int((~torch.isfinite(x)).sum()) - nan, x.numel())
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.inexact) or np.isfinite(a).all():
        return
    nan = int(np.isnan(a).sum())
    raise NonFiniteInputError(name, nan, int((~np.isfinite(a)).sum()) - nan, a.size)


PIXELS_HINT = "; for 0..255 pixels (uint8) pass image.float() / 127.5 - 1"


def check_image(image: object, resolution: tuple[int, int], dtype: torch.dtype) -> Tensor:
    """The image batch of a model: a float tensor [B, 3, H, W] (B >= 1) scaled to [-1, 1], cast to the model's
    ``dtype`` outside autocast (:func:`float_input`); InputTypeError / InputDtypeError / InputShapeError say what
    to pass otherwise."""
    h, w = resolution
    image = float_input(image, "image", dtype, f"[B, 3, {h}, {w}] scaled to [-1, 1]", PIXELS_HINT)
    if image.dim() != 4 or image.shape[1] != 3 or tuple(image.shape[-2:]) != (h, w):
        raise InputShapeError(f"image must be [B, 3, {h}, {w}], got {tuple(image.shape)}")
    require_nonempty(image, "image", f"[B, 3, {h}, {w}]")
    return image


def require_finite_output(x: Tensor, what: str, where: str, advice: str) -> None:
    """NonFiniteOutputError (a user error: the weights are the user's) when the model output ``x`` holds NaN or Inf;
    ``what`` names the output, ``where`` the images, ``advice`` what to do."""
    try:
        require_finite(x, what)
    except NonFiniteInputError as e:
        raise NonFiniteOutputError(
            f"the model's {what} for {where} hold {e.nan + e.inf} non-finite values ({e.nan} NaN, {e.inf} Inf) of "
            f"{e.total}: no score is computed from them. {advice}"
        ) from None


EVAL_ADVICE = (
    "Its weights (or these K / T settings) give NaN / Inf: evaluate another checkpoint, e.g. an earlier "
    "best-*.ckpt of the run, or check the run's training loss for divergence."
)
TRAIN_ADVICE = (
    "The weights diverged: resume from an earlier checkpoint with a lower optim.lr, optim.grad_clip, or "
    "trainer.precision=32-true."
)
