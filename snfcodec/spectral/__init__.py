"""The spectral audio field (``.snf`` version 3, media kind 2).

A sound is a continuous function of time, a sum of windowed sinusoids on a (frame, frequency) lattice
(:mod:`.basis`) whose integer amplitudes are the latents, entropy-coded under a per-file context model
(:mod:`.context`, the image field's integer-exact networks and tables) in a fixed order (:mod:`.coding`).
:mod:`.encoder` fits and meets the rate, :mod:`.bitstream` reads and writes the container, :mod:`.decoder`
evaluates the field at any sample rate.
"""

from . import basis, decoder, encoder  # noqa: F401  (the codec calls them as spectral.encoder, ...)
