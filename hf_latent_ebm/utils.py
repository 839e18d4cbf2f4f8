"""Small shared helpers: image conversion and grids."""

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) floats in [-1, 1] -> (N, H, W, C) uint8."""
    scaled = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).numpy()


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    arrays = to_uint8(images)
    return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arrays]


def image_grid(images: torch.Tensor, num_columns: int | None = None, padding: int = 2) -> Image.Image:
    """Tile (N, C, H, W) images in [-1, 1] into one PIL image with `num_columns` columns (default ~sqrt(N))."""
    arrays = to_uint8(images)
    count, height, width, channels = arrays.shape
    num_columns = num_columns or int(np.ceil(np.sqrt(count)))
    num_rows = int(np.ceil(count / num_columns))
    grid = np.zeros((num_rows * (height + padding) + padding, num_columns * (width + padding) + padding, channels),
                    dtype=np.uint8)
    for index, array in enumerate(arrays):
        row, column = divmod(index, num_columns)
        top, left = padding + row * (height + padding), padding + column * (width + padding)
        grid[top:top + height, left:left + width] = array
    return Image.fromarray(grid[..., 0] if channels == 1 else grid)


RESULTS_HEADER = ("# Results\n\nEvery table here is written by the script named under it; rerun the command to "
                  "reproduce it.\n")


def update_results_section(path, key: str, title: str, body: str) -> None:
    """Replace (or append) the section marked `key` in a Markdown results file, so each benchmark script rewrites
    only its own table and the rest of the file stays as other scripts left it."""
    import re
    from pathlib import Path

    file = Path(path)
    text = file.read_text() if file.exists() else RESULTS_HEADER
    begin, end = f"<!-- begin {key} -->", f"<!-- end {key} -->"
    section = f"{begin}\n## {title}\n\n{body}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)
