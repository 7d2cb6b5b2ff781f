"""How target tokens weigh in the loss: token weights against the model's own mean, per-task means, task
weights that follow each task's loss, and the gradient probe that measures how tasks pull the weights."""
import pytest
import torch

from unio.train.balance import LossWeighting, example_losses, task_balanced_weights, token_weights
from unio.vocab import IGNORE


def batch(tiny_config):
    torch.manual_seed(0)
    labels = torch.randint(10, tiny_config.vocab_size, (4, 6))
    labels[0, 2:] = IGNORE
    labels[2, 5:] = IGNORE
    return dict(pixel_values=torch.rand(4, 3, 32, 32), input_ids=torch.randint(10, 100, (4, 5)),
                attention_mask=torch.ones(4, 5, dtype=torch.long), labels=labels)


@pytest.mark.parametrize("sigma", [0.0, 1.0])
def test_token_mean_weights_give_the_models_own_loss(tiny_config, sigma):
    """Weights of 1/tokens reproduce the unweighted loss, with and without smoothed location bins."""
    from unio.model import UnioModel
    tiny_config.ordinal_range, tiny_config.ordinal_sigma = ((20, 60) if sigma else None), sigma
    model = UnioModel(tiny_config).eval()
    inputs = batch(tiny_config)
    plain = model(**inputs).loss
    weighted = model(**inputs, label_weights=token_weights(inputs["labels"], torch.zeros(4, dtype=torch.long), "token")).loss
    assert torch.allclose(plain, weighted, atol=1e-5)
    per_example = example_losses(model(**inputs).logits, inputs["labels"])
    if not sigma:     # the loss is the token-weighted mean of the examples' means
        tokens = (inputs["labels"] != IGNORE).sum(1).float()
        assert torch.allclose((per_example * tokens).sum() / tokens.sum(), plain, atol=1e-5)


def test_task_means_weigh_each_task_of_a_batch_alike():
    labels = torch.tensor([[1, 2, 3, 4], [5, IGNORE, IGNORE, IGNORE], [6, 7, 8, 9], [1, IGNORE, IGNORE, IGNORE]])
    weights = task_balanced_weights(labels, torch.tensor([0, 1, 0, 1]))
    assert torch.isclose(weights.sum(), torch.tensor(1.0))
    assert torch.isclose(weights[[0, 2]].sum(), torch.tensor(0.5)) and torch.isclose(weights[[1, 3]].sum(), torch.tensor(0.5))
    assert (weights[labels == IGNORE] == 0).all()


def test_sqrt_means_weigh_each_task_as_the_root_of_its_tokens():
    labels = torch.tensor([[1, 2, 3, 4], [5, IGNORE, IGNORE, IGNORE], [6, 7, 8, 9], [1, IGNORE, IGNORE, IGNORE]])
    weights = token_weights(labels, torch.tensor([0, 1, 0, 1]), "sqrt")
    assert torch.isclose(weights.sum(), torch.tensor(1.0)) and (weights[labels == IGNORE] == 0).all()
    assert torch.isclose(weights[[0, 2]].sum() / weights[[1, 3]].sum(), torch.tensor(2.0))   # sqrt(8) : sqrt(2)
    assert torch.allclose(weights[0], weights[2]) and torch.allclose(weights[0, 0], weights[0, 3])
    one_task = torch.zeros(4, dtype=torch.long)
    assert torch.allclose(token_weights(labels, one_task, "sqrt"), token_weights(labels, one_task, "token"))


def test_task_weights_follow_each_tasks_loss_and_survive_a_resume():
    weighting = LossWeighting([0.5, 0.25, 0.25], decay=0.5)
    assert torch.equal(weighting.weights(), torch.ones(3, dtype=torch.float64))      # nothing seen: all 1
    weighting.observe(torch.tensor([2.0, 2.0, 0.5, 0.5]), torch.tensor([0, 0, 1, 1]))
    w = weighting.weights()
    assert w[2] == 1 and torch.isclose(w[0] / w[1], torch.tensor(4.0, dtype=torch.float64))
    assert torch.isclose((w[:2] * torch.tensor([0.5, 0.25], dtype=torch.float64)).sum() / 0.75,
                         torch.tensor(1.0, dtype=torch.float64))                      # mean 1 over the seen tasks
    weighting.observe(torch.tensor([1.0]), torch.tensor([0]))
    assert weighting.mean[0] == 1.5                                                    # the exponential mean
    again = LossWeighting([0.5, 0.25, 0.25], decay=0.5)
    again.load_state_dict(weighting.state_dict())
    assert torch.equal(again.weights(), weighting.weights())
    scaled = weighting.scale(torch.full((2, 3), 1 / 6), torch.tensor([0, 1]))
    assert torch.allclose(scaled[0] / scaled[1], (weighting.weights()[0] / weighting.weights()[1]).float())


