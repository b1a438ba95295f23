#!/usr/bin/env python3
"""The session-growth experiment as a Keras/TF1 user writes the loop, on spillway.graph.

A logistic regression trained epoch after epoch in one of two ways:

* ``leaky``: each epoch builds a new model in the *same* graph (from the last
  model's weights) and every step creates its learning-rate constant and its
  update ops inside the loop, as in the reported TF1/Keras slow-downs.  The
  graph only grows, and every run re-plans over all of it.
* ``clear``: the same loop, but at each epoch boundary it saves the weights,
  calls ``clear_session()``, rebuilds the model and restores them.

Both do the same arithmetic in the same order, so their losses agree; only
the graph size (and the time re-planning it) differs.  Run::

    PYTHONPATH=build/release/python /usr/bin/python3 examples/python/session_growth.py

It prints one row per epoch: ms per step and graph nodes for each mode.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass

import numpy as np

import spillway
from spillway import graph


@dataclass
class Epoch:
    """What one epoch of one mode did."""

    epoch: int
    ms_per_step: float
    nodes: int
    loss: float
    node_defs_read: int


def make_data(samples: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded, linearly separable data set."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((samples, features)).astype(np.float32)
    w = rng.standard_normal((features, 1)).astype(np.float32)
    y = (x @ w > 0).astype(np.float32)
    return x, y


def build(sess: graph.Session, suffix: str, w0: np.ndarray, b0: np.ndarray, shape: tuple[int, int]) -> dict:
    """One model: placeholders, variables, loss and its gradients (as a Keras layer would)."""
    samples, features = shape
    x = sess.placeholder("x" + suffix, (samples, features))
    y = sess.placeholder("y" + suffix, (samples, 1))
    w = sess.variable("w" + suffix, w0.reshape(features, 1))
    b = sess.variable("b" + suffix, b0.reshape(1))
    logits = sess.bias_add(sess.matmul(x, w), b)
    loss = sess.reduce_mean(sess.logistic_loss(logits, y))
    gw, gb = sess.gradients(loss, [w, b])
    return {"x": x, "y": y, "w": w, "b": b, "loss": loss, "gw": gw, "gb": gb}


def train(pool: spillway.Pool, mode: str, epochs: int, steps: int, samples: int = 1000,
          features: int = 32, learning_rate: float = 0.5, seed: int = 42) -> list[Epoch]:
    """Trains in ``mode`` ("leaky" or "clear") and returns one record per epoch."""
    if mode not in ("leaky", "clear"):
        raise ValueError(f"mode must be 'leaky' or 'clear', got {mode!r}")
    x_data, y_data = make_data(samples, features, seed)
    sess = graph.Session(pool)
    w = np.zeros(features, np.float32)
    b = np.zeros(1, np.float32)
    model = build(sess, "", w, b, (samples, features))
    records = []
    for epoch in range(epochs):
        if epoch > 0:
            if mode == "clear":
                checkpoint = sess.save()
                sess.clear_session()
                model = build(sess, "", w, b, (samples, features))
                sess.restore(checkpoint)
            else:
                w, b = sess.run([model["w"], model["b"]])
                model = build(sess, f"_{epoch}", w, b, (samples, features))
        defs_before = sess.stats()["node_defs_read"]
        start = time.perf_counter()
        loss = float("nan")
        for _ in range(steps):
            lr = sess.constant(learning_rate)  # ops made inside the training loop
            updates = [sess.apply_gradient_descent(model["w"], model["gw"], lr),
                       sess.apply_gradient_descent(model["b"], model["gb"], lr)]
            loss = float(sess.run(model["loss"], {model["x"]: x_data, model["y"]: y_data}, updates))
        elapsed = time.perf_counter() - start
        records.append(Epoch(epoch, 1000 * elapsed / steps, sess.node_count, loss,
                             sess.stats()["node_defs_read"] - defs_before))
    sess.clear_session()
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--host", default="64M", help="host tier budget (default 64M)")
    parser.add_argument("--disk-dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    with spillway.Pool(host_bytes=args.host, disk_dir=args.disk_dir) as pool:
        leaky = train(pool, "leaky", args.epochs, args.steps)
        clear = train(pool, "clear", args.epochs, args.steps)
        moved = pool.stats()["moves"]
    print(f"{'epoch':>5} {'leaky ms/step':>14} {'clear ms/step':>14} {'leaky nodes':>12} {'clear nodes':>12} "
          f"{'leaky loss':>11} {'clear loss':>11}")
    for a, c in zip(leaky, clear):
        print(f"{a.epoch:>5} {a.ms_per_step:>14.3f} {c.ms_per_step:>14.3f} {a.nodes:>12} {c.nodes:>12} "
              f"{a.loss:>11.6f} {c.loss:>11.6f}")
    print(f"last epoch: leaky {leaky[-1].ms_per_step / clear[-1].ms_per_step:.1f}x the clear step time; "
          f"bytes moved host->disk {moved['host']['disk']['bytes']}")


if __name__ == "__main__":
    main()
