"""stylereel's command line: parses arguments, calls `stylereel.pipeline.run`, renders progress."""
