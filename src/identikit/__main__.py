"""``python -m identikit``: the same as the ``identikit`` command."""

from identikit.cli import entry_point

entry_point()
