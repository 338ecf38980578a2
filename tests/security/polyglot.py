"""Files an attacker uploads: real images that Pillow accepts, carrying something else."""

from __future__ import annotations

import io

from PIL import Image, PngImagePlugin

# What the review's upload ran on our origin: here it marks the page and calls home.
BEACON_PATH = "/__polyglot_script_ran__"
SCRIPT = f"<script>document.title='pwned';fetch('{BEACON_PATH}')</script>"
HTML_PAYLOAD = f"<html><body>{SCRIPT}</body></html>"
GPS = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)}
GPS_IFD = 0x8825


def polyglot_png(size: tuple[int, int] = (1280, 720)) -> bytes:
    """A valid 1280x720 PNG with HTML in a tEXt chunk and more HTML after its last chunk:
    served as text/html, a browser runs the script."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", HTML_PAYLOAD)
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 120, 200)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue() + HTML_PAYLOAD.encode()


def jpeg_with_gps(size: tuple[int, int] = (1280, 720)) -> bytes:
    """A photo that says where it was taken (EXIF GPS) and carries a comment."""
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    exif[GPS_IFD] = GPS
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 90, 40)).save(
        buffer, format="JPEG", exif=exif, comment=HTML_PAYLOAD.encode()
    )
    return buffer.getvalue()


def has_gps(data: bytes) -> bool:
    with Image.open(io.BytesIO(data)) as image:
        return bool(image.getexif().get_ifd(GPS_IFD))
