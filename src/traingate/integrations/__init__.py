"""Adapters that enforce traingate's contracts where users already train.

``traingate.integrations.huggingface`` (a ``transformers.TrainerCallback``) and
``traingate.integrations.lightning`` (a ``lightning.pytorch.Callback``) each build a
:class:`~traingate.Guard` with the Guard's own keyword arguments and feed it from the
framework's hooks. Each module imports its framework lazily: importing this package needs
neither.
"""


def missing_extra(exc: ModuleNotFoundError, module: str, extra: str) -> ModuleNotFoundError:
    """The error an adapter raises when its framework is not installed: it names the extra."""
    return ModuleNotFoundError(
        f"{exc}: traingate.integrations.{module} needs the '{extra}' extra: "
        f"pip install 'traingate[{extra}]'",
        name=exc.name,
    )
