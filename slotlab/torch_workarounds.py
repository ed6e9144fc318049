"""Every workaround of a torch bug (or limitation) in slotlab, in one place, with the torch version it was found on.

Each has a test in ``tests/test_torch_workarounds.py`` that reproduces the bug on the installed torch: when a torch
upgrade fixes it, that test fails, and the workaround (with its test) can be deleted. None changes what a model
computes; each keeps a computation right, a run alive or a message true. Rows 1-4, 6 and 7 are code here; row 5 is one
condition of ``SlotAttention._fused_path``.

=  ================================  =====  =============================  ===============================  ==========
#  torch bug                         torch  workaround                     used in                          test
=  ================================  =====  =============================  ===============================  ==========
1  CPU LayerNorm of a bf16/fp16      2.13   ``HalfInputLayerNorm`` (the    ``modules/norm.py`` (every       ``test_1``
   input with fp32 weight/bias              sums from the same values      LayerNorm of the models)
   (autocast): the weight and bias          upcast, fp32 kernel)
   gradients (sums over all rows)
   are off by 4-42 % (7-40x in the
   models)
2  ``torch.randn`` with a            2.13   ``standard_normal``            ``SlotAttention.initial_slots``  ``test_2``
   ``generator`` argument under             (``empty().normal_()``, the
   dynamo: a symbolic size (a               same numbers)
   compiled model's second batch
   size) fails to trace
3  inductor, CPU, bf16 (seen with    2.13   ``compiled_attention_logits``  ``SlotAttention._attend`` under  ``test_3``
   AMX): the input gradients of the         (the logits as x q^T,          torch.compile                    (AMX; not
   attention's two products, fused          transposed)                                                     model 167)
   with LayerNorm's backward, are
   NaN when N % 16 == 0
4  inductor loads the kernel         2.13   ``remove_broken_kernels``      ``train/fit.py``                 ``test_4``
   libraries of its on-disk cache           (before compiling)             (``trainer.compile``)
   unchecked: one cut short by a
   killed compile breaks every
   later compiled run
5  limitation: dynamo cannot trace   2.13   the op-by-op path while        ``SlotAttention._fused_path``    ``test_5``
   the fused attention's shared             compiling (inductor fuses it)
   input-gradient collector (a side
   effect)
6  ``torch.save`` reports a failed   2.13   ``torch_save_failed`` (its     ``train/callbacks.py`` (the      ``test_6``
   write (a full disk) as a                 messages)                      checkpoint writer's "No space    (Linux)
   RuntimeError without the OSError                                        left" message)
   and its errno
7  compiled ``TransformerEncoder-    2.13   ``fp32_outside_autocast`` (the ``modules/predictors.py`` (the   ``test_7``
   Layer`` in inference under CPU           block in fp32, autocast off)   SAVi predictor)
   bf16 autocast takes the fused
   fast path and fails: "expected
   m1 and m2 to have the same dtype"
=  ================================  =====  =============================  ===============================  ==========

``test_N``: ``test_N_...`` in ``tests/test_torch_workarounds.py``.

Private torch APIs slotlab calls (they can move in any release; ``test_private_torch_apis_exist`` fails then):
``torch._C._will_engine_execute_node`` (:func:`will_engine_execute_node`, the fused attention's backward),
``torch._inductor.runtime.cache_dir_utils.default_cache_dir`` (:func:`inductor_cache_dir`),
``torch._inductor.cpp_builder.get_cpp_compiler`` and ``torch.utils._triton.has_triton``
(``slotlab.train.runtime.compile_support``), ``torch.utils._python_dispatch.TorchDispatchMode`` and
``torch.utils._pytree.tree_leaves`` (``slotlab.validate``: the model check on the meta device).
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
from pathlib import Path

import torch
from filelock import FileLock, Timeout
from torch import Tensor

# ----------------------------------------------------------------------------------------------------------------
# 1. bf16 / fp16 LayerNorm on a CPU: exact weight and bias gradients
# Under bf16 autocast the encoder's features and Slot Attention's inputs are bf16, and PyTorch's CPU LayerNorm runs
# its mixed-type kernel (bf16 input, fp32 weight and bias). Its forward and input gradient are right to bf16
# rounding; its weight and bias gradients (sums over all B*N rows) are not: wrong by 4-42 % for random gradients and
# by 7x (35x35 Tetrominoes model) to 40x (128x128 CLEVR model) in the models at initialisation, where the per-row
# gradients largely cancel (tests/test_norm.py). fp32 inputs, GPUs, torch.compile (inductor computes the norm in
# fp32 itself) and inference take the plain F.layer_norm.

_HALF = (torch.bfloat16, torch.float16)


def needs_exact_layer_norm_sums(x: Tensor, weight: Tensor | None, bias: Tensor | None) -> bool:
    """Whether ``F.layer_norm(x, ..., weight, bias)`` would get its weight / bias gradients wrong (bug 1)."""
    return (
        x.dtype in _HALF
        and x.device.type == "cpu"
        and weight is not None
        and bias is not None
        and torch.is_grad_enabled()
        and (weight.requires_grad or bias.requires_grad)
        and not torch.compiler.is_compiling()
    )


class HalfInputLayerNorm(torch.autograd.Function):
    """y = LayerNorm(x) with the mixed-type kernel; backward: dx from the same kernel, dweight/dbias in fp32 from
    the same (exactly upcast) values. Forward values and input gradient are the mixed kernel's, unchanged."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor, shape: tuple[int, ...], eps: float) -> Tensor:
        with torch.autocast("cpu", enabled=False):
            y, mean, rstd = torch.native_layer_norm(x, shape, weight, bias, eps)  # y in x's dtype; mean/rstd fp32
        ctx.save_for_backward(x, weight, bias, mean, rstd)
        ctx.shape = shape
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy: Tensor):
        x, weight, bias, mean, rstd = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        aten = torch.ops.aten
        gx = gw = gb = None
        with torch.autocast("cpu", enabled=False):
            if need_x:  # per-row: right to bf16 rounding in the mixed kernel
                mask = [True, False, False]
                gx = aten.native_layer_norm_backward(gy, x, ctx.shape, mean, rstd, weight, bias, mask)[0]
            if need_w or need_b:  # sums over all rows: from the same values, upcast exactly, in fp32
                _, gw, gb = aten.native_layer_norm_backward(
                    gy.float(), x.float(), ctx.shape, mean, rstd, weight, bias, [False, need_w, need_b]
                )
        return gx, gw, gb, None, None


