"""Parity with the anchor: TRL's RewardTrainer and rmforge agree on ids, first-step loss and gradients.

Both sides get the same tiny random decoder (fp32, CPU, dropout off, loaded once by
``load_reward_model`` and deep-copied for each side, so the head init and the pad token are the
same), the same pairs, in the same order: TRL runs one real ``trainer.train()`` step over a single
batch holding the whole dataset, with its random sampler replaced by a sequential one, gradient
clipping off, and a callback that copies every gradient before the optimizer step; rmforge runs
``batch_loss`` (summed over pairs, divided by n) and ``backward``.

How TRL (1.x) builds ids, and the rmforge settings that reproduce them:

* conversational rows (``prompt``/``chosen``/``rejected`` as message lists): TRL tokenises
  ``apply_chat_template(prompt + chosen)`` and appends no EOS, so with a ChatML-style template it
  scores the ``"\\n"`` after ``<|im_end|>``. rmforge gives the same ids with ``append_eos=False``;
  its default (``append_eos=True``) adds the EOS id after that newline (TRL's ids + [eos]).
* standard (text) rows: TRL appends the EOS *text* to chosen/rejected, then tokenises
  ``prompt + chosen`` with the tokenizer's own special tokens. rmforge's ``plain`` format
  (``chat_template="none"``, ``append_eos=True``) gives the same ids when the prompt text is
  written in that format (``User: ...\\n\\nAssistant:`` and a response starting with a space).
* length: TRL drops every pair whose chosen or rejected ids exceed ``max_length``
  (silently); rmforge's ``length_policy="drop"`` drops exactly those pairs, while its default
  ``truncate_prompt`` keeps them with the prompt cut from the left.

Objective: TRL's loss is ``mean(-logsigmoid(r_c - r_r - margin)) + coef * mean((r_c + r_r)^2)``
(margin from a ``margin`` column, factor fixed at 1; centering when
``center_rewards_coefficient`` is set). rmforge's ``loss.margin_scale=1`` and ``loss.center_coef``
are the same formula (no difference in the centering term). A tie model (``loss.tie_model=rao-kupper``,
theta=2) trains every non-tie pair with ``-logsigmoid(d - ln theta)``, i.e. TRL's loss with a constant
margin of ln 2; the default ``auto`` therefore picks it only when the training data has ties, and
is TRL's plain Bradley-Terry otherwise.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from transformers import TrainerCallback

from rmforge.data.schema import Message, Sample
from rmforge.reward_model.batching import pair_batch
from rmforge.train.config import LossConfig
from rmforge.reward_model.modeling import load_reward_model
from rmforge.train.tiny import tiny_model
from rmforge.reward_model.tokenize import RewardEncoder
from rmforge.train.trainer import batch_loss

TOL = 1e-5
MAX_LENGTH = 128

# (prompt messages, chosen, rejected, margin): varied lengths so padding matters; one multi-turn prompt
# with a system message.
PAIRS = [
    ([("user", "what is two plus two")], "the answer is four", "I do not know", 0.5),
    ([("system", "be brief and help the user"), ("user", "can you tell me how to start a small garden"),
      ("assistant", "sure, what do you want to grow"), ("user", "some green food for the table")],
     "start with a few pots of herbs in the sun and water them each day",
     "no", 0.0),
    ([("user", "say something kind")], "you did good work today and I hope you rest well",
     "work more", 1.0),
    ([("user", "write the word yes three times")], "yes yes yes", "yes no yes maybe", 2.0),
]


def msgs(pairs):
    return [{"role": r, "content": c} for r, c in pairs]


def samples(with_margin: bool = False) -> list[Sample]:
    return [Sample(id=f"p{i}", prompt=[Message(role=r, content=c) for r, c in p],
                   chosen=[Message(role="assistant", content=ch)], rejected=[Message(role="assistant", content=rj)],
                   margin=m if with_margin else None)
            for i, (p, ch, rj, m) in enumerate(PAIRS)]


def conversational_rows(margin: bool | list[float] = False) -> list[dict]:
    rows = []
    for i, (p, ch, rj, m) in enumerate(PAIRS):
        row = {"prompt": msgs(p), "chosen": msgs([("assistant", ch)]), "rejected": msgs([("assistant", rj)])}
        if margin is True:
            row["margin"] = m
        elif margin:
            row["margin"] = margin[i]
        rows.append(row)
    return rows


_PLAIN = {"system": "System", "user": "User", "assistant": "Assistant"}


def standard_rows() -> list[dict]:
    """Text rows written in rmforge's plain format (what ``chat_template="none"`` renders)."""
    rows = []
    for p, ch, rj, _ in PAIRS:
        prompt = "\n\n".join(f"{_PLAIN[r]}: {c}" for r, c in p) + "\n\nAssistant:"
        rows.append({"prompt": prompt, "chosen": " " + ch, "rejected": " " + rj})
    return rows


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """(model, tokenizer) loaded once; every test works on deep copies."""
    folder = tiny_model("llama", tmp_path_factory.mktemp("trl") / "tiny", seed=0)
    torch.manual_seed(0)
    model, tok = load_reward_model(str(folder))  # new head N(0, 1/sqrt(H+1)), dropout 0, pad != eos
    assert tok.pad_token_id != tok.eos_token_id
    return model.float(), tok


