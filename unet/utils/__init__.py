"""Plain helpers that every layer may use: files, JSON, seeds, tables, normalisation, colours, the allocator.

Nothing here imports another part of ``unet``, so models, data, training and the apps can all depend on
it without an import cycle.
"""
