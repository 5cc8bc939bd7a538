import contextlib
import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real data of ../shared/data (read in place); NLP_LIB_SHARED_DATA points elsewhere.
SHARED_DATA = Path(os.environ.get("NLP_LIB_SHARED_DATA", REPO.parent / "shared" / "data"))
SST_TREES = SHARED_DATA / "sst" / "trees"
# The prepared-data cache (nlp_lib.data.cache) of this test session: a fresh folder, never the
# user's ~/.cache/nlp_lib; set before any test runs, so CLI subprocesses share it.
if "NLP_LIB_CACHE" not in os.environ:
    import tempfile

    os.environ["NLP_LIB_CACHE"] = tempfile.mkdtemp(prefix="nlp_lib_test_cache_")
# ... and its key for the cache's stamps, never the user's ~/.local/state/nlp_lib/cache.key
if "NLP_LIB_KEY_FILE" not in os.environ:
    import tempfile

    os.environ["NLP_LIB_KEY_FILE"] = str(Path(tempfile.mkdtemp(prefix="nlp_lib_test_key_")) / "cache.key")


@pytest.fixture
def sst_trees() -> Path:
    if not (SST_TREES / "train.txt").is_file():
        pytest.skip(f"real SST trees not found at {SST_TREES} (the shared data folder is absent)")
    return SST_TREES


def run_cli(
    *args: str, cwd: Path | None = None, timeout: int = 300, stdin: str | None = None
) -> subprocess.CompletedProcess:
    """Run ``python -m nlp_lib ARGS`` in a fresh process, as a user would (``stdin``: text piped in)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "nlp_lib", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        input=stdin,
    )


# Small overrides that make the default recipe train in seconds.
TINY_LISTOPS = [
    "data.train_size=200",
    "data.val_size=50",
    "data.test_size=50",
    "data.batch_size=32",
    "model.cell.input_size=16",
    "model.cell.hidden_size=16",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
]


def doc_blocks(name: str) -> list[str]:
    """The ```python blocks of a documentation file (README.md or docs/NAME), in order."""
    import re

    path = REPO / name
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def exec_doc(name: str) -> dict:
    """Run every ```python block of a documentation file in one namespace, as a reader would."""
    blocks = doc_blocks(name)
    assert len(blocks) >= 2, f"the worked example's code blocks are missing from {name}"
    ns: dict = {"__name__": name.replace("/", "_").removesuffix(".md")}
    for block in blocks:
        exec(compile(block, name, "exec"), ns)  # noqa: S102 - our own documentation
    return ns


# Hand-made CoNLL-U files: two labels, a chain of heads per sentence.
SENTENCES = {
    "pos": [["the", "film", "is", "great"], ["a", "lovely", "story"]],
    "neg": [["the", "plot", "is", "dull"], ["an", "awful", "mess"]],
}


def conllu_sentence(words, label, k):
    # a chain of heads: each word depends on the next one, the last word is the root
    rows = [f"# sent_id = s{k}", f"# label = {label}"] if label else [f"# sent_id = s{k}"]
    for i, w in enumerate(words, 1):
        head = i + 1 if i < len(words) else 0
        rows.append("\t".join([str(i), w, w, "X", "_", "_", str(head), "dep" if head else "root", "_", "_"]))
    return "\n".join(rows) + "\n\n"


def write_conllu(directory, repeats=6, extra=None):
    directory.mkdir(exist_ok=True)
    for name in ("train.conllu", "dev.conllu"):
        text, k = "", 0
        for _ in range(repeats):
            for label, sents in SENTENCES.items():
                for words in sents:
                    text += conllu_sentence(words, label, k)
                    k += 1
        if extra and name in extra:
            text += extra[name]
        (directory / name).write_text(text)
    return directory


# ----------------------------------------------------------------------------- the integration marker
# A test that trains through Lightning (builds a Trainer) or starts a subprocess must carry
# @pytest.mark.integration, so `-m "not integration"` is a quick unit run. The check runs while
# the test and its fixtures are set up and called: an unmarked test that does either fails and says
# so (a module-scoped fixture that trains counts against the first test that uses it, so mark every
# test that uses it). NLP_LIB_MARKER_AUDIT=FILE records the offenders in FILE instead of failing.


def _guarded(item):
    if item.get_closest_marker("integration") is not None:
        return contextlib.nullcontext()
    return _refuse_integration(item)


@contextlib.contextmanager
def _refuse_integration(item):
    import pytorch_lightning as pl

    audit = os.environ.get("NLP_LIB_MARKER_AUDIT")

    def refuse(what, original):
        @functools.wraps(original)  # inspect.signature(Trainer) still sees Trainer's (config checks read it)
        def guard(self, *args, **kwargs):
            message = f"{item.nodeid}: {what}: mark the test @pytest.mark.integration"
            if audit:
                with open(audit, "a") as f:
                    f.write(f"{item.nodeid}\t{what}\n")
                return original(self, *args, **kwargs)
            pytest.fail(message, pytrace=False)

        return guard

    saved = (subprocess.Popen.__init__, pl.Trainer.__init__)
    subprocess.Popen.__init__ = refuse("starts a subprocess", saved[0])
    pl.Trainer.__init__ = refuse("builds a Lightning Trainer", saved[1])
    try:
        yield
    finally:
        subprocess.Popen.__init__, pl.Trainer.__init__ = saved


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with _guarded(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with _guarded(item):
        yield
