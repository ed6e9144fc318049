"""slotlab: object-centric learning with Slot Attention (Locatello et al., NeurIPS 2020)."""

from slotlab.modules.slot_attention import SlotAttention, SlotAttentionOutput

__all__ = ["SlotAttention", "SlotAttentionOutput"]
__version__ = "0.1.0"
