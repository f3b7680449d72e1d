"""The ``rlfoundry`` command line (``rlfoundry.cli.main``)."""

from rlfoundry.cli.main import main

__all__ = ["main"]
