"""``nlp-lib predict``: a bundle's predictions for the lines of a file (or stdin).

Classifiers and taggers write one JSON line per input (its line number, the input and the
predictor's answer); seq2seq models one output per line, or ``i ||| output ||| score`` n-best
lines. Every option is checked against the predictor's own signature before anything is computed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nlp_lib.cli.options import TRUST_KEYS, fail, key_values, trust_options
from nlp_lib.errors import ConfigError, DataError, NlpLibError
from nlp_lib.schema import check_call

__all__ = ["predict_command", "read_inputs"]

_DECODING = ("batch_size", "beam_size", "n_best", "max_length", "length_penalty", "output_precision")


def predict_command(args: list[str]) -> int:
    """``nlp-lib predict bundle=DIR [input=FILE|-] [output=FILE] ...``: labels, or translations for seq2seq."""
    try:
        opts, rest = key_values(args, {"bundle", "input", "output", *_DECODING, *TRUST_KEYS}, "predict")
        if rest or "bundle" not in opts:
            raise ConfigError(
                "usage: nlp-lib predict bundle=<run dir>/bundle [input=<file>|-] [output=<file>] [batch_size=64]\n"
                "       (input: a file, .jsonl with a 'text' field or one input a line; - or none: stdin)\n"
                "       seq2seq: [beam_size=5] [n_best=1] [max_length=200] [length_penalty=1.0]\n"
                "                [output_precision=full|bfloat16]"
            )
        from nlp_lib.predict import Seq2SeqPredictor, TreeClassifierPredictor, load, parse_tree_input

        check_output(opts.get("output"))  # before any prediction is computed
        predictor = load(opts["bundle"], **trust_options(opts))
        decoding = {k: opts[k] for k in _DECODING if k in opts}
        if isinstance(predictor, Seq2SeqPredictor):
            return _translate(predictor, opts, check_call(predictor.translate, decoding, "predict"))
        wrong = sorted(set(decoding) - {"batch_size"})
        if wrong:
            raise ConfigError(
                f"predict: {', '.join(wrong)} apply to seq2seq models only; this bundle holds a classifier"
            )
        options = check_call(predictor.predict, decoding, "predict")
        source = opts.get("input", "-")
        records = read_inputs(source)
        inputs: list[Any] = [x for _, x in records]
        if isinstance(predictor, TreeClassifierPredictor):  # parsed here, so a bad tree names its line
            inputs = [_at_line(parse_tree_input, x, source, n) for n, x in records]
        preds = predictor.predict(inputs, **options)
    except NlpLibError as e:
        return fail(e)
    lines = [
        json.dumps({"line": n, "input": x, **p}, ensure_ascii=False) for (n, x), p in zip(records, preds, strict=True)
    ]
    _write_lines(lines, opts.get("output"), "predictions")
    return 0


def _at_line(fn: Callable[[str], Any], x: str, source: str, line: int) -> Any:
    """``fn(x)``, with an error in it named by the input's file (or stdin) and line."""
    try:
        return fn(x)
    except DataError as e:
        raise DataError(e.message, path="<stdin>" if source == "-" else source, line=line) from None


def _write_lines(lines: list[str], output: str | None, what: str) -> None:
    if output:
        Path(output).write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{len(lines)} {what} written to {output}", file=sys.stderr)
    else:
        print("\n".join(lines))


def check_output(output: str | None) -> None:
    """``output=`` is a file that can be written: checked before anything is computed."""
    if not output:
        return
    path = Path(output)
    if path.is_dir():
        raise ConfigError(f"output={output}: a directory; name a file to write")
    if not path.parent.is_dir():
        raise ConfigError(f"output={output}: its directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"output={output}: not writable")


def _translate(predictor: Any, opts: dict[str, str], options: dict[str, Any]) -> int:
    """Seq2seq prediction: one input a line (file or stdin), one output a line; n-best as ``i ||| text ||| score``.

    ``options``: the decoding options, checked against ``predictor.translate``'s signature."""
    n_best, beam_size = options.get("n_best", 1), options.get("beam_size", 5)
    if n_best > beam_size:
        raise ConfigError(f"predict: n_best ({n_best}) cannot exceed beam_size ({beam_size})")
    inputs = [x for _, x in _input_lines(opts.get("input", "-"))]  # blank lines too: one output a line
    outs = predictor.translate(inputs, **options)
    if n_best == 1:
        lines = [o[0]["output"] for o in outs]
    else:
        lines = [f"{i} ||| {h['output']} ||| {h['score']:.4f}" for i, o in enumerate(outs) for h in o]
    _write_lines(lines, opts.get("output"), "outputs")
    return 0


def _input_lines(source: str) -> list[tuple[int, str]]:
    """``(line number, line without surrounding blanks)`` of a file, or of stdin for ``-``."""
    if source == "-":
        return [(n, line.strip()) for n, line in enumerate(sys.stdin.read().splitlines(), 1)]
    path = Path(source)
    if not path.is_file():
        raise DataError("file does not exist" if not path.exists() else "not a file", path=source)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"not UTF-8 text (byte offset {e.start})", path=source) from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)]


def read_inputs(source: str) -> list[tuple[int, str]]:
    """``(line number, input)``: one input a non-blank line (a text or a bracketed tree), or JSONL
    records with a ``text`` field; ``-`` reads stdin."""
    out = []
    for lineno, line in _input_lines(source):
        if not line:
            continue
        if source.endswith(".jsonl"):
            try:
                out.append((lineno, str(json.loads(line)["text"])))
            except (ValueError, KeyError, TypeError):
                raise DataError("expected a JSON object with a 'text' field", path=source, line=lineno) from None
        else:
            out.append((lineno, line))
    if not out:
        raise DataError("no inputs", path="<stdin>" if source == "-" else source)
    return out
