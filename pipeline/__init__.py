"""stylereel's library: neural style transfer for videos, frame folders and images.

Import `stylereel.pipeline.run` for the entry points; nothing here prints or exits.
"""

from __future__ import annotations

from importlib.metadata import version

__version__ = version("stylereel")  # the installed package's, as pyproject.toml gives it
