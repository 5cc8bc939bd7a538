"""``nlp-lib export``: a bundle's model as ONNX, checked against PyTorch in onnxruntime (:mod:`nlp_lib.export`)."""

from __future__ import annotations

from pathlib import Path

from nlp_lib.cli.options import TRUST_KEYS, fail, key_values, trust_options
from nlp_lib.errors import ConfigError, NlpLibError

__all__ = ["export_command"]


def export_command(args: list[str]) -> int:
    """``nlp-lib export bundle=DIR [format=onnx] [max_length=128] [max_depth=64] [output=DIR]``."""
    try:
        opts, rest = key_values(args, {"bundle", "format", "max_length", "max_depth", "output", *TRUST_KEYS}, "export")
        if rest or "bundle" not in opts:
            raise ConfigError(
                "usage: nlp-lib export bundle=<run dir>/bundle [format=onnx] [max_length=128] [max_depth=64] "
                "[output=<dir>]"
            )
        if opts.get("format", "onnx") != "onnx":
            raise ConfigError(f"export: format must be onnx, got {opts['format']!r}")
        sizes = {}
        for key, default in (("max_length", 128), ("max_depth", 64)):
            try:
                sizes[key] = int(opts.get(key, default))
            except ValueError:
                raise ConfigError(f"export: {key} must be a whole number, got {opts[key]!r}") from None
        from nlp_lib.export import export_onnx
        from nlp_lib.predict import load

        predictor = load(opts["bundle"], **trust_options(opts))
        output = Path(opts.get("output") or Path(opts["bundle"]) / "onnx")
        manifest = export_onnx(predictor.model, output, labels=predictor.labels or None, **sizes)
    except NlpLibError as e:
        return fail(e)
    files = ", ".join(str(output / f) for f in manifest["files"])
    print(
        f"wrote {files} and {output / 'onnx.json'} ({manifest['kind']}); "
        f"onnxruntime vs PyTorch max |difference| {manifest['max_abs_diff']:.2e}"
    )
    return 0
