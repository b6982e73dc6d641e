"""Former name of ``bench/bt_throughput.py`` (kept so old command lines still work); see that script.

    python bench/packing_bench.py --threads 1     # same as python bench/bt_throughput.py --threads 1
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bt_throughput import main  # noqa: E402

if __name__ == "__main__":
    main()
