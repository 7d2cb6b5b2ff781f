"""The embedded procedural world: unio's default data for every task."""
from unio.world.constants import COLORS, MAX_DEPTH, SHAPES, SIZES, SPLITS
from unio.world.scene import Scene, World, WorldObject
from unio.world.dataset import to_hf_dataset

__all__ = ["COLORS", "MAX_DEPTH", "SHAPES", "SIZES", "SPLITS", "Scene", "World", "WorldObject", "to_hf_dataset"]
