"""The fast backends give the reference's vectors (fp32) or close ones (int8); the cache is exact."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from encoders.loading import load_encoder
from encoders.model_folder import FastTokenizer, load_tokenizer
from encoders.onnx_backend import OnnxEncoder, exported
from encoders.text_cache import CachedEncoder
from encoders.transformer import TransformerEncoder
from streams.encoder_setup import open_encoder, worker_encoder_threads
from streams.settings import Settings

TEXTS = ["a", "a much longer text about science fiction films in space", "horror",
         "Toy Story (1995). Animation, Children's, Comedy", "baking bread and pastry at home"]


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


def test_onnx_fp32_gives_the_reference_vectors(encoder: TransformerEncoder, onnx_cache: Path) -> None:
    onnx = OnnxEncoder("", cache=onnx_cache)
    batch = onnx.encode(TEXTS)  # (5, D), padded to the longest in its batch
    np.testing.assert_allclose(batch, encoder.encode(TEXTS), atol=2e-5)
    one_by_one = np.stack([onnx.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batch, one_by_one, atol=2e-5)  # padding does not leak in
    assert onnx.version == encoder.version  # same vectors, same space


def test_the_tokenizers_library_alone_gives_the_transformers_ids(encoder: TransformerEncoder) -> None:
    texts = [*TEXTS, "", "Amélie (2001). Comedy, Romance", "naïve café ß 東京 🎬", "word " * 400,
             "  spaced   out\ttabs\nnewlines  ", "UPPER lower MiXeD", "don't stop-motion e-mail 3.14"]
    fast = FastTokenizer.of(encoder.folder, max_length=128)
    assert fast is not None
    ids, mask = fast(texts)  # (B, T), (B, T)
    reference = load_tokenizer(encoder.folder)(texts, padding=True, truncation=True, max_length=128,
                                               return_tensors="np")
    np.testing.assert_array_equal(ids, reference["input_ids"])
    np.testing.assert_array_equal(mask, reference["attention_mask"])
    assert ids.shape[1] == 128  # the long text truncated, the others padded to it
    short, _ = fast(["a", "horror"])
    assert short.shape[1] < 128  # padded to the batch's longest, not to the file's fixed length


def test_onnx_int8_is_close_and_a_space_of_its_own(encoder: TransformerEncoder, onnx_cache: Path) -> None:
    int8 = OnnxEncoder("", int8=True, cache=onnx_cache)
    cos = np.einsum("nd,nd->n", int8.encode(TEXTS), encoder.encode(TEXTS))  # (5,)
    assert cos.min() > 0.95 and cos.mean() > 0.98
    np.testing.assert_allclose(np.linalg.norm(int8.encode(TEXTS), axis=1), 1.0, rtol=1e-5)
    assert int8.version == encoder.version + "+int8"


def test_export_happens_once(onnx_cache: Path, encoder: TransformerEncoder) -> None:
    graph = exported(encoder.folder, onnx_cache, int8=False)
    before = graph.stat().st_mtime_ns
    assert exported(encoder.folder, onnx_cache, int8=False) == graph
    assert graph.stat().st_mtime_ns == before
    assert not list(graph.parent.glob("tmp*"))  # no half-written leftovers


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown encoder backend"):
        load_encoder("", "tensorrt")  # type: ignore[arg-type]


class CountingEncoder:
    dim = 2
    version = "toy@1"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)


def test_cache_returns_the_same_vectors_and_encodes_each_text_once() -> None:
    inner = CountingEncoder()
    cached = CachedEncoder(inner, capacity=2)
    first = cached.encode(["ab", "abc", "ab"])
    np.testing.assert_array_equal(first, inner.encode(["ab", "abc", "ab"]))
    assert inner.calls[0] == ["ab", "abc"]  # distinct missing texts, one call
    cached.encode(["abc", "ab"])  # both cached: no call
    assert len(inner.calls) == 2 and (cached.hits, cached.misses) == (3, 2)
    cached.encode(["abcd"])  # evicts the least recently used: "abc" (used before "ab")
    cached.encode(["ab"])
    assert inner.calls[-1] == ["abcd"]
    cached.encode(["abc"])
    assert inner.calls[-1] == ["abc"]
    assert cached.encode([]).shape == (0, 2)


def test_cache_rows_are_reused_in_place_and_hold_their_own_copies() -> None:
    inner = CountingEncoder()
    cached = CachedEncoder(inner, capacity=2)
    texts = ["a", "bb", "ccc", "dddd", "bb", "eeeee", "dddd"]
    for text in texts:  # each eviction hands its row to the next new text
        got = cached.encode([text])
        np.testing.assert_array_equal(got, inner.encode([text]))
        got[:] = -1  # what the caller does with its copy stays out of the cache
    assert cached.encode(["dddd", "eeeee"]).tolist() == [[4, 1], [5, 1]]
    assert cached._matrix.shape == (2, 2)  # the memory it was given, and no more
    assert CachedEncoder(inner, capacity=0).encode(["a", "a"]).tolist() == [[1, 1], [1, 1]]


def test_profile_buckets_put_each_stack_where_its_time_goes() -> None:
    from streams.bench.profile import leaf_functions, shares

    raw = "\n".join([
        "main (cli.py:1);run (onnxruntime/capi/onnxruntime_inference_collection.py:220) 3",
        "main (cli.py:1);_encode_batch (encoders/onnx_backend.py:99);"
        "__call__ (tokenization_utils_base.py:1) 1",
        "main (cli.py:1);top_k (cf/serving.py:80) 1",
        "main (cli.py:1);mystery (x.py:1) 1",
        # every worker stack passes through mode/ and every agent's through faust/agents
        "execute (mode/worker.py:264);_run_once (asyncio/base_events.py:1922);select (selectors.py:468) 2",
        "execute (mode/worker.py:264);_execute_actor (faust/agents/agent.py:698);"
        "process (streams/interest_agent.py:105) 2",
        # uvloop's own C code, seen as the frame that runs the loop
        "main (cli.py:1);Worker.execute_from_commandline (mode/worker.py:264) 3",
        "_bootstrap (threading.py:1);ServiceThread._start_thread (mode/threads.py:211) 1",
        "_bootstrap (threading.py:1);MethodQueue._process_enqueued (mode/threads.py:410) 1",
    ])
    samples, by_bucket = shares(raw)
    assert samples == 15
    assert by_bucket == {"model (ONNX Runtime / torch forward)": 0.2, "event loop": 0.2667,
                         "tokenize": 0.0667, "hybrid scoring": 0.0667, "other": 0.0667,
                         "waiting in select (idle or I/O)": 0.1333,
                         "stage glue (agents, replicas, guards)": 0.1333, "faust streams": 0.0667}
    # and the innermost frames, largest first
    assert leaf_functions(raw, top=3) == [
        ("run (onnxruntime/capi/onnxruntime_inference_collection.py:220)", 0.2),
        ("Worker.execute_from_commandline (mode/worker.py:264)", 0.2),
        ("select (selectors.py:468)", 0.1333)]


def test_bench_encoder_rows_follow_the_output_contract(onnx_cache: Path) -> None:
    from streams.bench.encoder import TextSets, run_bench
    from streams.settings import Settings

    texts = TextSets(short=TEXTS * 4, long=[" ".join(TEXTS)] * 4)
    report = run_bench(Settings(onnx_cache=str(onnx_cache)), backends=["torch-fp32", "onnx-fp32"],
                       batches=[1, 2], rounds=1, texts=texts)
    rows = report["rows"]
    assert len(rows) == 2 * 2 * 2  # backends x texts x batches
    for r in rows:
        assert {"backend", "texts", "batch", "sent_per_s", "cos_mean", "cos_min"} <= set(r)
        assert r["sent_per_s"] > 0 and r["texts"] in ("short", "long")
    onnx = [r for r in rows if r["backend"] == "onnx-fp32"]
    assert all(r["cos_min"] > 0.9999 for r in onnx)
    assert all(r["speedup"] == 1.0 for r in rows if r["backend"] == "torch-fp32")
    assert {r["model"] for r in rows} == {"all-MiniLM-L6-v2"}
    assert [(c["backend"], c["documents"]) for c in report["catalog"]] == [
        ("torch-fp32", 20), ("onnx-fp32", 20)]  # every short text once


def test_a_worker_on_an_onnx_backend_never_loads_torch_or_transformers(encoder: TransformerEncoder,
                                                                      onnx_cache: Path) -> None:
    """They cost a worker seconds of its start and hundreds of MB; ONNX Runtime needs neither
    (only the graph's export does, once per model folder)."""
    exported(encoder.folder, onnx_cache, int8=True)
    script = (
        "import sys\n"
        "from streams.app import create_app\n"
        "from streams.encoder_setup import open_encoder\n"
        "from streams.metrics import Metrics\n"
        "from streams.settings import Settings\n"
        f"settings = Settings(onnx_cache={str(onnx_cache)!r}, encoder_backend='onnx-int8')\n"
        "encoder = open_encoder(settings)\n"
        "encoder.encode(['a search for space films'])\n"
        "create_app(settings, encoder, Metrics.create())\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_a_workers_encoder_runs_in_one_thread_unless_told(onnx_cache: Path) -> None:
    """An intra-op pool's threads spin after each call, and a worker calls its encoder for a few
    texts at a time, milliseconds apart (docs/performance.md, "A worker's encoder on one
    thread"); the offline commands keep the library's pool."""
    settings = Settings(onnx_cache=str(onnx_cache), encoder_backend="onnx-int8")
    worker = open_encoder(settings, cache_texts=0, threads=worker_encoder_threads(settings))
    assert isinstance(worker, OnnxEncoder) and worker.threads == 1
    told = replace(settings, encoder_threads=2)
    assert open_encoder(told, cache_texts=0, threads=worker_encoder_threads(told)).threads == 2  # type: ignore[attr-defined]
    assert open_encoder(settings, cache_texts=0).threads == 0  # type: ignore[attr-defined]
