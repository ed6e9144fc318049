"""The DataModule base of every task, and object discovery's: procedural (or DeepMind-file) training images
and the held-out eval set.

Training batches are a pure function of (data seed, global step): the epoch's permutation comes from
``seed`` and the epoch number, the position in it from the step. So a resumed run sees exactly the batches
an uninterrupted run would have seen (no sampler state to save), and each DDP rank takes its own slice of
the global batch (``batch_size`` is the global batch; no sample is seen twice in a step).
The whole split lives in memory as uint8 (60k Tetrominoes images: 220 MB), so fetching a batch is one
index operation and data never holds up the model.
"""

from __future__ import annotations

from collections.abc import Iterator

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from slotlab.data.cache import cached_split
from slotlab.data.files import load_tfrecord_split
from slotlab.data.registry import get_dataset
from slotlab.data.splits import generate_split
from slotlab.errors import ConfigError


def to_tensors(data: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Generator arrays -> tensors: image uint8 [N, 3, H, W], mask uint8 [N, H, W]."""
    image = torch.from_numpy(np.ascontiguousarray(data["image"])).permute(0, 3, 1, 2).contiguous()
    mask = torch.from_numpy(np.ascontiguousarray(data["mask"]))
    return {"image": image, "mask": mask}


class StepBatches(IterableDataset):
    """Infinite stream of batches; batch ``s`` depends only on (seed, s). Starts at ``start_step``."""

    def __init__(
        self,
        tensors: dict[str, torch.Tensor],
        batch_size: int,
        seed: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        n = len(next(iter(tensors.values())))
        if batch_size > n:
            raise ConfigError(
                f"batch_size {batch_size} is larger than the training set ({n} images); "
                "lower data.batch_size or raise data.train_size"
            )
        if batch_size % world_size:
            raise ConfigError(f"global batch_size {batch_size} is not divisible by the {world_size} processes")
        self.tensors = tensors
        self.n = n
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.rank = rank
        self.world_size = world_size
        self.steps_per_epoch = n // batch_size
        self._perm_epoch = -1
        self._perm: torch.Tensor | None = None

    def indices(self, step: int) -> torch.Tensor:
        epoch, pos = divmod(step, self.steps_per_epoch)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(self.n, generator=g)
            self._perm_epoch = epoch
        per_rank = self.batch_size // self.world_size
        lo = pos * self.batch_size + self.rank * per_rank
        return self._perm[lo : lo + per_rank]

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        idx = self.indices(step)
        out = {k: v[idx] for k, v in self.tensors.items()}
        out["index"] = idx
        return out

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1


class TensorDictDataset(Dataset):
    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.tensors = tensors
        self.n = len(next(iter(tensors.values())))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        out = {k: v[i] for k, v in self.tensors.items()}
        out["index"] = torch.tensor(i)
        return out


class StepDataModule(L.LightningDataModule):
    """The DataModule base of every task: the whole training split and the held-out split in memory as tensors
    (``train``, ``eval``, filled by the subclass's ``setup``), training batches a pure function of (seed, step)
    (:class:`StepBatches`: exact resume, each DDP rank its own rows of the global batch) and the held-out images
    in order with their index (the slot-init noise of an image depends on its index only)."""

    val_keys: tuple[str, ...] | None = None  # the held-out tensors validation batches carry (None: all)

    def __init__(self, batch_size: int, eval_batch_size: int, seed: int) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.seed = seed
        self.train: dict[str, torch.Tensor] | None = None
        self.eval: dict[str, torch.Tensor] | None = None

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        start = trainer.global_step if trainer is not None else 0
        rank = trainer.global_rank if trainer is not None else 0
        world = trainer.world_size if trainer is not None else 1
        batches = StepBatches(self.train, self.batch_size, self.seed, start, rank, world)
        return DataLoader(batches, batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        keys = self.val_keys
        tensors = {k: v for k, v in self.eval.items() if keys is None or k in keys}
        return DataLoader(TensorDictDataset(tensors), batch_size=self.eval_batch_size, shuffle=False)


class ObjectDiscoveryData(StepDataModule):
    """Procedural dataset ``name``: ``train_size`` training images and ``eval_size`` held-out images."""

    def __init__(
        self,
        name: str = "tetrominoes",
        batch_size: int = 64,
        train_size: int = 60_000,
        eval_size: int = 320,
        eval_batch_size: int = 64,
        seed: int = 0,
        path: str | None = None,
        cache_dir: str | None = None,
        workers: int = 0,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, seed)
        self.info = get_dataset(name)
        if train_size < 1 or eval_size < 1:
            raise ConfigError(f"data.train_size and data.eval_size must be >= 1, got {train_size}, {eval_size}")
        if batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {batch_size}")
        if batch_size > train_size:
            raise ConfigError(
                f"data.batch_size {batch_size} is larger than the training set (data.train_size {train_size})"
            )
        self.name = name
        self.train_size = train_size
        self.eval_size = eval_size
        self.path = path
        self.cache_dir = cache_dir
        self.workers = workers

    def load_split(self, split: str, count: int) -> dict[str, np.ndarray]:
        """Real files (``path``), the disk cache (expensive generators) or in-memory generation."""
        if self.path:
            start = {"train": 0, "eval": self.train_size, "test": self.train_size + self.eval_size}[split]
            return load_tfrecord_split(self.path, self.name, start, count)
        if self.info.expensive:
            return cached_split(self.name, split, count, self.seed, self.cache_dir, self.workers)
        return generate_split(self.name, split, count, self.seed)

    def setup(self, stage: str | None = None) -> None:
        if self.eval is None:
            self.eval = to_tensors(self.load_split("eval", self.eval_size))
        if stage in (None, "fit") and self.train is None:
            self.train = to_tensors(self.load_split("train", self.train_size))


def data_from_config(d: dict) -> ObjectDiscoveryData:
    """The DataModule described by a config's ``data`` section."""
    return ObjectDiscoveryData(
        d["name"],
        d["batch_size"],
        d["train_size"],
        d["eval_size"],
        d["eval_batch_size"],
        d["seed"],
        d["path"],
        d["cache_dir"],
        d["workers"],
    )
