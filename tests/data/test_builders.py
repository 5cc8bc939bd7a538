"""The data builders: what every conf/data file names, and exactly what the trust allow-list lets a config call."""

from pathlib import Path

import pytest
import pytorch_lightning as pl
import yaml

from nlp_lib import trust
from nlp_lib.data import builders

CONF_DATA = Path(__file__).resolve().parents[2] / "conf" / "data"


def test_the_allowed_factories_are_the_builders():
    assert {f"nlp_lib.data.builders.{name}" for name in builders.__all__} == trust.FACTORIES


@pytest.mark.parametrize("path", sorted(CONF_DATA.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_data_config_names_a_builder_or_a_datamodule_class(path):
    target = yaml.safe_load(path.read_text())["_target_"]
    built = trust.resolve_target(target, trust.Trust(trust.RUN_TARGETS), str(path))  # untrusted, as a run's config
    if isinstance(built, type):
        assert issubclass(built, pl.LightningDataModule)
    else:
        assert built.__module__ == builders.__name__ and built.__name__ in builders.__all__
