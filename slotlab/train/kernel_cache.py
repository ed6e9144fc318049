"""Keeping torch.compile's on-disk kernel cache usable after an interrupted run (``trainer.compile``): a torch bug's
workaround, so it lives in :mod:`slotlab.torch_workarounds` (bug 4); its names are re-exported here."""

from slotlab.torch_workarounds import inductor_cache_dir, is_complete_elf, remove_broken_kernels

__all__ = ["inductor_cache_dir", "is_complete_elf", "remove_broken_kernels"]
