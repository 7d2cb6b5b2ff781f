"""The one path from examples to answers, shared by evaluation, unio.run and the bench:
examples -> encoder inputs -> generate() under the task's grammar -> the task's decoder.
A task with answer options (`answer_options(example)`) has them ranked by likelihood instead."""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import SimpleNamespace

import torch
from transformers import LogitsProcessor

from unio.data.encoding import encode_inputs
from unio.grammar import answer_start_id
from unio.model.decoding import generate_constrained, score_candidates, strip_answer
from unio.task import to_original
from unio.task_set import TaskSet
from unio.vocab import EOS, PAD


@dataclass
class Answer:
    ids: list               # generated ids, EOS and padding removed
    score: float | None     # mean token log-probability (greedy, sampling) or the beam score
    prediction: object      # the task's decoded answer, in the model's frame
    token_logprobs: list | None = None   # one log-probability per id (greedy, sampling); None under beams


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _non_negative_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _positive_float(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


# option -> (check, what is valid): every option unio passes on to generate()
GENERATION_OPTIONS = {
    "num_beams": (_positive_int, "an integer >= 1"),
    "do_sample": (lambda v: isinstance(v, bool), "True or False"),
    "temperature": (_positive_float, "a finite number > 0"),
    "top_k": (_non_negative_int, "an integer >= 0 (0: no top-k filtering)"),
    "top_p": (lambda v: _positive_float(v) and v <= 1, "a number in (0, 1]"),
    "max_new_tokens": (_positive_int, "an integer >= 1"),
    "min_new_tokens": (_non_negative_int, "an integer >= 0"),
    "num_return_sequences": (lambda v: v == 1, "1 (one answer per prompt)"),
    "repetition_penalty": (_positive_float, "a finite number > 0"),
    "length_penalty": (lambda v: isinstance(v, (int, float)) and math.isfinite(v), "a finite number"),
    "output_scores": (lambda v: isinstance(v, bool), "True or False"),
    "guidance_scale": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0,
                       "a finite number >= 0 (0: plain decoding)"),
    "seed": (_non_negative_int, "an integer >= 0"),
}
UNIO_OPTIONS = ("guidance_scale", "seed")   # options unio applies itself; never passed to generate()


def check_generation_options(options: dict) -> None:
    """Refuse, before generate() runs, an option unio does not pass on or a value outside its range."""
    for name, value in options.items():
        if name not in GENERATION_OPTIONS:
            raise ValueError(f"unknown generation option {name!r}; options: {', '.join(GENERATION_OPTIONS)}")
        check, valid = GENERATION_OPTIONS[name]
        if not check(value):
            raise ValueError(f"generation option {name}={value!r} is invalid; {name} must be {valid}")


# options by which a caller chooses the decoding itself: a task's pooled samples are not drawn then
OWN_DECODING = {"do_sample", "num_beams", "guidance_scale"}
SAMPLING = ("temperature", "top_k", "top_p")   # read by the sampled answers alone
POOLED_TOP_K = 50                              # the pooled samples' top-k unless given (transformers' default)
SAMPLED_ROWS = 256                             # rows (examples x copies) one call draws pooled samples for


@torch.no_grad()
def generate_answers(model, mods, task, examples, tasks: TaskSet | None = None, **options) -> list:
    """One batch of examples of one task -> [Answer]. `tasks`: the TaskSet a task answered through another
    finds that one in (default: the model's tasks, with the options it was trained with). A task with
    `pooled_samples` has its greedy answers pooled with that many sampled ones (unless `options` choose
    the decoding)."""
    check_generation_options(options)
    if not examples:
        return []
    samples = getattr(task, "pooled_samples", 0)
    if samples and not OWN_DECODING & set(options):
        return pooled_answers(model, mods, task, examples, tasks, samples, **options)
    return _generate_answers(model, mods, task, examples, tasks, **options)


