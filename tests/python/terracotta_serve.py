"""Serves a Terracotta database the Rust side wrote, with the real Terracotta.

    python terracotta_serve.py DATABASE KEY [ZOOM]

Opens the SQLite database with Terracotta's own driver and asks its Flask
app, as `terracotta serve` would run it, for: the datasets (`keys KEY...`),
KEY's metadata (`metadata JSON`), and the PNG tile at ZOOM (3 unless given)
under the centre of KEY's bounds (`tile Z X Y STATUS TYPE WIDTH HEIGHT
OPAQUE`, OPAQUE the number of pixels not fully transparent).
"""

import io
import json
import sys
import warnings

warnings.filterwarnings("ignore")

import mercantile
import terracotta
from PIL import Image


def main(database, key, zoom):
    terracotta.update_settings(DRIVER_PATH=database, DRIVER_PROVIDER="sqlite")
    from terracotta.server import create_app

    client = create_app().test_client()
    datasets = client.get("/datasets?limit=1000").get_json()["datasets"]
    print("keys", *[d["key"] for d in datasets])
    metadata = client.get(f"/metadata/{key}").get_json()
    print("metadata", json.dumps(metadata))
    west, south, east, north = metadata["bounds"]
    tile = mercantile.tile((west + east) / 2, (south + north) / 2, zoom)
    response = client.get(f"/singleband/{key}/{tile.z}/{tile.x}/{tile.y}.png")
    width = height = opaque = 0
    if response.status_code == 200:
        image = Image.open(io.BytesIO(response.data)).convert("RGBA")
        width, height = image.size
        opaque = sum(1 for pixel in image.getdata() if pixel[3] > 0)
    print("tile", tile.z, tile.x, tile.y, response.status_code, response.content_type,
          width, height, opaque)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 3)
