"""unio.chain: each step fed the previous one's answer (its text into the prompt, its image into the next
step), every step's result kept, each the same as the step asked by itself."""
import numpy as np
import pytest

import unio
from unio.data.world import World


def test_caption_into_generation_into_depth(runner):
    image = World("test", resolution=32)[2].image
    results = unio.chain([("Describe the image.", image), ("Generate an image of: {previous}",),
                          unio.Step("What is the depth map of the image?")], model=runner)
    caption, generated, depth = results
    assert [r.task for r in results] == ["caption", "generate", "depth"]
    assert generated.prompt == f"Generate an image of: {caption.text}"
    assert generated.generated_image.shape == image.shape                 # sized as the image it came after
    assert np.array_equal(depth.image, generated.generated_image) and depth.depth.shape == image.shape[:2]
    # each step is what the same call made alone gives
    alone = unio.run(generated.prompt, image, model=runner)
    assert np.array_equal(alone.generated_image, generated.generated_image)
    assert np.allclose(unio.run("What is the depth map of the image?", generated.generated_image, model=runner).depth,
                       depth.depth)


def test_a_text_step_feeds_a_text_only_task_and_options_reach_their_step(runner):
    results = unio.chain(["Premise: a large red cube. Hypothesis: There is a cube.",
                          ("Sentence: {previous} Label:", None, {"num_beams": 1})], model=runner)
    assert results[1].prompt == f"Sentence: {results[0].text} Label:" and results[1].image is None
    with pytest.raises(ValueError, match="no step comes before it"):
        unio.chain(["Generate an image of: {previous}"], model=runner)
    with pytest.raises(TypeError, match="a chain step is"):
        unio.chain([42], model=runner)
    with pytest.raises(ValueError, match="at least one step"):
        unio.chain([], model=runner)
