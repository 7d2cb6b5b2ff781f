"""Ranks of a data-parallel run read disjoint parts of every source: in one epoch no record is read twice
and none is left out; a megabatch stays a function of (seed, rank, index); one process draws as before."""
import numpy as np
import pytest
from conftest import on_two_ranks

from unio.data.mixture import Mixture
from unio.data.sources import build_source
from unio.registries import TASKS

PAIRS = {("caption", "world"): 1.0, ("vqa", "world"): 1.0}


def mixture(rank: int, world: int, pool: int = 37) -> Mixture:
    tasks = {"caption": TASKS.get("caption"), "vqa": TASKS.get("vqa")}
    m = Mixture(tasks, {"world": build_source("world", None, 32)}, PAIRS, 32, pool=pool, seed=3, rank=rank, world=world)
    m.example = lambda pair, record, rng: (pair, record)     # what was read, not the example made of it
    return m


def reads(rank: int, world: int, megabatches: int = 24) -> list:
    m = mixture(rank, world)
    return [x for i in range(megabatches) for x in m.megabatch(i, 8)]


def test_two_ranks_read_each_record_once_an_epoch():
    drawn = {rank: reads(rank, 2) for rank in (0, 1)}
    for pair in (0, 1):
        mine = {rank: [record for p, record in drawn[rank] if p == pair] for rank in (0, 1)}
        parts = {0: 19, 1: 18}                                   # 37 records: rank 0 every other from 0, rank 1 from 1
        assert all(len(mine[rank]) >= 2 * parts[rank] for rank in (0, 1))
        for epoch in (0, 1):
            seen = [r for rank in (0, 1) for r in mine[rank][epoch * parts[rank]:(epoch + 1) * parts[rank]]]
            assert sorted(seen) == list(range(37)), (pair, epoch)   # none twice, none left out
        assert mine[0][:19] != mine[0][19:38]                    # each epoch its own order


def _epoch_on_rank(rank: int, port: int, results) -> None:
    """One gloo rank: its draws of one epoch of pair 0, all-gathered."""
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    mine = [record for pair, record in reads(rank, dist.get_world_size()) if pair == 0][:19 - rank]
    gathered = [None, None]
    dist.all_gather_object(gathered, mine)
    results[rank] = sorted(r for part in gathered for r in part)
    dist.destroy_process_group()


def test_two_gloo_ranks_read_disjoint_parts_that_cover_the_source():
    """As a DeepSpeed run's ranks do: each its own process, its rank and the world size from the process group."""
    assert on_two_ranks(_epoch_on_rank) == {0: list(range(37)), 1: list(range(37))}


def test_a_sharded_megabatch_is_a_function_of_its_index():
    m = mixture(1, 2)
    assert m.megabatch(17, 8) == reads(1, 2, 18)[17 * 8:]        # asked alone (a resumed run) or in order
    assert m.megabatch(3, 8) == reads(1, 2, 4)[3 * 8:]           # and going back


def test_one_process_draws_records_at_random_as_before():
    m = mixture(0, 1)
    rng = np.random.default_rng([3, 0, 5, 17])
    picked = rng.choice(2, size=8, p=[0.5, 0.5])
    assert m.megabatch(5, 8) == list(zip(picked.tolist(), rng.integers(0, m.spans[picked]).tolist()))


def test_more_ranks_than_records_is_refused():
    with pytest.raises(ValueError, match=r"source 'world' has 3 train records, fewer than the 4 ranks"):
        mixture(0, 4, pool=3)
