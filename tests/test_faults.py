"""Faults during a run: a checkpoint write that fails (no space left on device) leaves the checkpoints
there were and stops with a message; a damaged checkpoint is refused on --resume, naming the file, and
the one before it is resumed from, continuing the same run."""
import errno
import json
import warnings

import pytest
import torch

from unio.train import checkpoint as ckpt


def options(root, **changes):
    from unio.train.trainer import TrainOptions
    settings = dict(tasks="vqa,refexp", preset="toy", steps=6, batch_size=4, warmup=2, tokenizers=str(root / "tokenizers"),
                    out=str(root / "run"), compile=False, progress=False, data_workers=0, checkpoint_every=2,
                    log_every=1, spatial_first=0.0)
    return TrainOptions(**{**settings, **changes})


def train(opts):
    from unio.train.trainer import Trainer
    trainer = Trainer(opts)
    trainer.train()
    return trainer


def losses(run):
    rows = [json.loads(line) for line in open(run / "metrics.jsonl")]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}   # a resumed run's lines overwrite the earlier ones


@pytest.fixture()
def run(modalities, tmp_path):
    """A toy run of 6 steps with a checkpoint every 2: checkpoint (step 6) and checkpoint.previous (step 4)."""
    modalities.save(tmp_path / "tokenizers")
    train(options(tmp_path))
    return tmp_path


def step_of(folder):
    return ckpt.load_state(folder)["step"]


def test_the_checkpoint_before_the_newest_is_kept_with_checksums(run):
    out = run / "run"
    assert [step_of(out / "checkpoint"), step_of(out / "checkpoint.previous")] == [6, 4]
    assert ckpt.damage(out / "checkpoint") is None and ckpt.damage(out / "checkpoint.previous") is None
    manifest = json.loads((out / "checkpoint" / ckpt.MANIFEST).read_text())
    assert {"trainer_state.pt", "model/model.safetensors"} <= set(manifest)
    assert not (out / "checkpoint.tmp").exists()


def test_a_damaged_checkpoint_is_refused_and_the_previous_one_resumed(run):
    out = run / "run"
    reference, lines = losses(out), len(open(out / "metrics.jsonl").readlines())
    weights = out / "checkpoint" / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF                                      # one flipped byte
    weights.write_bytes(bytes(data))
    with pytest.warns(UserWarning, match=r"model\.safetensors differs from what was written.*checkpoint\.previous"):
        assert ckpt.find_checkpoint(out) == out / "checkpoint.previous"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        resumed = train(options(run, resume=True))
    assert resumed.step == 6
    got, rows = losses(out), [json.loads(line) for line in open(out / "metrics.jsonl").readlines()[lines:]]
    assert [r["step"] for r in rows if "loss" in r] == [4, 5]            # steps 5 and 6 again, from step 4's checkpoint
    assert all(abs(got[s] - reference[s]) <= 1e-4 * max(1.0, abs(reference[s])) for s in (4, 5)), (got, reference)
    assert ckpt.damage(out / "checkpoint") is None                      # the resumed run wrote a whole one


def test_with_every_checkpoint_damaged_resume_names_them(run):
    out = run / "run"
    for folder in ("checkpoint", "checkpoint.previous"):
        state = out / folder / ckpt.STATE
        state.write_bytes(state.read_bytes()[:100])                     # truncated
    with pytest.raises(ckpt.CheckpointError, match=r"no whole checkpoint.*checkpoint/trainer_state\.pt holds 100 bytes"
                                                   r".*checkpoint\.previous/trainer_state\.pt holds 100 bytes"):
        train(options(run, resume=True))


def test_no_space_left_while_writing_a_checkpoint_keeps_the_previous_and_says_so(run, monkeypatch):
    out = run / "run"
    before = {f: ckpt.sha256(f) for f in sorted((out / "checkpoint").rglob("*")) if f.is_file()}
    real_save = torch.save

    def full_disk(obj, path, *args, **kwargs):
        if str(path).endswith(ckpt.STATE):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(obj, path, *args, **kwargs)
    monkeypatch.setattr(ckpt.torch, "save", full_disk)
    with pytest.raises(ckpt.CheckpointError, match=r"could not write the checkpoint of step 8 \(No space left on device"
                                                   r".*untouched.*free some space, then rerun the same command with --resume"):
        train(options(run, resume=True, steps=10))
    assert not (out / "checkpoint.tmp").exists()
    assert {f: ckpt.sha256(f) for f in sorted((out / "checkpoint").rglob("*")) if f.is_file()} == before
    assert step_of(ckpt.find_checkpoint(out)) == 6


def test_the_train_cli_stops_on_a_checkpoint_error_with_its_message(monkeypatch):
    from unio.train import cli

    def failing(args):
        raise ckpt.CheckpointError("could not write the checkpoint of step 8 (No space left on device: x)")
    monkeypatch.setattr(cli, "run", failing)
    with pytest.raises(SystemExit, match=r"^checkpoint: could not write the checkpoint of step 8"):
        cli.main(["--tasks", "vqa", "--out", "unused"])
