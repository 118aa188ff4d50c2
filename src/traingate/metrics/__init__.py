"""Numeric metrics behind the invariants: pure functions, one module per family.

``liveness``, ``calibration`` and ``confusion`` take tensors and import torch at top level;
``balance`` is plain Python. Import the module you need (this package re-exports nothing,
so ``import traingate.metrics`` stays torch-free); the checks import the tensor ones lazily,
inside the methods that need tensors.
"""
