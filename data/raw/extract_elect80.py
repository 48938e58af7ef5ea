"""Rebuild data/raw/elect80.csv from the Debian package r-cran-spdata (run once; provenance).

Not part of the pipeline: the CSV is committed, and the project never needs
apt or R at run time. This script documents (and can repeat) how the CSV was
made. It needs the PyPI package ``rdata`` (MIT) and ``numpy``; no R.

Steps::

    apt-get update && apt-get download r-cran-spdata     # r-cran-spdata_2.2.1-1_all.deb
    dpkg-deb -x r-cran-spdata_2.2.1-1_all.deb deb/
    python extract_elect80.py deb/usr/lib/R/site-library/spData/data elect80.csv

The R lazy-load database ``Rdata.rdx`` (gzip'd R serialisation) maps each
object to ``(offset, length)`` in ``Rdata.rdb``; the chunk there is a 4-byte
big-endian length followed by a zlib stream holding the R-serialised S4
``SpatialPointsDataFrame`` ``elect80``. Its ``data`` slot is a data.frame
(FIPS, pc_turnout, pc_college, pc_homeownership, pc_income) and its
``coords`` slot a 3107 x 2 column-major matrix (long, lat). Floats are written
with Python's ``repr`` (shortest round-trip), so the CSV holds the doubles of
the R object exactly.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np

COLUMNS = ("FIPS", "long", "lat", "pc_turnout", "pc_college", "pc_homeownership", "pc_income")


def _pairlist(obj, rp) -> dict:
    """Tagged R pairlist (attributes / S4 slots) -> {name: RObject}."""
    out = {}
    while obj is not None and obj.info.type == rp.RObjectType.LIST:
        tag = obj.tag
        while tag.info.type == rp.RObjectType.REF:
            tag = tag.referenced_object
        out[tag.value.value.decode()] = obj.value[0]
        obj = obj.value[1] if len(obj.value) > 1 else None
        if obj is not None and obj.info.type == rp.RObjectType.NILVALUE:
            break
    return out


def extract(data_dir: Path) -> str:
    import rdata
    import rdata.parser as rp
    warnings.simplefilter("ignore")  # rdata warns that the rdx has no RDS magic
    index = rdata.conversion.convert(rp.parse_data(gzip.open(data_dir / "Rdata.rdx").read()))
    offset, length = (int(v) for v in index["variables"]["elect80"])
    chunk = (data_dir / "Rdata.rdb").read_bytes()[offset:offset + length]
    (n,) = struct.unpack(">I", chunk[:4])
    payload = zlib.decompress(chunk[4:])
    assert len(payload) == n, (len(payload), n)
    slots = _pairlist(rp.parse_data(payload).object.attributes, rp)
    frame, coords = slots["data"], slots["coords"]
    names = [c.value.decode() for c in _pairlist(frame.attributes, rp)["names"].value]
    assert names == ["FIPS", "pc_turnout", "pc_college", "pc_homeownership", "pc_income"], names
    cols = dict(zip(names, frame.value))
    fips = [c.value.decode() for c in cols["FIPS"].value]
    n_rows = len(fips)
    xy = np.asarray(coords.value, dtype=np.float64).reshape(2, n_rows)  # column-major
    lines = [",".join(COLUMNS)]
    for i in range(n_rows):
        vals = [xy[0, i], xy[1, i]] + [np.asarray(cols[k].value, dtype=np.float64)[i]
                                       for k in names[1:]]
        lines.append(",".join([fips[i]] + [repr(float(v)) for v in vals]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    text = extract(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(text, encoding="ascii")
    print(len(text.encode()), hashlib.sha256(text.encode()).hexdigest())
