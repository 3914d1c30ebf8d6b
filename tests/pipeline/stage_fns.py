"""Small real stage functions for engine tests: each reads its inputs and writes real files."""

import json
import os
import time

from rsrl.pipeline.registry import StageContext, resolve_stage_fn


def _write(ctx: StageContext, payload: dict) -> dict:
    record = {"stage": ctx.stage.name, "pid": os.getpid(), **payload}
    (ctx.out_dir / "output.json").write_text(json.dumps(record))
    # Every run appends here, so a test can count how often each stage really ran.
    with open(ctx.out_dir.parent / "runs.log", "a") as log:
        log.write(ctx.stage.name + "\n")
    return record


def _read_inputs(ctx: StageContext) -> dict:
    return {name: json.loads((d / "output.json").read_text()) for name, d in ctx.inputs.items()}


def tokenizer(ctx: StageContext) -> dict:
    words = {w for src in ctx.stage.config["sample_from"] for w in src["path"].split("/")}
    return _write(ctx, {"vocab": sorted(words)})


def data(ctx: StageContext) -> dict:
    vocab = _read_inputs(ctx)["tokenizer"]["vocab"]
    return _write(
        ctx,
        {
            "rows": ctx.stage.config["tokens"] // ctx.stage.config["seq_len"],
            "vocab_size": len(vocab),
        },
    )


def train(ctx: StageContext) -> dict:
    inputs = _read_inputs(ctx)
    steps = sum(v.get("rows", 0) for v in inputs.values()) + sum(
        v.get("steps", 0) for v in inputs.values()
    )
    return _write(ctx, {"steps": steps})


def failing(ctx: StageContext) -> dict:
    (ctx.out_dir / "partial.txt").write_text("started")
    raise RuntimeError("boom: deliberately broken stage")


def pretrain_data_fails_midtrain_data_hangs(ctx: StageContext) -> dict:
    started = ctx.out_dir.parent / "data-midtrain.started"  # the workdir, both stages see it
    if ctx.stage.name == "data-pretrain":
        deadline = time.time() + 120
        while not started.exists() and time.time() < deadline:  # fail beside a running one
            time.sleep(0.05)
        raise RuntimeError("boom: deliberately broken data")
    try:  # the marker inside: a cancel that comes once the other stage sees it is caught
        started.write_text("running")
        for _ in range(6000):  # short sleeps: Ray's cancel interrupts between two, not within
            time.sleep(0.1)
    except KeyboardInterrupt:  # how Ray cancels a running task
        (ctx.out_dir / "cancelled.txt").write_text("cancelled")
        raise
    return data(ctx)


def pretrain_data_fails_midtrain_data_ignores_cancel(ctx: StageContext) -> dict:
    """As above, but data-midtrain swallows Ray's KeyboardInterrupt and beats on: only killing
    its worker stops it. Each beat rewrites `beats.txt` with a count."""
    started = ctx.out_dir.parent / "data-midtrain.started"
    if ctx.stage.name == "data-pretrain":
        deadline = time.time() + 120
        while not started.exists() and time.time() < deadline:
            time.sleep(0.05)
        raise RuntimeError("boom: deliberately broken data")
    beats = 0
    started.write_text("running")
    while True:
        try:
            time.sleep(0.1)
            beats += 1
            (ctx.out_dir / "beats.txt").write_text(str(beats))
        except KeyboardInterrupt:
            (ctx.out_dir / "ignored-cancel.txt").write_text("ignored")


def unbuilt(ctx: StageContext) -> dict:
    return resolve_stage_fn("no-such-stage")(ctx)


def passthrough(ctx: StageContext) -> dict:
    return _write(ctx, {"inputs": sorted(ctx.inputs)})


ALL = {
    "tokenizer": tokenizer,
    "data": data,
    "pretrain": train,
    "midtrain": train,
    "rl": train,
    "eval": passthrough,
    "report": passthrough,
}


def chatty_train(ctx: StageContext) -> dict:
    """`train`, printing as a library would: a line to stdout, one to stderr, and one from
    an actor it starts (a rollout engine, a training worker)."""
    import sys

    import ray

    print(f"{ctx.stage.name}: library notice on stdout", flush=True)
    print(f"{ctx.stage.name}: library warning on stderr", file=sys.stderr, flush=True)
    engine = ray.remote(num_cpus=0)(Engine).remote()
    ray.get(engine.say.remote(f"{ctx.stage.name}: engine line"))
    # Ray streams the line to the driver a moment later: the stage ends once it is there, so
    # that the driver files it while the stage still runs.
    deadline = time.time() + 60
    while not list((ctx.out_dir / "logs").glob("Engine-*.log")) and time.time() < deadline:
        time.sleep(0.1)
    return train(ctx)


class Engine:
    def say(self, line: str) -> None:
        print(line, flush=True)
