"""Benchmark: SFT loss forward + backward, full-vocabulary logits at every position vs only at the
positions that predict a trained token (``rmforge.train.sft.token_loss_sum``, ``logits_to_keep``).

    python bench/sft_logits.py [--model smollm2-135m] [--rows 4] [--prompt-len 450] [--answer-len 11]
                               [--repeat 3] [--precision bf16]

Judge SFT rows are long prompts with a short trained answer (``<preference>A</preference>`` is ~11
tokens), so most of the LM-head work and the float32 logits of the plain loss are thrown away.
Alternates the two sides ``--repeat`` times on one right-padded batch and prints the best seconds of
each, their ratio, the loss difference and peak RSS growth. ``--model`` takes an embedded name, a
folder or ``tiny`` (a random Llama from a config, no download). Not a test.
"""

from __future__ import annotations

import argparse
import random


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--prompt-len", type=int, default=450)
    ap.add_argument("--answer-len", type=int, default=11)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    a = ap.parse_args()

    import torch

    from _lm import alternate, load_lm

    from rmforge.train.sft import Encoded, padded_batch, token_loss_sum

    model, tok = load_lm(a.model)
    rng = random.Random(0)
    items = []
    for _ in range(a.rows):
        n = rng.randint(a.prompt_len * 3 // 4, a.prompt_len)
        ids = [rng.randrange(3, len(tok)) for _ in range(n + a.answer_len)]
        items.append(Encoded(ids, [0] * n + [1] * a.answer_len))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16")

    def full_side():
        batch = padded_batch(items, tok.pad_token_id)
        labels = batch.pop("labels")
        with autocast:
            logits = model(**batch).logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                                 ignore_index=-100, reduction="sum")
        return loss, loss

    def kept_side():
        with autocast:
            loss = token_loss_sum(model, padded_batch(items, tok.pad_token_id), "cpu")[0]
        return loss, loss

    times, losses = alternate(model, {"full": full_side, "kept": kept_side}, a.repeat)
    best = {k: min(v) for k, v in times.items()}
    print(f"model {a.model}, {a.rows} rows, prompts <= {a.prompt_len} tokens, answers {a.answer_len} tokens, "
          f"{a.precision}, torch threads {torch.get_num_threads()}")
    for name, label in (("full", "all positions"), ("kept", "kept positions")):
        print(f"{label:15} {best[name]:.2f} s  runs {[round(x, 2) for x in times[name]]}")
    print(f"speed-up {best['full'] / best['kept']:.2f}x; loss {float(losses['full']):.4f} vs {float(losses['kept']):.4f}")


if __name__ == "__main__":
    main()
