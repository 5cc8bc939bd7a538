"""optim.param_groups: learning rate and weight decay by parameter name (Tai et al.'s embedding rate, L2 on the classifier)."""

import functools

import pytest
import torch
from conftest import TINY_LISTOPS

from nlp_lib.cells import NaryTreeLSTMCell
from nlp_lib.cli import compose, train
from nlp_lib.errors import ConfigError
from nlp_lib.models.tree_classifier import TreeClassifier
from nlp_lib.tasks.param_groups import ParamGroups, build_optimizer, check_param_groups

ADAGRAD = functools.partial(torch.optim.Adagrad, lr=0.05, weight_decay=1e-4)


def _model():
    torch.manual_seed(0)
    return TreeClassifier(vocab_size=10, num_classes=5, cell=NaryTreeLSTMCell(input_size=4, hidden_size=6))


def test_rules_give_their_parameters_a_scaled_rate_and_their_own_weight_decay():
    model = _model()
    rules = [{"params": "embedding.*", "lr_scale": 0.1, "weight_decay": 0.0}, {"params": "classifier.*"}]
    opt = build_optimizer(ParamGroups(ADAGRAD, rules), model)
    rest, emb, clf = opt.param_groups
    assert [g["name"] for g in opt.param_groups] == ["rest", "embedding.*", "classifier.*"]
    assert emb["params"] == [model.embedding.weight] and emb["lr"] == pytest.approx(0.005) and emb["weight_decay"] == 0
    assert clf["params"] == [model.classifier.weight, model.classifier.bias]
    assert clf["lr"] == 0.05 and clf["weight_decay"] == 1e-4  # no override: the optimiser's own
    assert rest["lr"] == 0.05 and len(rest["params"]) == 5
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))


def test_a_scaled_group_steps_by_its_own_rate_and_a_scheduler_scales_every_group_alike():
    model = _model()
    sgd = functools.partial(torch.optim.SGD, lr=1.0)
    opt = build_optimizer(ParamGroups(sgd, [{"params": "embedding.*", "lr_scale": 0.25}]), model)
    before = model.embedding.weight.detach().clone()
    model.embedding.weight.grad = torch.ones_like(before)
    opt.step()
    assert torch.allclose(before - model.embedding.weight.detach(), torch.full_like(before, 0.25))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    opt.step()
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.125]


def test_the_first_matching_rule_wins_and_a_rule_left_with_nothing_is_named():
    rules = [{"params": "*"}, {"params": "embedding.*", "lr_scale": 0.1}]
    with pytest.raises(ConfigError, match=r"param_groups\[1\]\.params: 'embedding\.\*' matches no parameter left"):
        build_optimizer(ParamGroups(ADAGRAD, rules), _model())
    with pytest.raises(ConfigError, match=r"'embeding\.\*' matches no parameter left \(the model's: embedding.weight"):
        build_optimizer(ParamGroups(ADAGRAD, [{"params": "embeding.*"}]), _model())


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("embedding.*", r"optim\.param_groups: expected a list"),
        ([{"lr_scale": 0.1}], r"optim\.param_groups\[0\]: params .* is required"),
        ([{"params": "x", "lr": 0.1}], r"optim\.param_groups\[0\]: lr is not an option"),
        ([{"params": "x", "lr_scale": "fast"}], r"optim\.param_groups\[0\]: lr_scale: expected a number"),
        ([{"params": "x", "lr_scale": -1}], r"optim\.param_groups\[0\]: lr_scale: must be >= 0"),
        ([{"params": "x"}, 3], r"optim\.param_groups\[1\]: expected"),
    ],
)
def test_bad_rules_name_their_key(rules, message):
    with pytest.raises(ConfigError, match=message):
        check_param_groups(rules)


@pytest.mark.integration
def test_a_recipe_trains_with_param_groups_and_a_bad_one_stops_before_training(tmp_path):
    over = [*TINY_LISTOPS, "+optim.param_groups=[{params: 'embedding.*', lr_scale: 0.1}]"]
    metrics = train(compose("listops_tree_lstm", [*over, f"run_dir={tmp_path}/a"]))
    assert metrics["epochs"] >= 1
    state = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)["optimizer_states"][0]
    rest, emb = state["param_groups"]
    assert emb["name"] == "embedding.*" and emb["lr"] == pytest.approx(rest["lr"] * 0.1)
    with pytest.raises(ConfigError, match=r"optim\.param_groups\[0\]\.params: 'nowhere' matches no parameter"):
        train(
            compose(
                "listops_tree_lstm", [*TINY_LISTOPS, "+optim.param_groups=[{params: nowhere}]", f"run_dir={tmp_path}/b"]
            )
        )
    with pytest.raises(ConfigError, match=r"optim\.groups is not an option"):
        train(compose("listops_tree_lstm", [*TINY_LISTOPS, "+optim.groups=[]", f"run_dir={tmp_path}/c"]))
