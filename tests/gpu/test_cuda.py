"""The library on a CUDA device: every model kind placed there, trained a step, saved and read back
on the CPU, in bf16, compiled. Skipped without CUDA; ``scripts/gpu_check`` runs these (``-m gpu``).

The sync-free sweeps (tests/modules/test_host_sync.py) and the recompile counts
(tests/modules/test_compile.py) run on CUDA too whenever it is present: gpu_check runs them there.
"""

import os
import random

import pytest
import torch
from conftest import TINY_LISTOPS, run_cli
from torch import nn

import nlp_lib
from nlp_lib.cells import ChildSumTreeLSTMCell, GRUCell, LSTMCell, NaryTreeLSTMCell
from nlp_lib.data.vocab import WordVocab
from nlp_lib.models import Seq2Seq, SequenceClassifier, TreeClassifier
from nlp_lib.models.decoding import beam_search, greedy
from nlp_lib.structure import TreeBatch
from nlp_lib.structure.random_trees import random_binary_tree
from nlp_lib.structure.sequence import SequenceBatch

# NLP_LIB_GPU_TESTS_ON=cpu runs the same tests on the CPU: a dry run of their plumbing without a GPU.
CUDA = torch.device(os.environ.get("NLP_LIB_GPU_TESTS_ON", "cuda"))
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(CUDA.type == "cuda" and not torch.cuda.is_available(), reason="needs CUDA"),
]
WORDS = WordVocab.build("a great film an awful dull long movie".split())


def _trees(n=12, seed=0):
    rng = random.Random(seed)
    trees = [random_binary_tree(rng.randint(1, 15), rng, WORDS.vocab_size) for _ in range(n)]
    tokens = [[int(w[1:]) if w else -1 for w in t.words] for t in trees]
    labels = [[-1] * (len(t) - 1) + [len(t) % 2] for t in trees]
    return TreeBatch.from_arrays([t.parent for t in trees], tokens, labels)


def _models():
    torch.manual_seed(0)
    v = WORDS.vocab_size
    return {
        "tree_nary": TreeClassifier(vocab_size=v, num_classes=2, cell=NaryTreeLSTMCell(8, 6)),
        "tree_bidirectional": TreeClassifier(
            vocab_size=v, num_classes=2, cell=ChildSumTreeLSTMCell(8, 6), down_cell=ChildSumTreeLSTMCell(6, 4)
        ),
        "sequence": SequenceClassifier(vocab_size=v, num_classes=2, cell=LSTMCell, embedding_size=8, hidden_size=6),
        "sequence_fused": SequenceClassifier(
            vocab_size=v, num_classes=2, cell=GRUCell, embedding_size=8, hidden_size=6, fused=True
        ),
        "seq2seq": Seq2Seq(src_vocab_size=v, tgt_vocab_size=v, embedding_size=8, hidden_size=6, dropout=0.0),
    }


def _loss(name, model, device):
    """A loss of the model on a small batch on ``device`` (built on the CPU, moved non-blocking)."""
    g = torch.Generator().manual_seed(1)
    if name.startswith("tree"):
        batch = _trees()
        batch.reversed()  # built on the CPU, as collate would
        batch = batch.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else batch
        out = model(batch)
        return nn.functional.cross_entropy(out.logits.float(), batch.labels[batch.roots])
    tokens = torch.randint(2, WORDS.vocab_size, (4, 7), generator=g)
    lengths = torch.tensor([7, 3, 5, 1])
    if name.startswith("sequence"):
        logits = model(SequenceBatch(tokens, lengths).to(device, non_blocking=True)).logits
        return nn.functional.cross_entropy(logits.float(), torch.tensor([0, 1, 1, 0], device=device))
    logits = model(tokens.to(device), lengths, tokens[:, :5].to(device)).logits
    return nn.functional.cross_entropy(logits.float().flatten(0, 1), tokens[:, 1:6].flatten().to(device))


@pytest.mark.parametrize("name", list(_models()))
def test_every_model_kind_lives_and_trains_on_cuda(name):
    model = _models()[name].to(CUDA).train()
    assert all(p.device.type == CUDA.type for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        loss = _loss(name, model, CUDA)
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is None or p.grad.device.type == CUDA.type for p in model.parameters())
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", list(_models()))
def test_cuda_and_cpu_agree(name):
    cpu = _models()[name].double().eval()
    gpu = _models()[name].double().to(CUDA).eval()
    torch.testing.assert_close(
        _loss(name, gpu, CUDA).cpu(), _loss(name, cpu, torch.device("cpu")), rtol=1e-9, atol=1e-9
    )


