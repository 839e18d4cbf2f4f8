"""Small shared helpers: image conversion and grids."""

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) floats in [-1, 1] -> (N, H, W, C) uint8."""
    scaled = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).numpy()


def to_uint8_tensor(images: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) floats in [-1, 1] -> (N, C, H, W) uint8 on the CPU, the raw form of generated images."""
    return torch.from_numpy(to_uint8(images)).permute(0, 3, 1, 2).contiguous()


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


def modality_grid(columns: dict, padding: int = 2, text_width: int = 160) -> Image.Image:
    """
    One row per example, one column per entry of `columns` ({title: uint8 images (N, C, H, W) or a list of N
    strings}), with the titles on top: joint samples, or given and generated modalities side by side. Grey images
    are shown in RGB beside colour ones; texts are drawn in a tile `text_width` pixels wide.
    """
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default()
    counts = {len(values) for values in columns.values()}
    if len(counts) != 1:
        raise ValueError(f"every column needs the same number of rows, got {counts}")
    count = counts.pop()
    images = [values for values in columns.values() if isinstance(values, torch.Tensor)]
    height = max([int(values.shape[2]) for values in images] + [28])
    widths = [int(values.shape[3]) if isinstance(values, torch.Tensor) else text_width for values in columns.values()]
    header = 14
    grid = Image.new("RGB", (sum(widths) + padding * (len(widths) + 1), header + count * (height + padding) + padding))
    draw = ImageDraw.Draw(grid)
    left = padding
    for (title, values), width in zip(columns.items(), widths):
        draw.text((left, 1), str(title)[: max(width // 6, 4)], fill=(255, 255, 255), font=font)
        for row in range(count):
            top = header + padding + row * (height + padding)
            if isinstance(values, torch.Tensor):
                array = values[row].permute(1, 2, 0).numpy()
                tile = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).convert("RGB")
                grid.paste(tile, (left, top))
            else:
                words, lines = str(values[row]).split(), [""]
                for word in words:  # wrap to the tile's width, about 6 pixels a character
                    if len(lines[-1]) + len(word) + 1 > width // 6 and lines[-1]:
                        lines.append("")
                    lines[-1] = f"{lines[-1]} {word}".strip()
                draw.multiline_text((left, top), "\n".join(lines[: max(height // 11, 1)]), fill=(255, 255, 255),
                                    font=font, spacing=1)
        left += width + padding
    return grid


RESULTS_HEADER = ("# Results\n\nEvery table here is written by the script named under it; rerun the command to "
                  "reproduce it.\n")


def describe_device(device: torch.device) -> str:
    """The device a benchmark ran on, as its results name it: the GPU's name, or the CPU's architecture and the
    threads torch uses."""
    import platform

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"


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
