"""Compare decoder upsampling methods: collect finished runs into tables and figures."""

from unet.compare.report import summarize, write_report

__all__ = ["summarize", "write_report"]
