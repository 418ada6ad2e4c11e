"""Fusion blocks, one module per family. Build them with :func:`fusioncli.create_fusion`."""