class _GradGrab(TrainerCallback):
    """Copies every gradient right before the first optimizer step (clipping is off)."""

    def __init__(self):
        self.grads = None

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        if self.grads is None:
            self.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _trainer_cls():
    from torch.utils.data import SequentialSampler

    class Recording(trl.RewardTrainer):
        """TRL's trainer, recording the batch and loss of the step; sequential order instead of shuffling."""

        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss = out[0] if return_outputs else out
            self.recorded.append(({k: v.detach().clone() for k, v in inputs.items() if torch.is_tensor(v)},
                                  loss.detach().clone()))
            return out

    return Recording


def no_checkpointing() -> dict:
    """RewardConfig turns activation checkpointing on by default; off here (under its name in this version)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(trl.RewardConfig)}
    return {"activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing": False}


def trl_trainer(model, tok, rows, tmp_path, max_length=MAX_LENGTH, center=None, train=False):
    args = trl.RewardConfig(
        output_dir=str(tmp_path / "trl"), per_device_train_batch_size=len(rows), gradient_accumulation_steps=1,
        max_steps=1, learning_rate=1e-3, warmup_steps=0, max_grad_norm=0.0, weight_decay=0.0,
        max_length=max_length, center_rewards_coefficient=center, disable_dropout=True,
        **no_checkpointing(), bf16=False, fp16=False, use_cpu=True, seed=0, report_to="none",
        save_strategy="no", logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
        dataset_num_proc=None)
    trainer = _trainer_cls()(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                             processing_class=tok)
    trainer.recorded = []
    if train:
        grab = _GradGrab()
        trainer.add_callback(grab)
        trainer.train()
        assert len(trainer.recorded) == 1, "TRL must run exactly one forward (one batch, one step)"
        trainer.grads = grab.grads
    return trainer


def trl_ids(trainer) -> list[tuple[list[int], list[int]]]:
    return [(r["chosen_ids"], r["rejected_ids"]) for r in trainer.train_dataset]


def rm_ids(items) -> list[tuple[list[int], list[int]]]:
    return [(s.encodings[0].input_ids, s.encodings[1].input_ids) for s in items]


# ----------------------------------------------------------------------------- tokenisation

def test_ids_conversational_match_without_eos(base, tmp_path):
    model, tok = base
    trainer = trl_trainer(copy.deepcopy(model), tok, conversational_rows(), tmp_path)
    items, stats = RewardEncoder(tok, MAX_LENGTH, "drop", append_eos=False).encode_dataset(samples())
    assert stats.kept == len(PAIRS) == len(trainer.train_dataset)
    assert rm_ids(items) == trl_ids(trainer)
    # TRL does not append EOS to conversational rows; rmforge's default does, after the template's last token
    default, _ = RewardEncoder(tok, MAX_LENGTH, "drop").encode_dataset(samples())
    eos = tok.eos_token_id
    assert rm_ids(default) == [(c + [eos], r + [eos]) for c, r in trl_ids(trainer)]
    assert all(c[-1] != eos and c[-2] == eos for c, _ in trl_ids(trainer))  # TRL scores the "\n" after EOS


def test_ids_standard_text_match_plain_format(base, tmp_path):
    model, tok = base
    trainer = trl_trainer(copy.deepcopy(model), tok, standard_rows(), tmp_path)
    items, _ = RewardEncoder(tok, MAX_LENGTH, "drop", chat_template="none").encode_dataset(samples())
    assert rm_ids(items) == trl_ids(trainer)
    assert all(c[-1] == tok.eos_token_id for c, _ in trl_ids(trainer))  # TRL appends EOS to text rows


def test_length_filter_matches_drop_policy(base, tmp_path):
    """TRL silently filters pairs over max_length; rmforge's drop policy drops the same pairs and
    truncate_prompt keeps them (counted)."""
    model, tok = base
    full, _ = RewardEncoder(tok, MAX_LENGTH, "drop", append_eos=False).encode_dataset(samples())
    longest = sorted(max(len(e.input_ids) for e in s.encodings) for s in full)
    limit = longest[-2]  # the longest pair is over, the others fit
    trainer = trl_trainer(copy.deepcopy(model), tok, conversational_rows(), tmp_path, max_length=limit)
    dropped, stats = RewardEncoder(tok, limit, "drop", append_eos=False).encode_dataset(samples())
    assert len(trainer.train_dataset) == len(PAIRS) - 1 == stats.kept
    assert rm_ids(dropped) == trl_ids(trainer)
    kept, kstats = RewardEncoder(tok, limit, "truncate_prompt", append_eos=False).encode_dataset(samples())
    assert kstats.kept == len(PAIRS) and kstats.truncated == 1
    assert max(len(e.input_ids) for s in kept for e in s.encodings) == limit


# ----------------------------------------------------------------------------- loss and gradients

def rmforge_step(model, tok, loss_cfg: LossConfig, with_margin: bool):
    model.train()
    items, _ = RewardEncoder(tok, MAX_LENGTH, "drop", append_eos=False).encode_dataset(samples(with_margin))
    loss_sum, _ = batch_loss(model, items, tok.pad_token_id, loss_cfg, torch.device("cpu"))
    loss = loss_sum / len(items)
    model.zero_grad(set_to_none=True)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return items, loss.detach(), grads


def compare(base, tmp_path, loss_cfg: LossConfig, rows, center, with_margin):
    model, tok = base
    trainer = trl_trainer(copy.deepcopy(model), tok, rows, tmp_path, center=center, train=True)
    items, rm_loss, rm_grads = rmforge_step(copy.deepcopy(model), tok, loss_cfg, with_margin)
    inputs, trl_loss = trainer.recorded[0]
    batch, meta = pair_batch(items, tok.pad_token_id)
    assert torch.equal(inputs["input_ids"], batch["input_ids"]), "TRL's batch differs from rmforge's"
    assert torch.equal(inputs["attention_mask"], batch["attention_mask"])
    if with_margin:  # the same per-pair margins reach both losses (rmforge: margin_scale=1)
        assert torch.allclose(inputs["margin"], meta["margin"])
    assert set(trainer.grads) == set(rm_grads) == {n for n, _ in model.named_parameters()}
    loss_diff = abs(float(trl_loss) - float(rm_loss))
    grad_diff = max(float((trainer.grads[n] - rm_grads[n]).abs().max()) for n in rm_grads)
    print(f"loss trl={float(trl_loss):.8f} rmforge={float(rm_loss):.8f} |diff|={loss_diff:.2e} "
          f"max|grad diff|={grad_diff:.2e} over {len(rm_grads)} tensors")
    assert loss_diff <= TOL
    assert grad_diff <= TOL
    assert max(float(g.abs().max()) for g in rm_grads.values()) > 1e-3  # gradients are not trivially zero
    return float(rm_loss), items


def test_first_step_plain_bt(base, tmp_path):
    compare(base, tmp_path, LossConfig(), conversational_rows(), None, False)  # default (auto) on tie-free data


def test_first_step_center_rewards(base, tmp_path):
    model, tok = base
    coef = 0.01  # TRL's recommended value; both sides add coef * mean((r_c + r_r)^2)
    loss, items = compare(base, tmp_path, LossConfig(tie_model="none", center_coef=coef), conversational_rows(),
                          coef, False)
    batch, _ = pair_batch(items, tok.pad_token_id)
    with torch.no_grad():
        r = model(**batch).logits[:, 0]
    rc, rr = r.chunk(2)
    plain = float(-torch.nn.functional.logsigmoid(rc - rr).mean())
    assert loss - plain == pytest.approx(coef * float(((rc + rr) ** 2).mean()), abs=TOL)
    assert loss - plain > 10 * TOL  # the centering term is really exercised


def test_first_step_margins(base, tmp_path):
    compare(base, tmp_path, LossConfig(tie_model="none", margin_scale=1.0), conversational_rows(margin=True),
            None, True)


def test_rao_kupper_is_trl_with_constant_margin_ln_theta(base, tmp_path):
    """Documented: a Rao-Kupper tie model (theta=2) shifts every non-tie pair by ln(theta), so on tie-free data it
    equals TRL with a margin column of ln 2. That is why the default (auto) uses it only when the data has ties."""
    compare(base, tmp_path, LossConfig(tie_model="rao-kupper"), conversational_rows(margin=[math.log(2.0)] * len(PAIRS)),
            None, False)
