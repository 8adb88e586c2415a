"""Evaluation tools, each runnable as ``python -m snfcodec.eval.<name>``. They import the codec, never the reverse.

Needs the ``eval`` extra (matplotlib, pytorch-msssim).
"""
