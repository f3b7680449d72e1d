"""The package version, in a module of its own so the lower layers can read it without
importing the package facade (``rlfoundry/__init__.py`` sits on top of the api)."""

__version__ = "0.1.0"
