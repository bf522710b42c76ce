import io

import pytest
from PIL import Image

from deepmmsearch.errors import InputError
from deepmmsearch.images import ImageLimits, load_image, to_data_url


def test_paths_and_data_urls_load_as_rgb(example_image):
    image = load_image(str(example_image))
    assert image.mode == "RGB" and image.size == (320, 240)
    again = load_image(to_data_url(image))
    assert again.tobytes() == image.tobytes()


def test_limits(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (300, 300)).save(path)
    with pytest.raises(InputError, match="declares 300x300 pixels"):
        load_image(str(path), ImageLimits(max_pixels=50_000))
    with pytest.raises(InputError, match="larger than"):
        load_image(str(path), ImageLimits(max_bytes=10))


def test_grey_and_palette_images_become_rgb():
    buffer = io.BytesIO()
    Image.new("P", (10, 10)).save(buffer, format="GIF")
    from deepmmsearch.images import decode_image

    assert decode_image(buffer.getvalue()).mode == "RGB"
