"""Reads a checkpoint written by write_reference_checkpoint with h5py alone and checks it."""
import sys

import h5py
import numpy as np

path, ranks = sys.argv[1], int(sys.argv[2])
layout = sys.argv[3] if len(sys.argv) > 3 else "shared"
with h5py.File(path, "r") as f:
    if layout == "compressed":  # every array a chunked, deflate-compressed dataset
        for name in ("fields/temperature", "fields/pressure", "flags", "half", "bf"):
            assert f[name].compression == "gzip" and f[name].chunks is not None, (name, f[name].compression)
    t = f["fields/temperature"][...]
    assert t.dtype == np.float64, t.dtype
    assert t.shape == (2 * ranks + 1, 7, 5), t.shape
    expected = 0.5 * np.arange(t.size, dtype=np.float64).reshape(t.shape)
    assert np.array_equal(t, expected), "temperature differs from the global array"

    p = f["fields/pressure"][...]
    assert p.dtype == np.float32 and np.array_equal(p, np.arange(3 * ranks, dtype=np.float32)), p

    flags = f["flags"][...]
    assert flags.dtype == np.bool_, flags.dtype
    assert np.array_equal(flags, np.arange(3 * ranks) % 3 == 0), flags

    half = f["half"][...]
    assert half.dtype == np.float16, half.dtype
    assert np.array_equal(half, np.array([1.0, -2.0, 0.5], dtype=np.float16)), half
    bf = f["bf"][...]
    assert np.array_equal(bf.astype(np.float32), np.array([1.0, -2.0, 0.5], dtype=np.float32)), bf

    assert f.attrs["step"] == 42
    assert f["sim"].attrs["time"] == 1.5
    units = f["sim"].attrs["units"]
    assert (units.decode() if isinstance(units, bytes) else units) == "kelvin", units

    rng = f["rng"][...]
    assert rng.dtype == np.uint8 and rng.size == 8 * ranks
    assert bytes(rng) == b"".join(bytes([ord("a") + r]) * 8 for r in range(ranks))

    meta = f["_cairn"]
    assert meta.attrs["world_size"] == ranks
    assert meta.attrs["format_version"] >= 1
    assert f["_cairn/metadata"].shape[0] > 0
print("h5py read the global arrays correctly")
