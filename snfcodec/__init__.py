"""snfcodec: media stored as sinusoidal neural fields.

>>> import snfcodec
>>> result = snfcodec.encode("photo.png", "photo.snf", bpp=2.0)
>>> pixels = snfcodec.decode("photo.snf", scale=2)
"""

from .api import decode, encode, encode_many, info
from .batch import BatchResult
from .codec import EncodeResult
from .errors import SnfError, SnfFormatError, SnfInputError

__all__ = ["encode", "encode_many", "decode", "info", "EncodeResult", "BatchResult", "SnfError", "SnfFormatError", "SnfInputError"]
__version__ = "0.1.0"
