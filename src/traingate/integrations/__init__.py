"""Adapters that enforce traingate's contracts where users already train.

``traingate.integrations.huggingface`` (a ``transformers.TrainerCallback``) and
``traingate.integrations.lightning`` (a ``lightning.pytorch.Callback``) each build a
:class:`~traingate.Guard` with the Guard's own keyword arguments and feed it from the
framework's hooks. Each module imports its framework lazily: importing this package needs
neither.
"""