# ----------------------------------------------------------------------------------------------------------------
# 2. N(0, 1) noise of a symbolic size under torch.compile


def standard_normal(
    shape: torch.Size | tuple[int, ...], device: torch.device, dtype: torch.dtype, generator: torch.Generator | None
) -> Tensor:
    """``torch.randn(shape, device=, dtype=, generator=)`` value for value (randn is empty + normal_), but traceable
    by torch.compile with a symbolic batch size: randn's generator overload needs a concrete size, so a compiled
    model failed at the first batch of another size (a smaller last batch, another eval batch size) (bug 2)."""
    return torch.empty(shape, device=device, dtype=dtype).normal_(generator=generator)


# ----------------------------------------------------------------------------------------------------------------
# 3. Slot Attention's logits under torch.compile


def compiled_attention_logits(q: Tensor, x: Tensor) -> Tensor:
    """``q x^T`` [B, K, N] for q [B, K, D] and x [B, N, D], formed as ``(x q^T)^T``: the same dot products. Under
    torch.compile on a CPU with bf16 autocast, inductor fused the input gradients of ``q x^T`` and ``attn x`` with
    the input LayerNorm's backward into a tiled kernel that returned NaN when N is a multiple of 16 (the 16x16
    set-prediction grid, batch 32: every compiled set-prediction run stopped at step 1); this order avoids it (bug
    3)."""
    return torch.bmm(x, q.to(x.dtype).transpose(1, 2)).transpose(1, 2)


# ----------------------------------------------------------------------------------------------------------------
# 4. inductor's on-disk kernel cache after an interrupted compile (trainer.compile)
# Inductor compiles each CPU kernel with the system C++ compiler straight into its cache folder
# (TORCHINDUCTOR_CACHE_DIR, by default /tmp/torchinductor_<user>) and, on later runs, loads any library it finds
# there without checking it. A run killed while it compiles (Ctrl-C, SIGKILL, a lost machine: the first minute of
# every compiled run) can leave a library cut short, and every later compiled run on that machine, a --resume of the
# same run included, then fails when it loads it (ImportError: ... .so: file too short) or crashes in native code.
# remove_broken_kernels deletes such files before compiling, so inductor rebuilds them.
#
# A file counts as broken when it is not a complete ELF object: too short for its own program and section header
# tables, or with a section-name table that is not a string table (a linker that maps the output file and was
# killed before writing it). Files that another process is compiling right now (inductor holds locks/<key>.lock
# while it builds <key>*.so), and object files written in the last two minutes, are left alone.

_SHT_STRTAB = 3
_SHT_NOBITS = 8  # a section with no data in the file (.bss)


def inductor_cache_dir() -> Path:
    """The folder inductor caches compiled kernels in (without creating it)."""
    env = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if env:
        return Path(env).absolute()
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir  # private API (see the module docstring)

    return Path(default_cache_dir()).absolute()


