"""Command-line tools of traingate: ``contracts`` and ``trainer``."""
