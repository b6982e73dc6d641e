"""The reward-model runtime that training, evaluation and serving all call down into.

- :mod:`.tokenize`: the one encoder (``RewardEncoder``) for conversations, (prompt, response) texts and
  whole rendered texts (:mod:`.rendered`), rebuilt from a run's manifest;
- :mod:`.modeling`: loading a sequence-classification reward model (embedded names, folders, GGUF);
- :mod:`.packing`, :mod:`.attention`, :mod:`.batching`: packed rows, their attention masks per
  backend, collation;
- :mod:`.forward`: the batched / packed forward with the head read at each response's last token;
- :mod:`.scorer`: a loaded model plus its encoder (``load_scorer``), used by ``rmforge eval`` and
  ``rmforge serve``.

Nothing here imports :mod:`rmforge.train`, :mod:`rmforge.evaluate`, :mod:`rmforge.serve` or the CLI.
"""