def is_complete_elf(path: Path) -> bool:
    """Whether ``path`` is an ELF file with all of its header tables present (False for truncated files)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF" or head[4] not in (1, 2) or head[5] not in (1, 2):
                return False
            order = "<" if head[5] == 1 else ">"
            if head[4] == 2:  # ELF64
                if len(head) < 64:
                    return False
                phoff, shoff = struct.unpack_from(order + "QQ", head, 0x20)
                phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(order + "HHHHH", head, 0x36)
            else:  # ELF32
                phoff, shoff = struct.unpack_from(order + "II", head, 0x1C)
                phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(order + "HHHHH", head, 0x2A)
            if phoff + phnum * phentsize > size or shoff + shnum * shentsize > size:
                return False
            if shnum == 0 or shstrndx == 0 or shstrndx >= shnum:
                return shnum == 0 and shoff == 0  # no sections at all: nothing more to check
            f.seek(shoff)
            table = f.read(shnum * shentsize)
        if len(table) < shnum * shentsize:
            return False
        # Each section's data lies in the file (sh_type, sh_offset, sh_size of each section header).
        fields = order + ("4xI16xQQ" if head[4] == 2 else "4xI8xII")
        for i in range(shnum):
            sh_type, offset, length = struct.unpack_from(fields, table, i * shentsize)
            if sh_type != _SHT_NOBITS and offset + length > size:
                return False
        # The section-name table is a string table (zeros if the file was sized but never written).
        return struct.unpack_from(order + "4xI", table, shstrndx * shentsize)[0] == _SHT_STRTAB
    except OSError:
        return False


def remove_broken_kernels(root: Path | None = None, object_age_s: float = 120.0) -> list[Path]:
    """Delete the compiled kernels (``*.so``, ``*.o``) under inductor's cache that are not complete ELF files;
    returns the deleted paths. Kernels being compiled by another process right now are skipped: a library whose
    lock is held, and an object file (built under its library's lock, whose name it does not share) last written
    less than ``object_age_s`` seconds ago."""
    root = inductor_cache_dir() if root is None else Path(root)
    if not root.is_dir():
        return []
    removed = []
    now = time.time()
    try:
        paths = sorted([*root.rglob("*.so"), *root.rglob("*.o")])
    except OSError:  # an unreadable cache: inductor will report it itself
        return []
    for path in paths:
        try:
            if not path.is_file() or is_complete_elf(path):
                continue
            if path.suffix == ".o" and now - path.stat().st_mtime < object_age_s:
                continue
            lock = root / "locks" / (path.name.split(".")[0] + ".lock")
            with FileLock(str(lock), timeout=0) if lock.parent.is_dir() else contextlib.nullcontext():
                if not is_complete_elf(path):  # still broken once no one can be writing it
                    path.unlink(missing_ok=True)
                    removed.append(path)
        except Timeout:
            continue  # another process holds the lock: it is compiling this kernel now
        except OSError:
            continue  # e.g. another user's file in a shared cache: leave it, inductor reports what it cannot load
    return removed


# ----------------------------------------------------------------------------------------------------------------
# 6. torch.save's failed writes
# torch.save's zip writer reports a write that fails (a full disk, mostly) as a RuntimeError of its own ("[enforce
# fail at inline_container.cc:...] . unexpected pos ..." or "... file write failed"), without the OSError and its
# errno; the checkpoint writer (slotlab.train.callbacks) recognises these messages to say "No space left".

TORCH_SAVE_WRITE_FAILED = ("unexpected pos", "file write failed")


def torch_save_failed(error: BaseException) -> bool:
    """Whether ``error`` is torch.save's own report of a write that failed (bug 6)."""
    return any(s in str(error) for s in TORCH_SAVE_WRITE_FAILED)


# ----------------------------------------------------------------------------------------------------------------
# Private torch APIs


def will_engine_execute_node(node: object) -> bool:
    """Whether the autograd engine runs ``node`` (a grad_fn) in the backward pass under way: the fused attention's
    backward hands its input-gradient factors to a node that runs later only if it will run at all."""
    return torch._C._will_engine_execute_node(node)


# ----------------------------------------------------------------------------------------------------------------
# 7. A compiled TransformerEncoderLayer in inference under CPU bf16 autocast
# Its fast path (``torch._transformer_encoder_layer_fwd``) is skipped under autocast in eager mode, but a compiled
# graph in eval mode without gradients takes it with bf16 activations and fp32 weights and fails ("expected m1 and
# m2 to have the same dtype"): seen in the validation of a compiled bf16 SAVi run. The SAVi predictor is K x D per
# clip, so running it in fp32 costs nothing.


def fp32_outside_autocast(module: torch.nn.Module, x: Tensor) -> Tensor:
    """``module(x)`` in fp32 with autocast off (the input upcast): workaround 7. Devices without autocast (the
    meta device of the config check) just upcast. A float64 input (a model in double precision) stays float64."""
    device = x.device.type
    off = torch.autocast(device, enabled=False) if torch.amp.is_autocast_available(device) else contextlib.nullcontext()
    with off:
        return module(x if x.dtype == torch.float64 else x.float())
