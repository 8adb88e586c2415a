"""The latent-grid image field (``.snf`` version 3).

An image is a pyramid of entropy-coded latent grids (:mod:`.grids`), read at any coordinate by cubic
interpolation and turned into pixels by a small sinusoidal network (:mod:`.synthesis`); the latents are coded
with a per-image context model (:mod:`.context`) whose integer form, with tables built from basic arithmetic
only (:mod:`.tables`), gives every machine the same probabilities. :mod:`.train` fits it on rate + distortion
(its heavy terms compiled by :mod:`.fused`), :mod:`.encoder` quantizes and meets the rate, :mod:`.coding` fixes
the payload's order, :mod:`.bitstream` reads and writes the container, :mod:`.decoder` samples it at any size or
crop.
"""

from . import decoder, encoder, fused  # noqa: F401  (the codec calls them as latent.encoder, ...)
