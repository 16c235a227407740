"""Configs of the commands that work on a trained model file (``unet-export``, ``unet-predict``, ``unet-serve``).

They live apart from the training configs because their ``model=<file>`` key would otherwise be
read as a choice of the ``model`` config group.
"""
