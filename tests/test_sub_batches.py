"""--sub-batches: a batch decoded in groups of like target lengths gives the whole batch's loss and gradients."""
import itertools

import pytest
import torch

from unio.train.sub_batches import cut_points, target_groups, target_lengths
from unio.vocab import IGNORE


def padded_slots(lengths, ends):
    starts = [0, *ends[:-1]]
    return sum((e - s) * lengths[e - 1] for s, e in zip(starts, ends))


@pytest.mark.parametrize("seed", range(20))
def test_cut_points_pad_least_of_every_way_to_cut(seed):
    rng = torch.Generator().manual_seed(seed)
    lengths = sorted(torch.randint(1, 70, (7,), generator=rng).tolist())
    for parts in (1, 2, 3):
        ends = cut_points(lengths, parts)
        assert ends[-1] == len(lengths) and len(ends) <= parts and ends == sorted(set(ends))
        every = [list(c) + [len(lengths)] for k in range(parts) for c in itertools.combinations(range(1, len(lengths)), k)]
        assert padded_slots(lengths, ends) == min(padded_slots(lengths, e) for e in every)


def test_cut_points_take_no_more_runs_than_the_lengths_need():
    assert cut_points([5, 5, 5, 5], 4) == [4]
    assert cut_points([2, 2, 3, 6, 6, 65, 65], 4) == [2, 3, 5, 7]
    assert cut_points([2, 2, 6, 65], 2) == [3, 4]


def trainer_on(modalities, **options):
    from unio.data.mixture import pair_name
    from unio.model.presets import model_from_preset
    from unio.train.logs import TaskLosses
    from unio.train.trainer import Trainer, TrainOptions
    trainer = Trainer(TrainOptions(tasks="vqa,caption,refexp,depth", preset="toy", precision="fp32", compile=False,
                                   spatial_first=0, buckets=1, **options))
    torch.manual_seed(0)
    trainer.mods, trainer.model = modalities, model_from_preset("toy", modalities.vocab.size)
    trainer.task_losses, trainer.weighting, trainer.detached = TaskLosses([pair_name(*p) for p in trainer.weights]), None, torch.tensor([])
    return trainer


def mixed_batch(trainer, modalities):
    from unio.data.batching import BatchStream, Collator
    from unio.data.mixture import Mixture
    mixture = Mixture(trainer.tasks, trainer.sources, trainer.weights, 32, 100, 0)
    batch = BatchStream(mixture, Collator(trainer.tasks, modalities, 48, 72), 12, buckets=1).batch(0)
    assert len(set(target_lengths(batch["labels"]).tolist())) >= 3 and len(set(batch["attention_mask"].sum(1).tolist())) >= 2
    return batch


def loss_and_gradients(trainer, batch):
    trainer.model.zero_grad(set_to_none=True)
    trainer.backend.update = lambda *args: None                  # keep the gradients, take no step
    trainer.optimizer = trainer.scheduler = None
    loss = trainer.train_step([batch])
    return loss, [p.grad.clone() for p in trainer.model.parameters() if p.grad is not None]


@pytest.mark.parametrize("loss_mean", ["token", "task"])
def test_sub_batches_give_the_whole_batchs_loss_and_gradients(modalities, loss_mean):
    whole = trainer_on(modalities, loss_mean=loss_mean, sub_batches=1)
    batch = mixed_batch(whole, modalities)
    split = trainer_on(modalities, loss_mean=loss_mean, sub_batches=4)
    assert len(target_groups(batch["labels"], 4)) > 1
    loss, grads = loss_and_gradients(whole, batch)
    split_loss, split_grads = loss_and_gradients(split, batch)
    assert split_loss == pytest.approx(loss, rel=1e-5)
    assert len(grads) == len(split_grads) == len(list(whole.model.parameters()))
    for a, b in zip(grads, split_grads):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
    assert whole.task_losses.pop() == pytest.approx(split.task_losses.pop(), rel=1e-5)   # the logged task losses too


def test_groups_cover_every_row_once_and_pad_less(modalities):
    trainer = trainer_on(modalities)
    labels = mixed_batch(trainer, modalities)["labels"]
    lengths = target_lengths(labels)
    groups = target_groups(labels, 3)
    assert sorted(torch.cat([rows for rows, _ in groups]).tolist()) == list(range(len(labels)))
    assert all(length == int(lengths[rows].max()) for rows, length in groups)
    assert sum(len(rows) * length for rows, length in groups) < labels.numel()


def grouped_inputs(tiny_config):
    torch.manual_seed(0)
    labels = torch.randint(10, tiny_config.vocab_size, (5, 6))
    labels[1, 2:] = labels[3, 1:] = IGNORE
    inputs = dict(pixel_values=torch.rand(5, 3, 32, 32), input_ids=torch.randint(10, 100, (5, 5)),
                  attention_mask=torch.ones(5, 5, dtype=torch.long), labels=labels,
                  label_weights=(labels != IGNORE) / (labels != IGNORE).sum())
    groups = target_groups(labels, 2)
    assert [len(rows) for rows, _ in groups] == [2, 3] and [length for _, length in groups] == [2, 6]
    return inputs, groups


def test_grouped_decoding_gives_the_models_own_loss_and_logits(tiny_config):
    from unio.model import UnioModel
    tiny_config.z_loss = 1e-3                        # a mean over every target token, not one per group
    model = UnioModel(tiny_config).eval()
    inputs, groups = grouped_inputs(tiny_config)
    whole, grouped = model(**inputs), model(**inputs, target_groups=groups)
    assert torch.allclose(grouped.loss, whole.loss, atol=1e-5)
    for logits, (rows, length) in zip(grouped.logits, groups):
        assert torch.allclose(logits, whole.logits[rows, :length], atol=1e-5)
    with pytest.raises(ValueError, match="label_weights"):
        model(**{k: v for k, v in inputs.items() if k != "label_weights"}, target_groups=groups)


@torch.no_grad()
def test_moe_balancing_counts_once_a_batch_not_once_a_group(tiny_config):
    """Under MoE each group's tokens compete for expert slots as a batch's do, so the loss is not the
    whole batch's; its balancing term is still one mean over the model's MoE layers."""
    from unio.model import UnioModel
    tiny_config.moe_every = 1
    model = UnioModel(tiny_config).eval()
    inputs, groups = grouped_inputs(tiny_config)
    weights = model.config.moe_aux_weight, model.config.moe_z_weight

    def balancing(**extra):
        with_it = model(**inputs, **extra).loss
        model.config.moe_aux_weight = model.config.moe_z_weight = 0.0
        without = model(**inputs, **extra).loss
        model.config.moe_aux_weight, model.config.moe_z_weight = weights
        return float(with_it - without)
    whole, grouped = balancing(), balancing(target_groups=groups)
    assert whole > 0 and abs(grouped - whole) < 0.25 * whole


def test_bad_sub_batches_are_refused_naming_what_is_valid():
    from unio.train.trainer import Trainer, TrainOptions
    with pytest.raises(ValueError, match="--sub-batches 0: the most groups"):
        Trainer(TrainOptions(tasks="vqa,refexp", sub_batches=0))
    with pytest.raises(ValueError, match="--packing"):
        Trainer(TrainOptions(tasks="vqa,refexp", sub_batches=2, packing="auto"))
