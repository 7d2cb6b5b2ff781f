"""The world's fixed vocabulary and geometry, shared by scene sampling, rendering and language."""

SHAPES = ("cube", "sphere", "cone", "cylinder")
COLORS = {"red": (200, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 210),
          "yellow": (230, 210, 40), "purple": (140, 50, 170), "orange": (240, 130, 30)}
SIZES = {"small": 0.7, "large": 1.5}  # metres
SPLITS = {"train": 0, "validation": 1, "test": 2}
NEAR, FAR, MAX_DEPTH = 3.0, 7.0, 20.0   # object depth range and the depth of the sky (metres)
HORIZON = 0.30                          # horizon row as a fraction of the image height
CAMERA_HEIGHT = 2.0                     # metres above the ground
