"""``rmforge serve``: the reward-model scoring server (thin: options -> backend -> app -> uvicorn).

``--kind auto`` serves a generative judge (:class:`~rmforge.serve.judge_backend.JudgeBackend`) for SFT/judge
runs and causal-LM folders without a classification head, else a scalar reward model."""

from __future__ import annotations

import typer

from rmforge.cli.common import run_guarded


def serve(
    ctx: typer.Context,
    model: str = typer.Argument(..., help="run directory, model folder, or embedded name (minilm-l6, smollm2-135m)"),
    host: str = typer.Option("127.0.0.1", "--host", help="interface to listen on"),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="port (0: any free port)"),
    token: str = typer.Option(None, "--token", envvar="RMFORGE_SERVE_TOKEN",
                              help="bearer token clients must send (or RMFORGE_SERVE_TOKEN)"),
    no_auth: bool = typer.Option(False, "--no-auth", help="no authentication (loopback hosts only)"),
    allow_from: list[str] = typer.Option(None, "--allow-from", help="CIDR (repeatable) whose clients need no token, "
                                         "checked against the TCP peer address (for OpenRLHF)"),
    normalize: bool = typer.Option(False, "--normalize", help="/get_reward returns (r - mean) / std of the run"),
    batch_size: int = typer.Option(None, "--batch-size", min=1,
                                   help="rows per forward pass (default: 8 on CPU, 64 on GPU)"),
    max_batch_rows: int = typer.Option(64, "--max-batch-rows", min=1, help="responses merged per batching step"),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", min=0, help="wait for more requests before a step"),
    max_queue_rows: int = typer.Option(4096, "--max-queue", min=1, help="queued responses before 503"),
    max_items: int = typer.Option(1024, "--max-items", min=1, help="responses per request before 413"),
    max_body_mb: float = typer.Option(8.0, "--max-body-mb", min=0.001, help="request body limit (413)"),
    timeout_s: float = typer.Option(60.0, "--timeout", min=0.001, help="per-request limit in seconds (504)"),
    read_timeout_s: float = typer.Option(30.0, "--read-timeout", min=0.001,
                                         help="seconds to send the request head, and then the body (408)"),
    max_connections: int = typer.Option(256, "--max-connections", min=1,
                                        help="open connections / running requests before 503"),
    no_batching: bool = typer.Option(False, "--no-batching", help="one forward per request (baseline)"),
    max_length: int = typer.Option(None, "--max-length", min=2, help="token limit (default: the run's, else 512)"),
    precision: str = typer.Option("fp32", "--precision", help="fp32, bf16 or fp16 autocast"),
    device: str = typer.Option(None, "--device", help="cpu, cuda, cuda:1 (default: cuda when available)"),
    threads: int = typer.Option(None, "--threads", min=1, help="torch CPU threads (default: half the CPUs this "
                                "process may use, at least 1: fastest under concurrent load, docs/serve.md)"),
    kind: str = typer.Option("auto", "--kind", help="auto, scalar (reward model) or judge (generative judge)"),
    mode: str = typer.Option(None, "--mode", help="judge: pointwise or pairwise (default: the run's, else pairwise)"),
    template: str = typer.Option(None, "--template", help="judge: template name or file (default: the run's)"),
    scale: str = typer.Option(None, "--scale", help="judge (pointwise): MIN,MAX (default: the run's data.scale)"),
    attribute: str = typer.Option("overall quality", "--attribute", help="judge (pointwise): what is rated"),
    rubric: str = typer.Option(None, "--rubric", help="judge: text for a rubric template"),
    both_orders: bool = typer.Option(False, "--both-orders", help="judge (pairwise): average A/B and B/A"),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1, help="judge: tokens generated per verdict"),
    thinking: str = typer.Option(None, "--thinking", help="judge: enable_thinking true|false (default: the run's)"),
    failure_reward: float = typer.Option(None, "--failure-reward",
                                         help="judge: reward of an unparsable verdict (default: null)"),
    generator: str = typer.Option("auto", "--generator", help="judge: auto (vLLM on a GPU when installed), "
                                                                "local or vllm"),
) -> None:
    """Serve a reward model over HTTP; prints `serving on http://HOST:PORT` when ready."""

    def run() -> None:
        from rmforge.errors import ConfigError
        from rmforge.serve.app import create_app, probe_backend
        from rmforge.serve.backend import ScalarBackend
        from rmforge.serve.config import ServeConfig, check_auth, parse_networks
        from rmforge.serve.judge_backend import JudgeBackend, detect_kind
        from rmforge.serve.server import default_threads, run_server

        if ctx.args:
            raise ConfigError(f"unexpected arguments: {' '.join(ctx.args)}")
        check_auth(host, token, no_auth, allow_from or ())
        networks = parse_networks(allow_from)
        import torch

        torch.set_num_threads(threads or default_threads())
        cfg = ServeConfig(max_batch_rows=max_batch_rows, max_wait_ms=max_wait_ms, dynamic_batching=not no_batching,
                          max_queue_rows=max_queue_rows, max_items=max_items,
                          max_body_bytes=int(max_body_mb * 1024 * 1024), timeout_s=timeout_s, normalize=normalize,
                          read_timeout_s=read_timeout_s, max_connections=max_connections)
        on_gpu = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
        if kind not in ("auto", "scalar", "judge"):
            raise ConfigError(f"--kind must be auto, scalar or judge, not {kind!r}")
        if (kind if kind != "auto" else detect_kind(model)) == "judge":
            backend = JudgeBackend.load(model, mode=mode, template=template, scale=_scale(scale), rubric=rubric,
                                        enable_thinking=_bool(thinking, "--thinking"), max_new_tokens=max_new_tokens,
                                        batch_size=batch_size or 16, precision=precision, device=device,
                                        generator=generator, max_length=max_length, attribute=attribute,
                                        both_orders=both_orders, failure_reward=failure_reward)
        else:
            backend = ScalarBackend.load(model, max_length=max_length,
                                         batch_size=batch_size or (64 if on_gpu else 8), precision=precision,
                                         device=device)
        probe_backend(backend)  # a corrupted model (NaN/Inf reward) is refused before it listens
        run_server(create_app(backend, cfg, None if no_auth else token, networks), host, port,
                   read_timeout_s=cfg.read_timeout_s, max_connections=cfg.max_connections)

    run_guarded(run)


def _scale(text: str | None) -> tuple[float, float] | None:
    from rmforge.errors import ConfigError

    if text is None:
        return None
    try:
        low, high = (float(x) for x in text.replace(" ", "").strip("[]()").split(","))
    except ValueError:
        raise ConfigError(f"--scale must be MIN,MAX (e.g. 0,4), not {text!r}") from None
    return low, high


def _bool(text: str | None, option: str) -> bool | None:
    from rmforge.errors import ConfigError

    if text is None:
        return None
    if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
        raise ConfigError(f"{option} must be true or false, not {text!r}")
    return text.lower() in ("true", "1", "yes")
