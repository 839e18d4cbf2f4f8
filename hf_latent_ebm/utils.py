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


GRID_FONT_SIZE = 12  # pixels; the headers and texts of `modality_grid` and `cross_modal_grid`
GRID_BACKGROUND, GRID_INK = (48, 48, 48), (255, 255, 255)  # grey between tiles, so black-background images show


def grid_font():
    """The font of the grids' headers and texts: Pillow's bundled one, so no font file is needed."""
    from PIL import ImageFont

    return ImageFont.load_default(size=GRID_FONT_SIZE)


def text_extent(text: str, font) -> tuple[int, int]:
    """The width and height in pixels that `text` takes when drawn with `font` at (0, 0)."""
    _, _, right, bottom = font.getbbox(text)
    return int(right), int(bottom)


def upscale_factor(height: int, width: int, min_image_size: int) -> int:
    """The integer factor that enlarges an image's shorter side to at least `min_image_size` (1 if it already is)."""
    return max(1, -(-min_image_size // min(height, width)))


def wrap_text(text: str, width: int, font) -> list[str]:
    """`text` broken into lines at most `width` pixels wide (at spaces; a word wider than that gets a line alone)."""
    lines = [""]
    for word in str(text).split():
        candidate = f"{lines[-1]} {word}".strip()
        if lines[-1] and text_extent(candidate, font)[0] > width:
            lines.append(word)
        else:
            lines[-1] = candidate
    return lines


def _column_grid(groups: list[tuple[str, list]], padding: int, text_width: int, min_image_size: int) -> Image.Image:
    """
    The grids' one layout: `groups` is [(header, [column, ...])], a column uint8 images (N, C, H, W) or N strings.
    Each group's header is written in full above its columns (the group is as wide as the header needs); images
    whose shorter side is under `min_image_size` pixels are enlarged by pixel replication; a row per example.
    """
    from PIL import ImageDraw

    font = grid_font()
    columns = [column for _, group in groups for column in group]
    counts = {len(column) for column in columns}
    if len(counts) != 1:
        raise ValueError(f"every column needs the same number of rows, got {sorted(counts)}")
    count = counts.pop()
    factors = [upscale_factor(column.shape[2], column.shape[3], min_image_size)
               if isinstance(column, torch.Tensor) else 1 for column in columns]
    widths = [int(column.shape[3]) * factor if isinstance(column, torch.Tensor) else text_width
              for column, factor in zip(columns, factors)]
    line_height = text_extent("Hg", font)[1] + 2
    height = max([int(column.shape[2]) * factor for column, factor in zip(columns, factors)
                  if isinstance(column, torch.Tensor)] + [min_image_size])
    header_height = line_height + 2 * padding
    gap = 4 * padding  # between groups, wider than between the columns of one group
    group_widths, start = [], 0
    for header, group in groups:
        content = sum(widths[start:start + len(group)]) + padding * (len(group) - 1)
        group_widths.append(max(content, text_extent(str(header), font)[0]))
        start += len(group)
    grid = Image.new("RGB", (sum(group_widths) + gap * (len(groups) - 1) + 2 * padding,
                             header_height + count * (height + padding) + padding), GRID_BACKGROUND)
    draw = ImageDraw.Draw(grid)
    left, index = padding, 0
    for (header, group), group_width in zip(groups, group_widths):
        draw.text((left, padding), str(header), fill=GRID_INK, font=font)
        column_left = left
        for values in group:
            factor, width = factors[index], widths[index]
            for row in range(count):
                top = header_height + row * (height + padding)
                if isinstance(values, torch.Tensor):
                    array = values[row].permute(1, 2, 0).cpu().numpy()
                    tile = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).convert("RGB")
                    grid.paste(tile.resize((tile.width * factor, tile.height * factor), Image.NEAREST),
                               (column_left, top))
                else:
                    lines = wrap_text(values[row], width - 8, font)  # a margin to the next column's text
                    fit = max(height // line_height, 1)
                    if len(lines) > fit:  # cut at the tile's foot, and say so
                        lines = lines[:fit - 1] + [lines[fit - 1] + " ..."] if fit > 1 else [lines[0] + " ..."]
                    draw.multiline_text((column_left + 1, top), "\n".join(lines), fill=GRID_INK, font=font,
                                        spacing=2)
            column_left += width + padding
            index += 1
        left += group_width + gap
    return grid


def modality_grid(columns: dict, padding: int = 2, text_width: int = 160, min_image_size: int = 84) -> Image.Image:
    """
    One row per example, one column per entry of `columns` ({title: uint8 images (N, C, H, W) or a list of N
    strings}), with the titles in full on top: joint samples, or given and generated modalities side by side. Grey
    images are shown in RGB beside colour ones; images smaller than `min_image_size` pixels are enlarged by an
    integer factor (nearest neighbour, so 28x28 digits become 84x84); texts are wrapped in a tile `text_width`
    pixels wide.
    """
    return _column_grid([(title, [values]) for title, values in columns.items()], padding, text_width,
                        min_image_size)


def cross_modal_grid(given: dict, generated: dict, num_draws: int, padding: int = 2, text_width: int = 160,
                     min_image_size: int = 84) -> Image.Image:
    """
    Cross-modal generation laid out a row per condition: the given modalities ({name: N images (N, C, H, W) or N
    strings}) under headers "given: <name>", then for each generated modality ({name: N * num_draws values, the
    draws of condition i at rows i * num_draws .. i * num_draws + num_draws - 1}) its `num_draws` draws side by side
    under one header "<given> -> <name> (<num_draws> draws)". Images and texts are shown as in `modality_grid`.
    """
    if not isinstance(num_draws, int) or num_draws < 1:
        raise ValueError(f"num_draws must be a positive int, got {num_draws!r}")
    if not given or not generated:
        raise ValueError("cross_modal_grid needs at least one given and one generated modality")
    counts = {len(values) for values in given.values()}
    if len(counts) != 1:
        raise ValueError(f"every given modality needs the same number of conditions, got {sorted(counts)}")
    count = counts.pop()
    for name, values in generated.items():
        if len(values) != count * num_draws:
            raise ValueError(f"generated {name!r} has {len(values)} values; {count} conditions x {num_draws} draws "
                             f"need {count * num_draws}")
    source = " + ".join(given)
    plural = "draw" if num_draws == 1 else "draws"
    groups = [(f"given: {name}", [values]) for name, values in given.items()]
    groups += [(f"{source} -> {name} ({num_draws} {plural})",
                [values[draw::num_draws] for draw in range(num_draws)]) for name, values in generated.items()]
    return _column_grid(groups, padding, text_width, min_image_size)


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


def parse_config_overrides(text: str | None) -> dict | None:
    """`--config-overrides`: a JSON object of config fields (None without one); an error names the flag and shows
    the text."""
    if text is None:
        return None
    import json

    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--config-overrides must be a JSON object such as '{{\"dropout\": 0.2}}'; {error.msg} at "
                         f"character {error.pos} of {text!r}") from None
    if not isinstance(overrides, dict):
        raise ValueError(f"--config-overrides must be a JSON object of config fields, got a "
                         f"{type(overrides).__name__}: {text!r}")
    return nest_dotted_keys(overrides)


def nest_dotted_keys(overrides: dict) -> dict:
    """Config keyword arguments with dotted keys reaching into sub-configs nested:
    {"prior_config.hidden_dim": 8, "latent_dim": 4} -> {"prior_config": {"hidden_dim": 8}, "latent_dim": 4}."""
    nested: dict = {}
    for key, value in overrides.items():
        *path, last = key.split(".")
        target = nested
        for part in path:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ValueError(f"--config-overrides: {key!r} reaches into {part!r}, which is not a sub-config")
        if isinstance(value, dict) and isinstance(target.get(last), dict):
            target[last] = merge_config_kwargs(target[last], value)
        else:
            target[last] = value
    return nested


def merge_config_kwargs(settings: dict, overrides: dict) -> dict:
    """A preset's config keyword arguments with the caller's `overrides` on top; a sub-config (a dict under a key
    ending in "_config") is merged field by field rather than replaced, so overriding one field of a preset's
    `prior_config` keeps its others."""
    merged = dict(settings)
    for key, value in overrides.items():
        if key.endswith("_config") and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged
