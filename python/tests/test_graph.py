"""spillway.graph: the executor from Python, and the session-growth example."""

from __future__ import annotations

import importlib.util
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import spillway
from spillway import graph

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python" / "session_growth.py"


def logistic_model(sess: graph.Session, samples: int = 64, features: int = 4):
    x = sess.placeholder("x", (samples, features))
    y = sess.placeholder("y", (samples, 1))
    w = sess.variable("w", np.zeros((features, 1), np.float32))
    b = sess.variable("b", np.zeros(1, np.float32))
    loss = sess.reduce_mean(sess.logistic_loss(sess.bias_add(sess.matmul(x, w), b), y))
    return x, y, w, b, loss


def data(samples: int = 64, features: int = 4):
    rng = np.random.default_rng(7)
    xs = rng.standard_normal((samples, features)).astype(np.float32)
    ys = (xs.sum(axis=1, keepdims=True) > 0).astype(np.float32)
    return xs, ys


def test_matmul_and_elementwise_ops_match_numpy(make_pool) -> None:
    sess = graph.Session(make_pool(host_bytes="8M"))
    rng = np.random.default_rng(1)
    a = rng.standard_normal((5, 3)).astype(np.float32)
    b = rng.standard_normal((3, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    pa, pb = sess.placeholder("a", (5, 3)), sess.constant(b)
    prod = sess.matmul(pa, pb)
    out = sess.run([prod, sess.relu(sess.bias_add(prod, sess.constant(bias))),
                    sess.sigmoid(prod), sess.matmul(pa, pa, transpose_a=True)], {pa: a})
    np.testing.assert_allclose(out[0], a @ b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[1], np.maximum(a @ b + bias, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[2], 1 / (1 + np.exp(-(a @ b))), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[3], a.T @ a, rtol=1e-5, atol=1e-6)
    assert out[0].dtype == np.float32 and out[0].shape == (5, 4)
    assert sess.shape(prod) == (5, 4)


def test_training_reduces_the_loss_and_save_restore_carry_the_weights(make_pool) -> None:
    pool = make_pool(host_bytes="8M")
    sess = graph.Session(pool, inter_op_threads=2)
    x, y, w, b, loss = logistic_model(sess)
    gw, gb = sess.gradients(loss, [w, b])
    lr = sess.constant(0.5)
    updates = [sess.apply_gradient_descent(w, gw, lr), sess.apply_gradient_descent(b, gb, lr)]
    xs, ys = data()
    first = float(sess.run(loss, {x: xs, y: ys}))
    for _ in range(30):
        sess.run(loss, {x: xs, y: ys}, updates)
    trained = float(sess.run(loss, {x: xs, y: ys}))
    assert first == pytest.approx(np.log(2), rel=1e-5)  # zero weights: every logit is 0
    assert trained < 0.5 * first
    checkpoint = sess.save()
    assert set(checkpoint) == {"w", "b"} and checkpoint["w"].shape == (4,)
    sess.clear_session()
    assert sess.node_count == 0
    x, y, w, b, loss = logistic_model(sess)
    sess.restore(checkpoint)
    assert float(sess.run(loss, {x: xs, y: ys})) == pytest.approx(trained, rel=1e-6)


def test_results_do_not_depend_on_the_thread_count(make_pool) -> None:
    xs, ys = data()
    losses = []
    for threads in (1, 3):
        sess = graph.Session(make_pool(host_bytes="8M"), inter_op_threads=threads)
        x, y, w, b, loss = logistic_model(sess)
        gw, gb = sess.gradients(loss, [w, b])
        lr = sess.constant(0.3)
        updates = [sess.apply_gradient_descent(w, gw, lr), sess.apply_gradient_descent(b, gb, lr)]
        losses.append([float(sess.run(loss, {x: xs, y: ys}, updates)) for _ in range(10)])
        assert sess.inter_op_threads == threads
    assert losses[0] == losses[1]


def test_bad_input_names_what_is_wrong(make_pool) -> None:
    sess = graph.Session(make_pool())
    x = sess.placeholder("x", (2, 2))
    y = sess.relu(x)
    with pytest.raises(ValueError, match="placeholder 'x'.*must be fed"):
        sess.run(y)
    with pytest.raises(ValueError, match="x"):
        sess.run(y, {x: np.ones((3, 2), np.float32)})
    with pytest.raises(ValueError, match="inter_op_threads"):
        graph.Session(sess.pool, inter_op_threads=-1)
    with pytest.raises(TypeError, match="shape"):
        sess.placeholder("z", ("a", 2))
    with pytest.raises(TypeError, match="Outputs"):
        sess.run(["not an output"])
    with pytest.raises(TypeError, match="initial"):
        sess.variable("v", object())
    sess.clear_session()
    with pytest.raises(ValueError, match="cleared"):
        sess.run(y, {x: np.ones((2, 2), np.float32)})


def test_the_graph_lives_in_the_pool_and_clear_session_gives_it_back(make_pool) -> None:
    pool = make_pool(host_bytes="8M")
    sess = graph.Session(pool)
    empty = pool.stats()["tiers"]["host"]["used_bytes"]
    for i in range(20):
        sess.variable(f"v{i}", np.ones((64, 64), np.float32))
    assert pool.stats()["tiers"]["host"]["used_bytes"] >= empty + 20 * 64 * 64 * 4
    sess.clear_session()
    assert pool.stats()["tiers"]["host"]["used_bytes"] == empty
    assert pool.check_invariants() == []


def test_a_graph_larger_than_the_host_tier_spills_and_still_runs(make_pool) -> None:
    pool = make_pool(host_bytes="1M")
    sess = graph.Session(pool)
    ones = np.ones((128, 128), np.float32)  # 64 KiB each: 32 of them are 2x the host tier
    total = sess.variable("v0", ones)
    for i in range(1, 32):
        total = sess.add(total, sess.variable(f"v{i}", ones))
    np.testing.assert_array_equal(sess.run(total), 32 * ones)
    assert pool.stats()["moves"]["host"]["disk"]["bytes"] > 0


def test_closing_the_pool_ends_its_sessions(make_pool) -> None:
    pool = make_pool()
    sess = graph.Session(pool)
    sess.variable("v", np.ones(4, np.float32))
    pool.close()
    assert sess.closed
    with pytest.raises(spillway.ClosedError):
        sess.placeholder("x", (1,))


def test_a_run_releases_the_gil(make_pool) -> None:
    sess = graph.Session(make_pool(host_bytes="64M"), inter_op_threads=1)
    a = sess.placeholder("a", (512, 512))
    out = a
    for _ in range(8):
        out = sess.matmul(out, a)
    big = np.full((512, 512), 1e-3, np.float32)
    ticks: list[float] = []
    running = threading.Event()
    done = threading.Event()

    def tick() -> None:
        running.set()
        while not done.is_set():
            ticks.append(time.perf_counter())

    t = threading.Thread(target=tick)
    t.start()
    running.wait()
    start = time.perf_counter()
    sess.run(out, {a: big})
    end = time.perf_counter()
    done.set()
    t.join()
    # Holding the GIL for the run would leave its middle half without a tick.
    lo, hi = start + (end - start) / 4, end - (end - start) / 4
    assert any(lo < x < hi for x in ticks), "the other Python thread made no progress during a run"


def load_example():
    spec = importlib.util.spec_from_file_location("session_growth_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_session_growth_example_leaks_nodes_and_clearing_stops_it(make_pool) -> None:
    example = load_example()
    pool = make_pool(host_bytes="16M")
    leaky = example.train(pool, "leaky", epochs=5, steps=4, samples=200, features=8)
    clear = example.train(pool, "clear", epochs=5, steps=4, samples=200, features=8)
    assert [e.loss for e in leaky] == pytest.approx([e.loss for e in clear], rel=1e-6)
    assert len({e.nodes for e in clear}) == 1, "clearing the session keeps the graph one size"
    assert all(b.nodes > a.nodes for a, b in zip(leaky, leaky[1:])), "the leaky graph grows every epoch"
    # Every leaky run re-plans over a bigger graph: more definitions read back.
    assert all(b.node_defs_read > a.node_defs_read for a, b in zip(leaky[1:], leaky[2:]))
    assert leaky[-1].node_defs_read > 2 * clear[-1].node_defs_read
    with pytest.raises(ValueError, match="mode"):
        example.train(pool, "sometimes", epochs=1, steps=1)
