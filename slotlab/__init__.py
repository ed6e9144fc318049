"""slotlab: object-centric learning with Slot Attention (Locatello et al., NeurIPS 2020).

``slotlab.load_model(name_or_path)`` loads a trained model (zoo name, run folder, .ckpt, Hugging Face-style
folder); ``slotlab.load_images`` gives held-out images of a built-in dataset; ``slotlab.fg_ari`` scores masks;
``slotlab.SlotAttention`` is the module (Algorithm 1 + appendix B).
"""

from typing import Any

from slotlab.modules.slot_attention import SlotAttention, SlotAttentionOutput

__all__ = ["SlotAttention", "SlotAttentionOutput", "SlotModel", "fg_ari", "load_images", "load_model"]
__version__ = "0.1.0"

_LAZY = {
    "load_model": "slotlab.inference.api",
    "SlotModel": "slotlab.inference.api",
    "load_images": "slotlab.data.samples",
    "fg_ari": "slotlab.metrics",
}


def __getattr__(name: str) -> Any:  # lazy: `import slotlab` stays light (no Lightning, no data generators)
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'slotlab' has no attribute {name!r}")
