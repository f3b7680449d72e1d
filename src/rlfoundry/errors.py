"""The one exception type users see: a sentence naming the cause and the fix."""

from __future__ import annotations


class RLFoundryError(Exception):
    """Bad input from the user (config, environment, file, reward function).

    The CLI prints ``str(err)`` alone, without a traceback, so the message must say
    what is wrong and how to fix it in one sentence.
    """


class ConfigError(RLFoundryError):
    """A configuration key or value that cannot be used."""


class EnvError(RLFoundryError):
    """An environment that does not exist or that an algorithm cannot handle."""
