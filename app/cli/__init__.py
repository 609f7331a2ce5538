"""The ``affix`` command."""
