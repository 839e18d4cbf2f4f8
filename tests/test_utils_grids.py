"""The sample grids a person looks at: full headers, enlarged small images, a row per condition with its draws."""

import numpy as np
import pytest
import torch
from PIL import Image

from hf_latent_ebm.utils import (GRID_BACKGROUND, cross_modal_grid, grid_font, modality_grid, text_extent,
                                 upscale_factor, wrap_text)


def digits(count: int, channels: int = 1, size: int = 28) -> torch.Tensor:
    """Distinct uint8 images: image i is filled with the value 10 * (i + 1)."""
    values = torch.arange(1, count + 1, dtype=torch.uint8).mul(10).view(count, 1, 1, 1)
    return values.expand(count, channels, size, size).contiguous()


def test_upscale_factor():
    assert upscale_factor(28, 28, 84) == 3
    assert upscale_factor(32, 32, 84) == 3  # 96, the first integer factor reaching 84
    assert upscale_factor(64, 48, 84) == 2
    assert upscale_factor(84, 84, 84) == upscale_factor(128, 128, 84) == 1


def test_cross_modal_grid_layout_3_conditions_by_4_draws():
    padding, text_width, draws = 2, 160, 4
    given = {"caption": ["a handwritten seven", "a photo of a sneaker", "the digit one"]}
    generated = {"image": digits(3 * draws)}
    grid = cross_modal_grid(given, generated, draws, padding=padding, text_width=text_width)
    font = grid_font()
    headers = ["given: caption", "caption -> image (4 draws)"]
    header_widths = [text_extent(header, font)[0] for header in headers]
    # The given column: its text tile or its header, whichever is wider; the draws: 4 tiles of 28 * 3 = 84 pixels.
    groups = [max(text_width, header_widths[0]), max(4 * 84 + 3 * padding, header_widths[1])]
    header_height = text_extent("Hg", font)[1] + 2 + 2 * padding
    assert grid.size == (sum(groups) + 4 * padding + 2 * padding, header_height + 3 * (84 + padding) + padding)
    array = np.asarray(grid)
    # Row r, draw d is image r * 4 + d, enlarged 3x by pixel replication (every pixel of the 84x84 tile the same).
    left = padding + groups[0] + 4 * padding
    for row in range(3):
        top = header_height + row * (84 + padding)
        for draw in range(draws):
            tile = array[top:top + 84, left + draw * (84 + padding):left + draw * (84 + padding) + 84]
            assert tile.shape == (84, 84, 3) and (tile == 10 * (row * draws + draw + 1)).all()
    # Between tiles: the grey background, so black-background digits stay apart.
    assert (array[header_height + 84, left] == GRID_BACKGROUND).all()


def test_headers_are_never_cut():
    """A long modality name widens its column (it was cut to width // 6 characters: "phot", "->ph")."""
    font = grid_font()
    name = "photograph_of_the_handwritten_digit"
    grid = modality_grid({name: digits(2), "caption": ["a seven", "a one"]})
    width = text_extent(name, font)[0]
    assert width > 84 and grid.width >= width + 160
    # The header's ink reaches past the 84-pixel tile: it was drawn in full.
    header = np.asarray(grid)[:text_extent("Hg", font)[1] + 4]
    inked = np.flatnonzero((header == 255).all(axis=2).any(axis=0))
    inked = inked[inked < 2 + width + 8]  # the first column's header, not the caption's
    assert 84 + 2 < inked.max() <= width + 2
    given = {"image": digits(1)}
    grid = cross_modal_grid(given, {"caption": ["x"] * 3}, 3)
    assert grid.width >= text_extent("image -> caption (3 draws)", font)[0] + text_extent("given: image", font)[0]


def test_modality_grid_enlarges_small_images_a_row_per_example():
    grid = modality_grid({"m0": digits(5, channels=3), "m1": digits(5)})
    font = grid_font()
    header_height = text_extent("Hg", font)[1] + 2 + 4
    assert grid.mode == "RGB" and grid.height == header_height + 5 * (84 + 2) + 2
    assert grid.width == 2 + 84 + 8 + 84 + 2  # two 84-pixel columns (28 x 3), a group gap between them
    big = modality_grid({"m0": digits(2, size=96)})
    assert big.width == 2 + 96 + 2  # already large: kept as is


def test_texts_wrap_in_their_tile():
    font = grid_font()
    text = "a handwritten seven written slowly with a thick pen on a rainy tuesday"
    lines = wrap_text(text, 100, font)
    assert len(lines) > 1 and " ".join(lines) == text
    assert all(text_extent(line, font)[0] <= 100 for line in lines if " " in line)
    grid = modality_grid({"caption": [text] * 2}, text_width=100)
    assert isinstance(grid, Image.Image) and grid.width == 2 + 100 + 2


def test_grid_inputs_are_checked():
    with pytest.raises(ValueError, match="same number of rows"):
        modality_grid({"a": digits(2), "b": ["x"]})
    with pytest.raises(ValueError, match=r"3 conditions x 4 draws need 12"):
        cross_modal_grid({"a": digits(3)}, {"b": ["x"] * 11}, 4)
    with pytest.raises(ValueError, match="num_draws must be a positive int"):
        cross_modal_grid({"a": digits(3)}, {"b": ["x"] * 3}, 0)


def test_cli_sample_writes_a_row_per_condition_with_its_draws(tmp_path, capsys):
    from hf_latent_ebm.cli import main

    from .test_multimodal import tiny_model, write_folder

    write_folder(tmp_path / "data", count=8)
    tiny_model().save_pretrained(tmp_path / "model")
    main(["sample", "--model", str(tmp_path / "model"), "--num-samples", "3", "--num-draws", "2", "--output",
          str(tmp_path / "grid.png"), "--data", str(tmp_path / "data"), "--seed", "1"])
    assert "cross-modal samples from left (3 examples x 2 draws)" in capsys.readouterr().out
    font = grid_font()
    header_height = text_extent("Hg", font)[1] + 2 + 4
    joint, from_left = Image.open(tmp_path / "grid.png"), Image.open(tmp_path / "grid_from_left.png")
    assert joint.height == header_height + 3 * (84 + 2) + 2  # a row per joint sample
    # A row per example: the given left image, 2 draws of right, 2 draws of caption, under their headers.
    groups = [max(84, text_extent("given: left", font)[0]),
              max(2 * 84 + 2, text_extent("left -> right (2 draws)", font)[0]),
              max(2 * 160 + 2, text_extent("left -> caption (2 draws)", font)[0])]
    assert from_left.size == (sum(groups) + 2 * 8 + 4, header_height + 3 * (84 + 2) + 2)
    with pytest.raises(SystemExit, match="--num-draws must be >= 1"):
        main(["sample", "--model", str(tmp_path / "model"), "--num-draws", "0", "--output", str(tmp_path / "g.png")])
