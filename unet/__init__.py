"""U-Net segmentation framework: one config key chooses the decoder's upsampling method."""

__version__ = "0.2.0"
