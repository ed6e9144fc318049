"""Each torch bug that :mod:`slotlab.torch_workarounds` works around, reproduced on the installed torch.

These tests pass while the bug is there. When a torch upgrade fixes one, its test fails: delete the workaround (the
table in ``slotlab/torch_workarounds.py`` says where it is used) and the test. Whether each workaround does its job
is tested where it is used (``test_norm.py``, ``test_slot_attention.py``, ``test_kernel_cache.py``). A bug seen on
one kind of CPU only is skipped on the others, with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from slotlab import torch_workarounds
from slotlab.machine import cpu_flags, machine_kind
from slotlab.modules import slot_attention_fused as fused
from slotlab.train.runtime import compile_support

NO_CPU_COMPILE = compile_support("cpu")


def cpu_model_number() -> str | None:
    """The ``model`` line of /proc/cpuinfo (None elsewhere)."""
    from slotlab.machine import _cpuinfo

    return _cpuinfo("model\t")


def test_1_bf16_layer_norm_weight_and_bias_gradients_are_wrong():
    # The mixed-type CPU kernel (bf16 input, fp32 weight and bias): its weight and bias gradients, sums over all rows,
    # against the fp32 kernel on the same values (exactly upcast). The same on every CPU capability (default, AVX2,
    # AVX-512: the kernel is not a matmul).
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16384, 64, generator=g).bfloat16()
    gy = (torch.randn(2, 16384, 64, generator=g) * 1e-3 + 1e-4).bfloat16()
    weight, bias = torch.rand(64, generator=g) + 0.5, torch.randn(64, generator=g)

    def grads(x: torch.Tensor, gy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w, b = weight.clone().requires_grad_(), bias.clone().requires_grad_()
        F.layer_norm(x, (64,), w, b, 1e-3).backward(gy)
        return w.grad, b.grad

    gw, gb = grads(x, gy)
    gw32, gb32 = grads(x.float(), gy.float())
    w_err = ((gw - gw32).norm() / gw32.norm()).item()
    b_err = ((gb - gb32).norm() / gb32.norm()).item()
    assert w_err > 1e-2 and b_err > 1e-2, f"fixed in torch {torch.__version__}? weight {w_err:.2e}, bias {b_err:.2e}"
    # the workaround's sums on the same values: the fp32 ones
    w, b = weight.clone().requires_grad_(), bias.clone().requires_grad_()
    torch_workarounds.HalfInputLayerNorm.apply(x, w, b, (64,), 1e-3).backward(gy)
    torch.testing.assert_close(w.grad, gw32, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(b.grad, gb32, rtol=1e-4, atol=1e-7)


def test_2_randn_with_a_generator_fails_at_a_symbolic_batch_size():
    torch._dynamo.reset()

    def noisy(x: torch.Tensor) -> torch.Tensor:
        return x + torch.randn(x.shape, generator=None)

    with pytest.raises(RuntimeError, match="concrete integers"):
        torch.compile(noisy, backend="eager", dynamic=True)(torch.ones(4, 3))
    torch._dynamo.reset()

    def noisy_workaround(x: torch.Tensor) -> torch.Tensor:
        return x + torch_workarounds.standard_normal(x.shape, x.device, x.dtype, None)

    assert torch.compile(noisy_workaround, backend="eager", dynamic=True)(torch.ones(4, 3)).shape == (4, 3)
    torch._dynamo.reset()


# Hosts that report AMX-bf16 but on which the bug does not reproduce with torch 2.13 (CPU model numbers from
# /proc/cpuinfo): model 167, a KVM guest with AMX-bf16, AMX-int8 and AVX-512-fp16, gives finite gradients on every run
# (2026-12-06); the test cannot tell a fix from such a host, so it runs on every other AMX host.
AMX_HOSTS_WITHOUT_THE_BUG = {"167"}


@pytest.mark.skipif(NO_CPU_COMPILE is not None, reason=f"torch.compile cannot build CPU kernels here: {NO_CPU_COMPILE}")
@pytest.mark.skipif(
    "amx_bf16" not in cpu_flags() or cpu_model_number() in AMX_HOSTS_WITHOUT_THE_BUG,
    reason="seen on a CPU with AMX-bf16 (torch 2.13); not reproduced on this CPU "
    f"({machine_kind()}, model {cpu_model_number()}), nor on an AVX-512-bf16 CPU without AMX or under AVX2 emulation",
)
def test_3_inductor_bf16_attention_input_gradient_is_nan(monkeypatch):
    # The setting of test_slot_attention's regression test (N = 256, a multiple of 16; batch 32; bf16 autocast;
    # inductor with static shapes), with the logits formed as q x^T under compile too, as before the workaround.
    from slotlab.modules import slot_attention

    def plain_logits(q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.bmm(q.to(x.dtype), x.transpose(1, 2))

    monkeypatch.setattr(slot_attention, "compiled_attention_logits", plain_logits)
    torch._dynamo.reset()
    torch.manual_seed(0)
    sa = slot_attention.SlotAttention(num_slots=6, dim=64, iters=1, update="direct", mlp=False)
    x = torch.randn(32, 256, 64, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        slots = torch.compile(sa, dynamic=False)(x, noise=torch.randn(32, 6, 64)).slots
    (gx,) = torch.autograd.grad(slots.float().sum(), x)
    torch._dynamo.reset()
    finite = bool(torch.isfinite(gx).all())
    assert not finite, f"fixed in torch {torch.__version__}: finite input gradients without the workaround"


LOAD_KERNEL = """
from torch._inductor.codecache import CppCodeCache
lib = CppCodeCache.load('extern "C" int slotlab_probe(int x) { return x + 1; }')
print(lib._name, lib.slotlab_probe(41))
"""


@pytest.mark.skipif(NO_CPU_COMPILE is not None, reason=f"torch.compile cannot build CPU kernels here: {NO_CPU_COMPILE}")
def test_4_inductor_loads_a_truncated_cached_kernel(tmp_path):
    # A kernel library of inductor's on-disk cache cut short (as a compile killed while writing it leaves it): the
    # next process that needs it loads it unchecked and fails (ImportError, or a native crash) instead of rebuilding.
    # Inductor's C++ kernel cache directly (one tiny function), not a whole compiled model: ~10-20 s, most of it the
    # first run's CPU-capability probes. That the next compile then works: test_kernel_cache.py.
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path)}

    def load() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", LOAD_KERNEL], env=env, capture_output=True, text=True, timeout=600)

    first = load()
    assert first.returncode == 0 and first.stdout.split()[-1] == "42", first.stderr[-2000:]
    kernel = tmp_path / first.stdout.split()[0]
    assert kernel.is_file() and torch_workarounds.is_complete_elf(kernel)
    kernel.write_bytes(kernel.read_bytes()[:1000])
    broken = load()
    assert broken.returncode != 0, f"fixed in torch {torch.__version__}: a truncated cached kernel was rebuilt"
    assert torch_workarounds.remove_broken_kernels(tmp_path) == [kernel]  # the workaround finds it


def test_5_dynamo_cannot_trace_the_fused_attention():
    # SlotAttention steps off its fused path while compiling because of this (SlotAttention._fused_path).
    def one_iteration(q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        keys, grads = fused.collect_input_grads(x)
        return fused.attend_mean(q, keys, 1e-8, grads)[0].sum()

    q = torch.randn(2, 3, 16, requires_grad=True)
    x = torch.randn(2, 10, 16, requires_grad=True)
    assert torch.isfinite(one_iteration(q, x))
    torch._dynamo.reset()
    with pytest.raises(torch._dynamo.exc.Unsupported):
        torch.compile(one_iteration, backend="eager", fullgraph=True)(q, x)
    torch._dynamo.reset()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux), a file every write to fails")
def test_6_torch_save_hides_the_os_error_of_a_failed_write():
    with pytest.raises(RuntimeError) as caught:
        torch.save({"w": torch.zeros(100_000)}, "/dev/full")  # ENOSPC on every write
    chain = [caught.value, caught.value.__cause__, caught.value.__context__]
    assert not any(isinstance(e, OSError) for e in chain), f"fixed in torch {torch.__version__}: {chain}"
    assert torch_workarounds.torch_save_failed(caught.value), str(caught.value)


@pytest.mark.skipif(NO_CPU_COMPILE is not None, reason=f"torch.compile cannot build CPU kernels here: {NO_CPU_COMPILE}")
def test_7_compiled_transformer_layer_fails_under_cpu_bf16_autocast():
    block = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True).eval()
    lin = torch.nn.Linear(16, 16)
    torch._dynamo.reset()
    compiled = torch.compile(lambda x: block(lin(x)))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        with pytest.raises(RuntimeError, match="same dtype"):
            compiled(torch.randn(2, 5, 16))
        fixed = torch.compile(lambda x: torch_workarounds.fp32_outside_autocast(block, lin(x)))
        assert fixed(torch.randn(2, 5, 16)).dtype == torch.float32


def test_private_torch_apis_exist():
    # torch._C._will_engine_execute_node: True for a node of the backward pass under way, False for another graph's.
    x = torch.ones(3, requires_grad=True)
    y = x * 2
    other = torch.ones(3, requires_grad=True) * 3
    seen = {}

    def probe(grad_outputs):
        seen["in"] = torch_workarounds.will_engine_execute_node(y.grad_fn)
        seen["out"] = torch_workarounds.will_engine_execute_node(other.grad_fn)

    z = y.sum()
    z.grad_fn.register_prehook(probe)
    torch.autograd.grad(z, x)
    assert seen == {"in": True, "out": False}
    from torch._inductor.cpp_builder import get_cpp_compiler  # noqa: F401 (train.runtime.compile_support)
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir
    from torch.utils._python_dispatch import TorchDispatchMode  # noqa: F401 (validate: the meta-device check)
    from torch.utils._pytree import tree_leaves
    from torch.utils._triton import has_triton

    assert isinstance(default_cache_dir(), str) and isinstance(has_triton(), bool)
    assert tree_leaves({"a": [1, 2], "b": 3}) == [1, 2, 3]
