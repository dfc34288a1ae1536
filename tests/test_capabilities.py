"""Capabilities are declared on the contract base classes and read as attributes, never probed.

Every Policy, Scorer, Criterion and logger the package exports declares each capability with the value
the trainer and pipeline rely on; the trainer holds no hasattr/getattr capability probe.
"""

from __future__ import annotations

import ast
import inspect
import typing
from pathlib import Path

import pytest
import torch

import alignprune_exp.pruning as pruning
import alignprune_exp.pruning.static as static
import alignprune_exp.scoring as scoring
from alignprune_exp.losses import Criterion, CrossEntropy, SOPPlus
from alignprune_exp.pruning import IES, DivBS, FullData, InfoBatch, Policy, RandomDynamic, SeTa
from alignprune_exp.pruning.static import (
    DUAL,
    EL2N,
    SSP,
    DynUnc,
    Forgetting,
    GraNd,
    Margin,
    Moderate,
    Prune4ReL,
    RandomStatic,
    SmallLoss,
    StaticPolicy,
)
from alignprune_exp.runs.loggers import CSVLogger, RunLogger, WandbLogger
from alignprune_exp.scoring import DASScorer, LossScorer, Scorer, SecondOrderScorer
from alignprune_exp.train.state import RunState

N = 20

DEFAULTS = {
    "selects_in_batch": False,
    "draw_batch_size": None,
    "scores_unselected": False,
    "needs_warmup": False,
    "warmup_protocol": "scoring",
    "anneal_by": "budget",
}
STATIC = {**DEFAULTS, "needs_warmup": True}

# Every concrete policy exported: a default instance and the capabilities it must declare.
POLICIES = {
    FullData: (lambda: FullData(N), DEFAULTS),
    InfoBatch: (lambda: InfoBatch(N, prune_prob=0.5, delta=0.875), DEFAULTS),
    RandomDynamic: (lambda: RandomDynamic(N), DEFAULTS),
    SeTa: (lambda: SeTa(N), DEFAULTS),
    IES: (lambda: IES(N), {**DEFAULTS, "scores_unselected": True}),
    DivBS: (lambda: DivBS(N, keep_fraction=0.5), {**DEFAULTS, "selects_in_batch": True, "draw_batch_size": 320}),
    StaticPolicy: (lambda: StaticPolicy(N, 0.5), STATIC),
    RandomStatic: (lambda: RandomStatic(N, 0.5), DEFAULTS),  # needs a warm-up only when class-balanced
    SmallLoss: (lambda: SmallLoss(N, 0.5), STATIC),
    Margin: (lambda: Margin(N, 0.5), STATIC),
    Forgetting: (lambda: Forgetting(N, 0.5), STATIC),
    GraNd: (lambda: GraNd(N, 0.5), STATIC),
    EL2N: (lambda: EL2N(N, 0.5), STATIC),
    Moderate: (lambda: Moderate(N, 0.5), STATIC),
    SSP: (lambda: SSP(N, 0.5), STATIC),
    Prune4ReL: (lambda: Prune4ReL(N, 0.5), STATIC),
    DynUnc: (lambda: DynUnc(N, 0.5), {**STATIC, "warmup_protocol": "dynamics"}),  # reads the full-length run
    DUAL: (lambda: DUAL(N, 0.5), {**STATIC, "warmup_protocol": "dynamics"}),
}


def _exported(module, base) -> set[type]:
    return {
        obj
        for name in module.__all__
        if inspect.isclass(obj := getattr(module, name)) and issubclass(obj, base) and obj is not base
    }


def test_every_exported_policy_is_in_the_table():
    assert _exported(pruning, Policy) | _exported(static, Policy) == set(POLICIES)


def test_base_policy_declares_every_capability_with_its_default():
    for name, value in DEFAULTS.items():
        assert getattr(Policy, name) == value, name
    assert callable(Policy.select_in_batch) and callable(Policy.prepare)


@pytest.mark.parametrize("cls", list(POLICIES), ids=lambda c: c.__name__)
def test_policy_declares_expected_capabilities(cls):
    make, expected = POLICIES[cls]
    policy = make()
    assert type(policy) is cls
    for name, value in expected.items():
        assert getattr(policy, name) == value, f"{cls.__name__}.{name}"
        assert type(getattr(policy, name)) is type(value), f"{cls.__name__}.{name}"
    assert isinstance(policy.stats, dict) and policy.stats == {}


def test_capabilities_that_follow_constructor_arguments():
    assert DivBS(N, 0.5, draw_batch_size=64).draw_batch_size == 64
    assert RandomStatic(N, 0.5, class_balanced=True).needs_warmup is True
    assert DynUnc(N, 0.5, trajectory="warmup").warmup_protocol == "scoring"
    assert DUAL(N, 0.5, trajectory="warmup").warmup_protocol == "scoring"
    assert InfoBatch(N, 0.5, 0.875, num_epochs=10, anneal_by="epochs").anneal_by == "epochs"


