#!/usr/bin/python3
"""Training steps of an MLP whose saved activations are several times the
pool's host budget: spillway.torch.offload beside keeping them in memory.

    PYTHONPATH=build/release/python /usr/bin/python3 bench/python/torch_offload.py \
        [--width 1024] [--depth 8] [--batch 512] [--ratio 4] [--steps 5]

A step is forward, backward and an SGD update. The host budget is the saved
activations' bytes (measured on a first offloaded step) divided by --ratio,
so that the rest spills to disk. Before timing, one step of each kind from
the same weights checks that the gradients are bit-identical. Prints one JSON
line per mode with the median seconds per step over --steps steps (the two
modes taken in turn), then one line comparing them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from typing import Any, Dict, List, Optional

import torch

import spillway
import spillway.torch


def make_model(width: int, depth: int) -> torch.nn.Module:
    torch.manual_seed(0)
    layers: List[torch.nn.Module] = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers)


def step(
    model: torch.nn.Module, batch: torch.Tensor, pool: Optional[spillway.Pool], update: bool = True
) -> Any:
    model.zero_grad()
    if pool is None:
        loss = model(batch).square().mean()
        offload = None
    else:
        with spillway.torch.offload(pool) as offload:
            loss = model(batch).square().mean()
    loss.backward()
    if update:
        with torch.no_grad():
            for p in model.parameters():
                p -= 1e-3 * p.grad
    return offload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--ratio", type=float, default=4.0, help="saved activations / host budget (4)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--disk-dir", default=None, help="parent of the pool's spill directory")
    args = parser.parse_args()

    torch.manual_seed(1)
    batch = torch.randn(args.batch, args.width)
    with tempfile.TemporaryDirectory(dir=args.disk_dir) as disk_dir:
        # Measure the saved activations with a pool large enough to hold them.
        with spillway.Pool(host_bytes="4G", disk_dir=disk_dir) as probe:
            probe_step = step(make_model(args.width, args.depth), batch, probe, update=False)
            saved = probe_step.stats()["packed_bytes"]
        budget = int(saved / args.ratio)

        with spillway.Pool(host_bytes=budget, disk_dir=disk_dir, pressure_wait=10.0) as pool:
            plain_model = make_model(args.width, args.depth)
            offload_model = make_model(args.width, args.depth)
            step(plain_model, batch, None, update=False)
            step(offload_model, batch, pool, update=False)
            identical = all(
                torch.equal(a.grad, b.grad)
                for a, b in zip(plain_model.parameters(), offload_model.parameters())
            )
            times: Dict[str, List[float]] = {"memory": [], "offload": []}
            for _ in range(args.steps):
                for mode, model, p in (("memory", plain_model, None), ("offload", offload_model, pool)):
                    start = time.perf_counter()
                    step(model, batch, p)
                    times[mode].append(time.perf_counter() - start)
            stats = pool.stats()

    common = {
        "bench": "torch_offload",
        "width": args.width,
        "depth": args.depth,
        "batch": args.batch,
        "saved_bytes": saved,
        "host_bytes": budget,
        "torch_threads": torch.get_num_threads(),
        "steps": args.steps,
    }
    medians = {mode: statistics.median(t) for mode, t in times.items()}
    for mode, seconds in medians.items():
        print(json.dumps({**common, "mode": mode, "median_step_seconds": round(seconds, 4)}))
    print(
        json.dumps(
            {
                **common,
                "mode": "comparison",
                "offload_speed_vs_memory": round(medians["memory"] / medians["offload"], 3),
                "gradients_identical": identical,
                "spilled_bytes": stats["moves"]["host"]["disk"]["bytes"],
                "fetched_bytes": stats["moves"]["disk"]["host"]["bytes"],
                "stall_seconds": round(stats["stall_seconds"], 4),
            }
        )
    )


if __name__ == "__main__":
    main()