def test_a_model_saved_from_cuda_loads_on_the_cpu(tmp_path):
    model = _models()["tree_nary"].to(CUDA).eval()
    path = nlp_lib.save(model, tmp_path / "b", tokenizer=WORDS, labels=["neg", "pos"])
    loaded = nlp_lib.load(path)
    assert all(p.device.type == "cpu" for p in loaded.model.parameters())
    batch = _trees()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(batch).logits, model(batch.to(CUDA)).logits.cpu())
    on_gpu = nlp_lib.load(path, device=CUDA)
    assert next(on_gpu.model.parameters()).device.type == CUDA.type


def test_seq2seq_decodes_the_same_on_cuda():
    model = Seq2Seq(src_vocab_size=20, tgt_vocab_size=15, embedding_size=8, hidden_size=16, dropout=0.0)
    model = model.double().eval()
    src = torch.randint(4, 20, (5, 6), generator=torch.Generator().manual_seed(0))
    lengths = torch.tensor([6, 2, 4, 5, 1])
    cpu_beam = beam_search(model, src, lengths, beam_size=3, max_length=8, n_best=2)
    cpu_greedy = greedy(model, src, lengths, max_length=8)
    model.to(CUDA)
    assert greedy(model, src.to(CUDA), lengths, max_length=8) == cpu_greedy
    gpu_beam = beam_search(model, src.to(CUDA), lengths.to(CUDA), beam_size=3, max_length=8, n_best=2)
    assert [[h.tokens for h in s] for s in gpu_beam] == [[h.tokens for h in s] for s in cpu_beam]


@pytest.mark.parametrize("name", ["tree_nary", "tree_bidirectional", "sequence", "seq2seq"])
def test_bf16_autocast_trains_close_to_float32(name):
    model = _models()[name].to(CUDA).train()
    ref = _loss(name, model, CUDA)
    with torch.autocast(CUDA.type, dtype=torch.bfloat16):
        loss = _loss(name, model, CUDA)
    loss.backward()
    assert torch.isfinite(loss) and abs(float(loss) - float(ref)) < 0.05 * max(1.0, float(ref))
    assert all(
        p.grad is None or (p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()) for p in model.parameters()
    )


@pytest.mark.integration  # inductor compiles in worker processes
def test_compiled_tree_cell_on_cuda_matches_eager_and_does_not_recompile():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = TreeClassifier(vocab_size=WORDS.vocab_size, num_classes=2, cell=NaryTreeLSTMCell(8, 6)).to(CUDA)
    compiled = TreeClassifier(vocab_size=WORDS.vocab_size, num_classes=2, cell=NaryTreeLSTMCell(8, 6), compile=True)
    compiled.load_state_dict(eager.state_dict())
    compiled.to(CUDA)
    for seed in range(3):  # warm-up: compiles the leaf and inner-level graphs
        compiled(_trees(seed=seed).to(CUDA)).logits.sum().backward()
    graphs = counters["stats"]["unique_graphs"]
    for seed in range(3, 8):  # new level sizes
        batch = _trees(n=5 + 7 * seed, seed=seed).to(CUDA)
        out, ref = compiled(batch).logits, eager(batch).logits
        out.sum().backward()
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert counters["stats"]["unique_graphs"] == graphs, "recompiled for new level sizes"


@pytest.mark.integration  # inductor compiles in worker processes
def test_compiled_sequence_runner_on_cuda_matches_eager():
    torch.manual_seed(0)
    kw = dict(vocab_size=WORDS.vocab_size, num_classes=2, cell=LSTMCell, embedding_size=8, hidden_size=6)
    eager = SequenceClassifier(**kw).to(CUDA)
    compiled = SequenceClassifier(**kw, compile=True).to(CUDA)
    compiled.load_state_dict(eager.state_dict())
    batch = SequenceBatch(torch.randint(2, WORDS.vocab_size, (4, 7)), torch.tensor([7, 3, 5, 1])).to(CUDA)
    torch.testing.assert_close(compiled(batch).logits, eager(batch).logits, rtol=1e-4, atol=1e-5)


@pytest.mark.integration
def test_the_default_recipe_trains_on_one_gpu_in_bf16(tmp_path):
    run = tmp_path / "run"
    trainer = "trainer=gpu" if CUDA.type == "cuda" else "trainer=cpu"
    res = run_cli("train", trainer, "precision=bf16-mixed", *TINY_LISTOPS, f"run_dir={run}", timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (run / "bundle").is_dir() and (run / "metrics.json").is_file()
