"""Errors stylereel raises on purpose; each message names the file it is about.

The CLI turns any `StylereelError` into one line on stderr and exit code 2.
"""

from __future__ import annotations


class StylereelError(Exception):
    """Base class for every error a user can cause and fix."""


class InputError(StylereelError):
    """An input file or folder is missing, unreadable or not what it claims to be."""


class OutputError(StylereelError):
    """An output cannot be written (exists, folder missing, not writable, disk full)."""


class ConfigError(StylereelError):
    """A config file or option value is invalid."""


class DeviceError(StylereelError):
    """The compute device failed in a way the user can fix (out of memory: use a smaller size)."""


class Interrupted(StylereelError):
    """The run was stopped (Ctrl-C, SIGTERM); the message says what was kept and how to resume."""


class ClusterError(StylereelError):
    """A Ray task failed for a reason retrying cannot fix, or the cluster cannot be reached."""
