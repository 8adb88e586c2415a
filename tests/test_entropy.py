import numpy as np
import pytest

from snfcodec import entropy
from snfcodec.entropy import SymbolModel
from snfcodec.errors import SnfFormatError


def test_round_trip_and_rate_near_entropy():
    rng = np.random.default_rng(0)
    arrays = [np.rint(rng.laplace(0, s, n)).astype(np.int32) for s, n in ((3, 5000), (40, 3000), (0.2, 200))]
    arrays.append(np.full(17, 5, dtype=np.int32))  # constant tensor: no bits
    models = [SymbolModel.fit(a) for a in arrays]
    data = entropy.encode(arrays, models)
    back = entropy.decode(data, models, [a.size for a in arrays])
    for a, b in zip(arrays, back):
        np.testing.assert_array_equal(a, b)
    # Empirical entropy of the three coded tensors, in bytes; the coder should be within 3 % (+ 8 bytes).
    bits = 0.0
    for a in arrays[:3]:
        _, counts = np.unique(a, return_counts=True)
        p = counts / counts.sum()
        bits += -(counts * np.log2(p)).sum()
    assert len(data) <= bits / 8 * 1.03 + 8


def test_constant_model_costs_nothing():
    models = [SymbolModel.fit(np.zeros(100, np.int32))]
    assert models[0].constant
    assert entropy.encode([np.zeros(100, np.int32)], models) == b""


def test_payload_of_wrong_length_is_a_format_error():
    a = np.arange(-5, 5, dtype=np.int32)
    m = [SymbolModel.fit(a)]
    with pytest.raises(SnfFormatError):
        entropy.decode(entropy.encode([a], m) + b"x", m, [a.size])
