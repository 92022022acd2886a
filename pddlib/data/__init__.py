"""Image data: `load_images` (common schema, any source) and tensor transforms."""

from pddlib.data.load import class_counts, load_images, stratified_split
from pddlib.data.schema import COLUMNS
from pddlib.data.transforms import resize_square, to_pil, to_tensor, to_uint8

__all__ = [
    "COLUMNS", "class_counts", "load_images", "resize_square", "stratified_split",
    "to_pil", "to_tensor", "to_uint8",
]
