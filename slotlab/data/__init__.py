"""Datasets of the paper (Section 4): procedural generators, readers of the real files, the DataModules."""

from slotlab.data.errors import DatasetFileError
from slotlab.data.registry import dataset_names, get_dataset
from slotlab.data.tfrecord import instance_masks, read_tfrecords

__all__ = ["DatasetFileError", "dataset_names", "get_dataset", "instance_masks", "read_tfrecords"]
