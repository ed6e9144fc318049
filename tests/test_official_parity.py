"""Runs the official-checkpoint parity tests (``official_parity_cases.py``) in their own pytest process.

TensorFlow and the ``tfrecord`` package (the independent TFRecord writer of ``test_tfrecord.py``) both register
the protobuf messages ``tensorflow.Example`` / ``tensorflow.BytesList`` in protobuf's default pool, so they cannot
be imported into one process: whichever comes second fails with "duplicate symbol". The parity cases, which need
TensorFlow, therefore run in a subprocess; their report is printed here when one fails.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).with_name("official_parity_cases.py")


@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs the tf extra (TensorFlow)")
def test_official_checkpoint_parity_cases():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    p = subprocess.run(
        [sys.executable, "-m", "pytest", str(CASES), "-q", "-p", "no:cacheprovider", "-rA"],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    print(p.stdout[-6000:])
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-3000:]
    assert "PASSED" in p.stdout and "FAILED" not in p.stdout and "ERROR" not in p.stdout
