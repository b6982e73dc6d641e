"""Benchmark: GRPO log-probability forward + backward, TRL's per-row layout vs rmforge's prompt sharing.

    python bench/grpo_share.py [--model smollm2-135m] [--prompts 4] [--generations 8] [--prompt-len 430]
                               [--completion-len 10] [--repeat 3] [--precision bf16]

Builds one GRPO batch the way TRL's GRPOTrainer does (``prompts x generations`` rows, left-padded
prompts, right-padded completions of random lengths), then alternates, ``--repeat`` times, the two
ways of computing the completion tokens' log-probabilities and their backward: TRL's
``GRPOTrainer._get_per_token_logps_and_entropies`` layout (one row per completion, fused LM head) and
``rmforge.train.grpo_packing.shared_prompt_logps`` (one prefix-shared row per prompt). Prints the
seconds of each (best of the repetitions), their ratio, the tokens each runs through the model and the
largest log-probability difference. ``--model`` takes an embedded name, a folder or ``tiny`` (a random
Llama from a config, no download). Not a test.
"""

from __future__ import annotations

import argparse
import random


def build_batch(prompts: int, generations: int, prompt_len: int, completion_len: int, vocab: int, pad: int,
                seed: int = 0):
    import torch

    rng = random.Random(seed)
    ids, mask = [], []
    for _ in range(prompts):
        n_p = rng.randint(prompt_len * 3 // 4, prompt_len)
        prompt = [rng.randrange(3, vocab) for _ in range(n_p)]
        for _ in range(generations):
            n_c = rng.randint(max(1, completion_len // 2), completion_len)
            comp = [rng.randrange(3, vocab) for _ in range(n_c)]
            ids.append([pad] * (prompt_len - n_p) + prompt + comp + [pad] * (completion_len - n_c))
            mask.append([0] * (prompt_len - n_p) + [1] * (n_p + n_c) + [0] * (completion_len - n_c))
    return torch.tensor(ids), torch.tensor(mask)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=430)
    ap.add_argument("--completion-len", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    a = ap.parse_args()

    import torch
    from trl.trainer.utils import add_fused_lm_head

    from _lm import alternate, load_lm

    from rmforge.train.grpo_packing import shared_layout, shared_prompt_logps

    model, tok = load_lm(a.model)
    add_fused_lm_head(model, temperature=1.0, outputs=("log_probs", "entropy"))
    ids, mask = build_batch(a.prompts, a.generations, a.prompt_len, a.completion_len, len(tok), tok.pad_token_id)
    keep = a.completion_len
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16")

    def trl_side():
        labels = ids.masked_fill(mask == 0, -100)
        labels[:, :-keep] = -100
        with autocast:
            out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
        lp = out.log_probs[:, -keep:]
        return lp, (lp * mask[:, -keep:]).sum()

    def shared_side():
        with autocast:
            lp = shared_prompt_logps(model, ids, mask, keep, tok.pad_token_id, compute_entropy=True)[0]
        return lp, (lp * mask[:, -keep:]).sum()

    times, results = alternate(model, {"trl": trl_side, "shared": shared_side}, a.repeat)
    valid = mask[:, -keep:].bool()
    diff = float((results["trl"] - results["shared"])[valid].abs().max())
    rows_tokens = int(mask.sum())
    shared_tokens = shared_layout(ids, mask, keep, tok.pad_token_id).tokens
    best = {k: min(v) for k, v in times.items()}
    print(f"model {a.model}, {a.prompts} prompts x {a.generations} generations, prompts <= {a.prompt_len} tokens, "
          f"completions <= {keep}, {a.precision}, torch threads {torch.get_num_threads()}")
    print(f"TRL rows:       {best['trl']:.2f} s  ({rows_tokens} real tokens, {ids.numel()} slots)  "
          f"runs {[round(x, 2) for x in times['trl']]}")
    print(f"prompt-shared:  {best['shared']:.2f} s  ({shared_tokens} real tokens)  "
          f"runs {[round(x, 2) for x in times['shared']]}")
    print(f"speed-up {best['trl'] / best['shared']:.2f}x; max |log-prob difference| {diff:.2e}")


if __name__ == "__main__":
    main()