def test_the_gradient_probe_measures_without_changing_training(tiny_config, modalities):
    """Each pair's norms and the cosine between pairs; the model's weights and gradients untouched."""
    from unio.data.batching import Collator
    from unio.data.mixture import Mixture
    from unio.data.sources import build_source
    from unio.model import UnioModel
    from unio.registries import TASKS
    from unio.train.gradients import PARTS, GradientProbe
    tasks = {t: TASKS.get(t) for t in ("vqa", "refexp")}
    mixture = Mixture(tasks, {"world": build_source("world", None, 32)}, {("vqa", "world"): 1.0, ("refexp", "world"): 1.0},
                      resolution=32)
    probe = GradientProbe(mixture, Collator(tasks, modalities, 48, 40), size=4)
    model = UnioModel(tiny_config)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    found = probe.measure(model, lambda m, b: m(**b))
    assert set(found["norm"]) == {"vqa", "refexp"} and set(found["norm"]["vqa"]) == set(PARTS)
    assert all(v > 0 for parts in found["norm"].values() for v in parts.values())
    assert set(found["cosine"]) == {"vqa|refexp"} and all(-1 <= c <= 1 for c in found["cosine"]["vqa|refexp"].values())
    assert all(torch.equal(p, before[n]) and p.grad is None for n, p in model.named_parameters())
    assert probe.measure(model, lambda m, b: m(**b)) == found                       # the same fixed batches


def test_train_with_task_weighting_logs_weights_and_resumes(tmp_path, toy_cache):
    from tests.conftest import run_script
    out, env = tmp_path / "run", {"UNIO_CACHE": toy_cache}
    args = ["--tasks", "vqa,refexp", "--steps", "4", "--batch-size", "4", "--task-weighting", "loss", "--spatial-first", "0",
            "--log-every", "1", "--probe-gradients", "2", "--no-eval", "--no-progress", "--no-compile", "--out", str(out),
            "--vq-steps", "20", "--preset", "toy", "--checkpoint-every", "2"]
    run_script("scripts/train_mixture.py", *args[:3], "2", *args[4:], env=env)
    run_script("scripts/train_mixture.py", *args, "--resume", env=env)
    import json
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    weighted = [r for r in rows if "task_weight" in r]
    assert [r["step"] for r in weighted] == [0, 1, 2, 3] and set(weighted[-1]["task_weight"]) == {"vqa", "refexp"}
    assert [r["step"] for r in rows if "gradients" in r] == [0, 2]


def test_a_detached_example_trains_the_decoder_alone(tiny_config):
    """`detach_encoder`: the same loss, and no gradient reaches the encoder from the detached examples."""
    from unio.model import UnioModel
    model = UnioModel(tiny_config)
    inputs = batch(tiny_config)
    encoder = [p for n, p in model.named_parameters() if n.startswith("encoder.layers")]
    plain = model(**inputs).loss
    plain.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder)
    model.zero_grad(set_to_none=True)
    detached = model(**inputs, detach_encoder=torch.ones(4, dtype=torch.bool)).loss
    detached.backward()
    assert torch.allclose(plain, detached) and all(p.grad is None or not p.grad.any() for p in encoder)
    assert any(p.grad is not None and p.grad.any() for n, p in model.named_parameters() if n.startswith("decoder"))


def test_loss_shares_script_tables_each_tasks_share_under_every_mean(toy_cache):
    from conftest import run_script
    proc = run_script("scripts/loss_shares.py", "--tasks", "vqa,caption,refexp,depth", "--preset", "toy", "--batch-size", "8",
                      "--vq-steps", "20", "--buckets", "1", "--spatial-first", "0", "--at", "0,5", "--batches", "3",
                      env={"UNIO_CACHE": toy_cache})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line.split()[:1] in (["0-2"], ["5-7"])]
    assert [r[1] for r in rows] == ["token", "task", "sqrt"] * 2
    for row in rows:
        values = [float(x) for x in row[2:]]
        assert len(values) == 4 and abs(sum(values) - 1) < 2e-3
    for window in (rows[:3], rows[3:]):      # vqa's answers are the shortest: the token mean weighs them least
        token, task, sqrt = (float(r[2]) for r in window)
        assert token < sqrt < task
