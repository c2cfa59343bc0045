"""``deadline_s`` on the running CPU default: when a best-of-N's deadline passes, its judge calls still generating are
aborted in the real vLLM engine, while another request's calls in the same engine batch complete."""

from __future__ import annotations

import concurrent.futures
import copy
import threading
import time

import pytest

pytest.importorskip("ray.serve.llm", reason="needs ray[serve] with a vLLM build (the CPU default)")
httpx = pytest.importorskip("httpx")

from live_service import (  # noqa: E402
    CANDIDATES,
    CONVERSATION,
    PAIRWISE_DEPLOYMENT,
    PRINCIPLE_DEPLOYMENT,
    cpu_args,
    deployed,
    judge_handle,
    router_app,
)

#: calls that run to max_tokens (unconstrained sampling at temperature 2 rarely meets an end token): ~10 s alone on
#: a CPU core, tens of seconds among 20 others (the router's warm-up call is one of them, so it stays short)
RAMBLING = {"structured_output": "off", "sampling": {"temperature": 2.0, "top_p": 1.0, "max_tokens": 200}}


#: the other request's calls: round robin over 3 candidates in both orders
OTHER_CALLS = range(6)


def _engine_sequences() -> float:
    """The pairwise engine's unfinished requests (running + waiting), as its replica reports them to the autoscaler."""
    return judge_handle(PAIRWISE_DEPLOYMENT).record_autoscaling_stats.remote().result()["engine_sequences"]


def test_a_deadline_aborts_its_calls_in_the_engine_and_spares_the_calls_it_shared_a_batch_with(
    service: httpx.Client,
) -> None:
    config = copy.deepcopy(cpu_args())
    config["pairwise"]["settings"] = {**config["pairwise"]["settings"], **RAMBLING}
    app = router_app(config, judge_handle(PRINCIPLE_DEPLOYMENT), judge_handle(PAIRWISE_DEPLOYMENT), "RamblingRouter")
    with deployed(app, "rambling", service) as prefix:
        ready_by = time.monotonic() + 120
        while service.get(f"{prefix}/readyz").status_code != 200:  # its warm-up call has left the engine
            assert time.monotonic() < ready_by, "the rambling router's warm-up call never answered"
            time.sleep(0.5)
        samples: list[tuple[float, float]] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                samples.append((time.monotonic(), _engine_sequences()))
                time.sleep(0.2)

        cut_body = {
            "conversation": CONVERSATION,
            "candidates": [*CANDIDATES, "Paris, on the Seine.", "Marseille."],
            "strategy": "round_robin",
            "swap": True,
            "use_principle": False,
            "deadline_s": 4,
        }
        other_body = {"conversation": CONVERSATION, "candidates": CANDIDATES[:3]}
        other_body |= {"strategy": "round_robin", "swap": True, "use_principle": False}
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                sent = time.monotonic()
                cut_future = pool.submit(service.post, f"{prefix}/v1/best_of_n", json=cut_body)
                other_future = pool.submit(service.post, "/v1/best_of_n", json=other_body)
                cut = cut_future.result()
                answered = time.monotonic()
                other = other_future.result()
            drained = None  # when the engine held no more than the other request's calls
            while drained is None and time.monotonic() < answered + 10:
                drained = next((t for t, count in samples if t > answered and count <= len(OTHER_CALLS)), None)
                time.sleep(0.1)
        finally:
            stop.set()
            watcher.join()

    assert cut.status_code == 200, cut.text
    body = cut.json()
    assert body["deadline_reached"] is True and body["cancelled_calls"] > 0, body["degraded"]
    assert answered - sent < 4 + 5, answered - sent
    # The rambling calls were really in the engine, beside the other request's (16: the router's lane) ...
    assert max(count for t, count in samples if t < answered) > len(OTHER_CALLS) + 8, samples
    # ... and left it within 2 s of the answer (generating on, they would hold it for tens of seconds).
    assert drained is not None and drained - answered < 2.0, samples[-20:]
    # The request judged alongside, on the same engine, ran to its end.
    assert other.status_code == 200, other.text
    other_answer = other.json()
    assert other_answer["deadline_reached"] is False and other_answer["pairwise_calls"] == len(OTHER_CALLS)
    assert other_answer["failed_calls"] == 0, other_answer["degraded"]