def pooled_answers(model, mods, task, examples, tasks, samples: int, **options) -> list:
    """Each example's greedy answer and `samples` sampled answers (temperature 1 and the 50 likeliest tokens
    unless `options` say otherwise), its predictions pooled into one by the task's `pool([greedy, sampled
    ...])`: more candidates than one list holds, for metrics that rank many (recall@K). The samples are
    drawn as copies of each example's row after the encoder (one encoder pass a call), in generate() calls
    of SAMPLED_ROWS rows at most (one copy a call where a batch holds more examples), the k-th call seeded
    `seed` + k (default from 0): another draw needs a seed past the first draw's calls. The Answer's ids and
    score stay the greedy one's. Sampling draws across a call's rows, so pooled answers depend on which
    examples share a batch and on the copies a call (the batch size and SAMPLED_ROWS)."""
    first = options.pop("seed", None) or 0
    sampling = {k: options.pop(k) for k in SAMPLING if k in options}
    sampling.setdefault("top_k", POOLED_TOP_K)
    greedy = _generate_answers(model, mods, task, examples, tasks, **options)
    sampled: list = [[] for _ in examples]
    per_call = max(1, min(samples, SAMPLED_ROWS // len(examples)))
    for k, start in enumerate(range(0, samples, per_call)):
        copies = min(per_call, samples - start)
        drawn = _generate_answers(model, mods, task, examples, tasks, copies=copies, do_sample=True, seed=first + k,
                                  **sampling, **options)
        for i, found in enumerate(sampled):
            found += [a.prediction for a in drawn[i * copies:(i + 1) * copies]]
    return [replace(a, prediction=task.pool([a.prediction] + found)) for a, found in zip(greedy, sampled)]


def _generate_answers(model, mods, task, examples, tasks: TaskSet | None = None, copies: int = 1, **options) -> list:
    """[Answer] of each example, or with `copies` (sampling only) that many answers of each, in its row's
    copies: example i's at i * copies .. (i + 1) * copies - 1."""
    if getattr(task, "via", None):
        if copies != 1:
            raise ValueError(f"task {task.name!r} is answered through {task.via!r}: it draws one answer an example")
        return answers_through(model, mods, task, examples, tasks or TaskSet(model.config.task_options, True), **options)
    if getattr(task, "ask_first", None):
        ask_first(model, mods, task, examples, tasks or TaskSet(model.config.task_options, True))
    model.eval()
    device = next(model.parameters()).device
    seed, scale = options.pop("seed", None), options.pop("guidance_scale", None)
    if scale is None:   # the task's own scale, where its `guidance` option names one
        scale = own_guidance(task)
    guided = guided_examples(task, examples, scale, options)
    inputs = {k: v.to(device) for k, v in encode_inputs(guided or examples, mods, model.config.max_text_length).items()}
    candidates = answer_options(task, examples)
    if (candidates is not None or guided) and copies != 1:
        raise ValueError(f"task {task.name!r} ranks answer options or is guided here: it draws one answer an example")
    if candidates is not None:
        return rank_answers(model, mods, task, examples, inputs, candidates)
    options.setdefault("output_scores", True)
    options["return_dict_in_generate"] = True
    extra = [StopByMass()] if getattr(task, "stop_by_mass", False) else []
    if copies != 1:      # generate() expands each row into its copies after the encoder
        if options.get("num_beams", 1) != 1:
            raise ValueError(f"copies are sampled answers; num_beams={options['num_beams']} must be 1 with them")
        options["num_return_sequences"] = copies
    extra += ForcedPrefix.for_task(task, examples, mods, options.get("num_beams", 1) * copies)
    guidance = ClassifierFreeGuidance.from_options(scale, len(examples), options) if guided else None
    options["extra_processors"] = extra + ([guidance] if guidance else [])
    with seeded(seed, device):
        out = generate_constrained(model, inputs, task.grammar(mods, model.config.image_size), mods.vocab, **options)
    if guidance is not None:   # the conditional rows, scored by the guided distribution
        out = SimpleNamespace(sequences=out.sequences[:len(examples)], scores=tuple(guidance.history))
    answers = []
    distributions = step_distributions(task, out)
    rows = [example for example in examples for _ in range(copies)]
    for i, (row, (score, logps), example) in enumerate(zip(out.sequences[:, 1:].cpu(), token_scores(out), rows)):
        ids = strip_answer(row)
        logps = logps and logps[:len(ids)]
        answers.append(Answer(ids, score, decode(task, ids, mods, example, logps, distributions[i]), logps))
    return answers


def step_distributions(task, out) -> list:
    """Each row's (L, V) log-probabilities of every generation step (after the grammar, any guidance and, when
    sampling, the top-k / top-p warpers), for a task whose decoder reads them (`uses_step_distributions`);
    Nones otherwise and under beams."""
    rows = out.sequences.shape[0]
    if not getattr(task, "uses_step_distributions", False) or getattr(out, "sequences_scores", None) is not None \
            or not getattr(out, "scores", None):
        return [None] * rows
    return list(torch.stack([s.float().log_softmax(-1) for s in out.scores], 1).cpu())


def answers_through(model, mods, task, examples, tasks: TaskSet, **options) -> list:
    """A task answered through another (`task.via`, e.g. find_all through detection): that task's answers
    about the same images, each turned into this task's prediction by `task.from_answer(answer, example, ask)`,
    where `ask(task name, examples)` answers further examples (one per detected box ...) with the same model
    and options, as Result fields in the original image's pixels."""
    def ask(name: str, asked: list) -> list:
        handler = tasks.get(name)
        answers = generate_answers(model, mods, handler, asked, tasks, **options)
        return [result_fields(handler, a.prediction, ex.frame) for a, ex in zip(answers, asked)]

    other = tasks.get(task.via)
    asked = [replace(ex, task=other.name, prompt=other.prompts[0], target=None, region=None) for ex in examples]
    answers = generate_answers(model, mods, other, asked, tasks, **options)
    return [Answer(a.ids, a.score, task.from_answer(a.prediction, ex, ask), a.token_logprobs)
            for a, ex in zip(answers, examples)]


def ask_first(model, mods, task, examples, tasks: TaskSet) -> None:
    """A task's `ask_first` hook: it asks other tasks of the same model (greedy) before its own answer."""
    def ask(name: str, asked: list) -> list:
        trained = model.config.trained_tasks
        if trained is not None and name not in trained:
            raise ValueError(f"task {task.name!r} asks {name!r} first, which this model was not trained on "
                             f"(it was trained on {', '.join(trained)})")
        return [a.prediction for a in generate_answers(model, mods, tasks.get(name), asked, tasks)] if asked else []
    task.ask_first(examples, tasks, ask)


def result_fields(task, prediction, frame) -> dict:
    """A task's prediction (model frame) -> its Result fields in the original image's pixels."""
    prediction = to_original(task, prediction, frame)
    return task.to_result(prediction) if hasattr(task, "to_result") else {task.output: prediction}


@contextmanager
def seeded(seed: int | None, device):
    """Sampling reproducible from `seed` (the global generators forked, so no caller's state changes)."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def own_guidance(task) -> float | None:
    """The scale a task's `guidance` option decodes its answers at; an error while it is still a list of
    candidates, which unio.infer.choices chooses among on validation."""
    scale = getattr(task, "guidance", None)
    if isinstance(scale, tuple):
        raise ValueError(f"task {task.name!r}: guidance is still a list of candidate scales {list(scale)}, chosen on the "
                         f"validation split when training ends or by scripts/evaluate.py; pass guidance_scale=A, or "
                         f"set the task option guidance to one scale")
    return scale


def guided_examples(task, examples, scale, options) -> list | None:
    """With a guidance scale, the batch doubled: the examples, then each one's unconditional twin
    (the task's `unconditional(example)`: its null prompt). None without guidance."""
    if scale is None:
        return None
    unconditional = getattr(task, "unconditional", None)
    if unconditional is None:
        from unio.registries import TASKS
        guided = [n for n in TASKS.names() if hasattr(TASKS.get(n), "unconditional")]
        raise ValueError(f"task {getattr(task, 'name', None)!r} has no unconditional prompt, so guidance_scale "
                         f"does not apply to it; tasks with guidance: {', '.join(guided) or 'none'}")
    if options.get("num_beams", 1) != 1:
        raise ValueError(f"guidance_scale decodes greedily or by sampling; num_beams={options['num_beams']} "
                         "must be 1 with it")
    return list(examples) + [unconditional(ex) for ex in examples]


class ClassifierFreeGuidance(LogitsProcessor):
    """Classifier-free guidance over a doubled batch (rows 0..B-1 conditional, B..2B-1 their
    unconditional twins), Unified-IO 2's recipe: logp = (1 + a) * logp(cond) - a * logp(uncond), over the
    tokens the grammar allows. Each step's token is chosen here, greedily or by sampling (temperature,
    top-k, top-p applied to the guided distribution; transformers' warpers, its softmax and multinomial),
    and both rows of a pair get it, so the twins stay on the same answer; generate() itself runs greedy.
    At a = 0 this is plain decoding. `history`: the guided log-probabilities of each step, (B, V)."""

    def __init__(self, scale: float, rows: int, sample: bool = False, temperature: float | None = None,
                 top_k: int | None = None, top_p: float | None = None):
        from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper
        self.scale, self.rows, self.sample, self.history = float(scale), rows, sample, []
        self.warpers = LogitsProcessorList(
            ([TemperatureLogitsWarper(temperature)] if temperature not in (None, 1.0) else [])
            + ([TopKLogitsWarper(top_k)] if top_k else []) + ([TopPLogitsWarper(top_p)] if top_p not in (None, 1.0) else []))

    @classmethod
    def from_options(cls, scale: float, rows: int, options: dict) -> "ClassifierFreeGuidance":
        """Takes the sampling options out of `options` (generate() then decodes greedily over its choices)."""
        sampling = {k: options.pop(k, None) for k in ("temperature", "top_k", "top_p")}
        return cls(scale, rows, sample=options.pop("do_sample", False), **sampling)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        b, lowest = self.rows, torch.finfo(torch.float32).min
        if scores.shape[0] != 2 * b:
            raise ValueError(f"guidance expects {2 * b} rows (conditional, then unconditional), got {scores.shape[0]}")
        allowed = scores[:b] > torch.finfo(scores.dtype).min                    # what the grammar left open
        logp = scores.float().log_softmax(-1)
        mixed = ((1 + self.scale) * logp[:b] - self.scale * logp[b:]).masked_fill(~allowed, lowest)   # (B, V)
        self.history.append(mixed.log_softmax(-1))
        chosen = mixed
        if self.sample:
            probs = self.warpers(input_ids[:b], mixed).softmax(-1)
            picked = torch.multinomial(probs, num_samples=1)                          # (B, 1)
            chosen = torch.full_like(mixed, lowest).scatter_(1, picked, 0.0)
        return torch.cat([chosen, chosen]).to(scores.dtype)


def decode(task, ids, mods, example, logprobs, distributions=None):
    """The task's decoder; given the tokens' log-probabilities when it asks (`uses_token_logprobs`), and each
    step's whole distribution when it asks (`uses_step_distributions`)."""
    extra = {}
    if getattr(task, "uses_token_logprobs", False):
        extra["logprobs"] = logprobs
    if getattr(task, "uses_step_distributions", False):
        extra["distributions"] = distributions
    return task.decode(ids, mods, example, **extra)


class StopByMass(LogitsProcessor):
    """Where an answer may end or go on, ends it only if EOS is likelier than all the allowed
    continuations together, and never otherwise (a task's `stop_by_mass`). For lists of boxes: the
    mass of "one more object" is spread over many location bins, so plain greedy decoding would stop
    at an EOS that is less likely than going on."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        stop = scores.float().softmax(-1)[:, EOS]
        undecided, lowest = (stop > 0) & (stop < 1), torch.finfo(scores.dtype).min
        ends, goes_on = undecided & (stop >= 0.5), undecided & (stop < 0.5)
        only_eos = torch.full_like(scores, lowest)
        only_eos[:, EOS] = scores[:, EOS]
        scores = torch.where(ends[:, None], only_eos, scores)
        scores[goes_on, EOS] = lowest
        return scores


class ForcedPrefix(LogitsProcessor):
    """Each example's answer starts with the ids its task's `answer_prefix` gives (none: free). Rows are
    examples, expanded by beams and doubled by guidance (example = (row // beams) % examples)."""

    def __init__(self, prefixes: list, num_beams: int = 1):
        self.prefixes, self.num_beams = prefixes, num_beams

    @classmethod
    def for_task(cls, task, examples, mods, num_beams: int = 1) -> list:
        answer_prefix = getattr(task, "answer_prefix", None)
        prefixes = [answer_prefix(ex, mods) for ex in examples] if answer_prefix else []
        return [cls(prefixes, num_beams)] if any(prefixes) else []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        position = input_ids.shape[1] - 1                   # tokens generated after the start token
        for row in range(scores.shape[0]):
            prefix = self.prefixes[(row // self.num_beams) % len(self.prefixes)]
            if prefix and position < len(prefix):     # the one finite score (log-probability 0 after softmax),
                scores[row] = torch.finfo(scores.dtype).min   # whatever an earlier processor (StopByMass) left there
                scores[row, prefix[position]] = 0.0
        return scores


def answer_options(task, examples) -> list | None:
    """Each example's candidate answers, or None when the task (or any example) has none."""
    options = getattr(task, "answer_options", None)
    found = [options(ex) for ex in examples] if options else [None]
    return None if any(f is None for f in found) else found


def rank_answers(model, mods, task, examples, inputs, candidates) -> list:
    """The likeliest candidate of each example (summed token log-probabilities, as Unified-IO ranks answer options),
    each after the ids the task's `answer_prefix` gives (itm.ground: the objects detection found)."""
    answers = []
    start = ranking_start(model, mods, task)
    answer_prefix = getattr(task, "answer_prefix", None)
    for i, (example, texts) in enumerate(zip(examples, candidates)):
        prefix = (answer_prefix(example, mods) if answer_prefix else None) or []
        ids = [prefix + mods.text_ids(t) for t in texts]
        scores = score_candidates(model, {k: v[i:i + 1] for k, v in inputs.items()}, ids, start)
        best = int(scores.argmax())
        answers.append(Answer(ids[best], float(scores[best]), task.decode(ids[best][len(prefix):], mods, example)))
    return answers


def ranking_start(model, mods, task) -> int | None:
    """The decoder's first token when ranking a task's answer options: its answer range's start token for a
    model that starts there (decoder_start 'answer'), else None (the model's own start)."""
    if getattr(model.config, "decoder_start", "bos") != "answer":
        return None
    return answer_start_id(task.grammar(mods, model.config.image_size), mods.vocab)


def token_scores(out) -> list:
    """[(mean log-probability of the chosen tokens, [each token's]) per row] (greedy / sampling);
    under beams (beam score, None)."""
    if getattr(out, "sequences_scores", None) is not None:
        return [(float(s), None) for s in out.sequences_scores]
    if not getattr(out, "scores", None):
        return [(None, None)] * out.sequences.shape[0]
    logps = torch.stack([s.float().log_softmax(-1) for s in out.scores], 1)          # (B, L, V)
    chosen = out.sequences[:, 1:1 + logps.shape[1]].to(logps.device)
    picked = logps.gather(-1, chosen[..., None])[..., 0]
    valid = (chosen != PAD) & torch.isfinite(picked)
    total = torch.where(valid, picked, 0.0).sum(-1)   # not picked * valid: -inf * 0 (a PAD after EOS under top-k) is NaN
    return [(float(t / v.sum().clamp(min=1)), p[v].tolist()) for t, p, v in zip(total, picked, valid)]

