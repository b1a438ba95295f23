"""spillway.graph: a TensorFlow-1-style graph executor whose graph lives in a Pool.

Every node definition and tensor is stored in the pool, as in TF1 every
``Session.run`` after the graph changed re-plans over the whole graph, and
``clear_session()`` gives every byte back.  That is the setting of the
session-growth experiment: a training loop that keeps adding ops to one graph
gets slower with every step, and clearing the session fixes it::

    import numpy as np
    import spillway
    from spillway import graph

    with spillway.Pool(host_bytes="64M") as pool:
        sess = graph.Session(pool)
        x = sess.placeholder("x", (4, 2))
        w = sess.variable("w", np.ones((2, 1), np.float32))
        y = sess.matmul(x, w)
        print(sess.run(y, {x: np.ones((4, 2), np.float32)}))
        sess.clear_session()

Tensors are float32 (inputs are converted), row-major.  Fetches come back as
new numpy arrays (copies); feeds are copied into the pool.  The ops:
``matmul``, ``add``, ``bias_add``, ``relu``, ``sigmoid``, ``logistic_loss``,
``reduce_mean``, ``gradients`` and ``apply_gradient_descent``.  A session
belongs to its pool: ``Pool.close()`` ends it (it then raises ClosedError).
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np

from . import _spillway

Output = _spillway.graph.Output

Fetches = Union[Output, Sequence[Output]]


class Session(_spillway.graph.Session):
    """A graph and the executor that runs it, in ``pool``.

    ``inter_op_threads``: how many ops may run at once (TF's
    ``inter_op_parallelism_threads``); 0 means the hardware's threads and 1
    runs one op at a time in plan order.  Results do not depend on it.
    """

    def __init__(self, pool: Any, inter_op_threads: int = 0) -> None:
        if not isinstance(inter_op_threads, int) or inter_op_threads < 0:
            raise ValueError(
                f"spillway: graph.Session(): inter_op_threads must be an int >= 0, got {inter_op_threads!r}"
            )
        super().__init__(pool, inter_op_threads)

    def run(
        self,
        fetches: Fetches,
        feeds: Mapping[Output, Any] | None = None,
        targets: Iterable[Output] = (),
    ) -> Union[np.ndarray, list[np.ndarray]]:
        """Evaluates ``fetches`` feeding ``feeds`` ({placeholder: array}), running ``targets`` too.

        Returns one array for a single Output, else a list in the order of
        ``fetches``.  A placeholder that is needed but not fed, a feed of the
        wrong shape, or an Output of a cleared graph raises ValueError naming
        the node.
        """
        single = isinstance(fetches, Output)
        fetch_list = [fetches] if single else list(fetches)
        out = self._run(fetch_list, dict(feeds or {}), list(targets))
        return out[0] if single else out

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.closed:
            self.clear_session()


__all__ = ["Session", "Output"]