def test_annealing_reads_the_declared_anneal_by():
    by_epochs = InfoBatch(N, 0.5, 0.5, num_epochs=10, anneal_by="epochs")
    by_budget = InfoBatch(N, 0.5, 0.5, num_epochs=10)
    # epoch 0 of 10 with the budget 90% spent: only the budget rule anneals
    assert not by_epochs.annealing(0, 0.9) and by_budget.annealing(0, 0.9)
    assert by_epochs.annealing(5, 0.0) and not by_budget.annealing(5, 0.0)
    assert RandomDynamic(N, delta=0.5).annealing(0, 0.6)


@pytest.mark.parametrize("cls", [c for c in POLICIES if c is not DivBS], ids=lambda c: c.__name__)
def test_select_in_batch_raises_without_the_capability(cls):
    policy = POLICIES[cls][0]()
    b = 6
    with pytest.raises(NotImplementedError, match="selects_in_batch"):
        policy.select_in_batch(torch.randn(b, 4), torch.randn(b, 3), torch.zeros(b, dtype=torch.long), torch.arange(b))


def test_divbs_select_in_batch_is_implemented():
    b = 10
    keep = DivBS(N, 0.5).select_in_batch(
        torch.randn(b, 4), torch.randn(b, 3), torch.zeros(b, dtype=torch.long), torch.arange(b)
    )
    assert keep.dtype == torch.int64 and len(keep) == 5


@pytest.mark.parametrize("cls", [FullData, InfoBatch, RandomDynamic, SeTa, IES, DivBS], ids=lambda c: c.__name__)
def test_prepare_is_only_for_static_policies(cls):
    with pytest.raises(NotImplementedError, match="static"):
        POLICIES[cls][0]().prepare(None)


def test_stats_is_a_dict_after_select_for_every_dynamic_policy():
    scores = torch.arange(N, dtype=torch.float32)
    for cls in (FullData, InfoBatch, RandomDynamic, SeTa, IES, DivBS):
        policy = POLICIES[cls][0]()
        policy.select(scores, 1, progress=0.1)
        assert isinstance(policy.stats, dict) and "annealing" in policy.stats, cls.__name__
    rand = RandomStatic(N, 0.5)  # a static policy that needs no warm-up can select right away
    rand.select(scores, 0)
    assert rand.stats["annealing"] is False


def test_scorers_declare_needs_reference():
    assert Scorer.needs_reference is False
    assert _exported(scoring, Scorer) == {LossScorer, DASScorer, SecondOrderScorer}
    assert DASScorer.needs_reference is True
    assert LossScorer.needs_reference is False and LossScorer(N).needs_reference is False
    assert SecondOrderScorer.needs_reference is False


def test_criteria_subclass_criterion_and_declare_capabilities():
    assert issubclass(CrossEntropy, Criterion) and issubclass(SOPPlus, Criterion)
    assert (Criterion.needs_strong_view, Criterion.per_sample_parameters) == (False, False)
    assert SOPPlus.per_sample_parameters is True and CrossEntropy.per_sample_parameters is False
    ce, sop = CrossEntropy(), SOPPlus(N, 3)
    assert ce.per_sample_parameters is False and ce.needs_strong_view is False
    assert sop.per_sample_parameters is True and sop.needs_strong_view is True
    assert SOPPlus(N, 3, lambda_c=0.0).needs_strong_view is False  # no consistency term: no strong view
    with pytest.raises(TypeError):
        Criterion()  # per_sample is abstract


def test_criterion_defaults_are_those_of_a_stateless_loss():
    ce = CrossEntropy(label_smoothing=0.1)
    logits, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    expected = torch.nn.functional.cross_entropy(logits, y, reduction="none", label_smoothing=0.1)
    assert torch.equal(ce.per_sample(logits, y), expected)
    assert ce.batch_term(logits, y, torch.arange(5)) == 0.0
    assert ce.to("cpu") is ce and ce.state_dict() == {}
    assert ce.zero_grad() is None and ce.step() is None and ce.load_state_dict({}) is None


def test_loggers_subclass_run_logger(tmp_path: Path):
    assert issubclass(CSVLogger, RunLogger) and issubclass(WandbLogger, RunLogger)
    for hook in ("start", "__call__", "resume", "finish"):
        assert callable(getattr(RunLogger, hook))
    base = RunLogger()
    base.start(tmp_path, {}, "run", [])
    base({"epoch": 0}, {})
    assert base.resume([{"epoch": 0}]) is None
    base.finish(None, 0)
    csv = CSVLogger()
    csv.start(tmp_path, {}, "run", [])
    csv({"epoch": 0, "acc": 1.0}, {})
    csv.resume([{"epoch": 0, "acc": 2.0}])  # rewrites metrics.csv with exactly the kept records
    csv.finish({"acc": 2.0}, 0)
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["epoch,acc", "0,2.0"]


def test_run_state_fields_are_typed_by_the_contracts():
    hints = typing.get_type_hints(RunState)
    assert hints["scorer"] is Scorer and hints["policy"] is Policy
    assert hints["criterion"] == (Criterion | None)


def test_trainer_reads_capabilities_without_probing():
    import alignprune_exp.train.trainer as trainer

    tree = ast.parse(Path(trainer.__file__).read_text(encoding="utf-8"))
    probes = [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
    ]
    assert probes == [], f"hasattr/getattr in train/trainer.py at lines {probes}"
