"""The embedded procedural world: unio's default data for every task."""
from unio.data.world.constants import COLORS, MAX_DEPTH, SHAPES, SIZES, SPLITS
from unio.data.world.dataset import to_hf_dataset
from unio.data.world.scene import Scene, World, WorldObject

__all__ = ["COLORS", "MAX_DEPTH", "SHAPES", "SIZES", "SPLITS", "Scene", "World", "WorldObject", "to_hf_dataset"]
