"""stylereel's library: neural style transfer for videos, frame folders and images.

Import `stylereel.pipeline.run` for the entry points; nothing here prints or exits.
"""
