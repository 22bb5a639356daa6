"""Checks a GeoTIFF written by the Rust side, with the real rio-cogeo and rasterio.

    python cog_check.py PATH [ROW COLUMN]...

Prints `valid True|False` and each of rio-cogeo's errors and warnings as
`error ...` / `warning ...` lines; then what rasterio reads: `crs EPSG:N`,
`size WIDTH HEIGHT`, `transform A B C D E F` (the affine terms),
`overviews D1 D2 ...` (decimations of band 1), `nodata VALUE`, `bands
NAME...` (descriptions), and `pixel ROW COLUMN VALUE...` (every band) for
each ROW COLUMN pair given.
"""

import sys
import warnings

import rasterio
from rio_cogeo.cogeo import cog_validate

warnings.filterwarnings("ignore")


def main(path, cells):
    valid, errors, warns = cog_validate(path, quiet=True)
    print("valid", valid)
    for error in errors:
        print("error", error)
    for warning in warns:
        print("warning", warning)
    with rasterio.open(path) as src:
        print("crs", src.crs.to_string())
        print("size", src.width, src.height)
        print("transform", *[repr(term) for term in tuple(src.transform)[:6]])
        print("overviews", *src.overviews(1))
        print("nodata", src.nodata)
        print("bands", *src.descriptions)
        data = src.read()
        for row, column in cells:
            print("pixel", row, column, *[repr(float(band[row, column])) for band in data])


if __name__ == "__main__":
    arguments = sys.argv[2:]
    pairs = [(int(arguments[i]), int(arguments[i + 1])) for i in range(0, len(arguments), 2)]
    main(sys.argv[1], pairs)
