"""Write the Space's example inputs into examples/<model folder>/ (run once; the PNGs and captions are committed).

Image files are named <modality>_<what>.png, caption files <modality>.txt (one caption a line); app.py offers each
to the model tab whose folder name matches and whose modality of that name is of that kind.
"""

from pathlib import Path

import numpy as np
from PIL import Image

from hf_latent_ebm.data.images import _fashion_mnist_arrays, _mnist_arrays
from hf_latent_ebm.data.multimodal import FASHION_NOUNS, build_polymnist, caption_for

EXAMPLES = Path(__file__).parent / "examples"


def first_index(labels: np.ndarray, label: int) -> int:
    return int(np.flatnonzero(labels == label)[0])


def main() -> None:
    captions_dir = EXAMPLES / "mnist-captions"
    captions_dir.mkdir(parents=True, exist_ok=True)
    images, labels = _mnist_arrays("test")
    for digit in (7, 2, 4):
        Image.fromarray(images[first_index(labels, digit)]).save(captions_dir / f"image_digit-{digit}.png")
    images, labels = _fashion_mnist_arrays("test")
    for label in (7, 9, 3):  # sneaker, ankle boot, dress
        noun = FASHION_NOUNS[label].replace(" ", "-")
        Image.fromarray(images[first_index(labels, label)]).save(captions_dir / f"image_{noun}.png")
    captions = [caption_for(3, 0), caption_for(8, 3), caption_for(10 + 7, 0), caption_for(10 + 1, 2),
                caption_for(10 + 8, 1)]
    (captions_dir / "caption.txt").write_text("\n".join(captions) + "\n")

    polymnist_dir = EXAMPLES / "polymnist"
    polymnist_dir.mkdir(parents=True, exist_ok=True)
    test = build_polymnist("test", num_examples=8)
    for row, modality in zip((0, 1, 2, 3, 4), ("m0", "m1", "m2", "m3", "m4")):
        example = test[row]
        array = np.asarray(example[modality], np.uint8).transpose(1, 2, 0)
        Image.fromarray(array).save(polymnist_dir / f"{modality}_digit-{example['label']}.png")
    print(sorted(str(path.relative_to(EXAMPLES)) for path in EXAMPLES.rglob("*.*")))


if __name__ == "__main__":
    main()
