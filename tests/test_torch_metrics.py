"""sigmax.torch.metrics: torchmetrics classes with fixed-size sum states.

Each class is checked against ``sigmax.metrics`` on the concatenated data (several updates of different
sizes, an all-ignored batch, ``ignore_index``, sample weights, the three spaces), against torchmetrics'
own metric where both define the same number, over 2 gloo processes against one process, and for the
torchmetrics interface: ``forward``, ``merge_state``, ``reset``, the class attributes and a state whose
size does not grow with the data.
"""

import datetime
import importlib
import os
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchmetrics")
import torch.distributed as dist
import torch.multiprocessing as mp
import torchmetrics.classification as TMC

import sigmax.metrics as M
import sigmax.torch.metrics as TM
from sigmax.testing import assert_close

C = 4
SIZES = (17, 1, 40, 0, 23)  # an empty batch too


def make_data(task, seed=0, n=sum(SIZES), ignore=True):
    rng = np.random.default_rng(seed)
    if task == "binary":
        z = rng.normal(0.0, 2.0, n)
        y = (rng.random(n) < 1 / (1 + np.exp(-z + 0.5))).astype(np.int64)
    elif task == "multiclass":
        z = rng.normal(0.0, 2.0, (n, C))
        y = rng.integers(0, C, n)
        y[::3] = np.argmax(z[::3], axis=1)  # some signal
    else:
        z = rng.normal(0.0, 2.0, (n, C))
        y = (rng.random((n, C)) < 1 / (1 + np.exp(-z))).astype(np.int64)
    if ignore:
        y[5::7] = -100  # rows (binary, multiclass), entries (multilabel)
        y[17] = -100  # the one-row batch: all ignored
    w = rng.random(n) + 0.1
    w[::11] = 0.0
    return torch.tensor(z), torch.tensor(y), torch.tensor(w)


def in_space(z, task, space):
    if space == "logits":
        return z
    if task == "multiclass":
        return torch.softmax(z, -1) if space == "probs" else torch.log_softmax(z, -1)
    return torch.sigmoid(z) if space == "probs" else torch.nn.functional.logsigmoid(z)


def classes(task):
    return {"multiclass": {"num_classes": C}, "multilabel": {"num_labels": C}, "binary": {}}[task]


def batches(n=sum(SIZES)):
    start = 0
    for size in SIZES:
        yield slice(start, start + size)
        start += size
    assert start == n


# (metric class, its arguments, the sigmax.metrics function with the same arguments, tasks)
CASES = [
    ("nll", TM.NLL, {}, M.nll, None),
    ("brier", TM.Brier, {}, M.brier, None),
    ("accuracy", TM.Accuracy, {}, M.accuracy, None),
    ("accuracy-top2", TM.Accuracy, {"top_k": 2}, M.accuracy, ("multiclass",)),
    ("accuracy-threshold", TM.Accuracy, {"threshold": 0.3}, M.accuracy, ("binary", "multilabel")),
    ("f1-micro", TM.F1, {}, lambda *a, **k: M.precision_recall_f1(*a, **k)["f1"], None),
    ("prf-macro", TM.PrecisionRecallF1, {"average": "macro"}, M.precision_recall_f1, None),
    ("prf-weighted", TM.PrecisionRecallF1, {"average": "weighted"}, M.precision_recall_f1, ("multiclass", "multilabel")),
    ("prf-none", TM.PrecisionRecallF1, {"average": None}, M.precision_recall_f1, None),
    ("precision", TM.Precision, {"average": "macro"}, lambda *a, **k: M.precision_recall_f1(*a, **k)["precision"], None),
    ("recall", TM.Recall, {"threshold": 0.7}, lambda *a, **k: M.precision_recall_f1(*a, **k)["recall"],
     ("binary", "multilabel")),
    ("ece", TM.CalibrationError, {}, M.calibration_error, None),
    ("mce", TM.CalibrationError, {"norm": "max", "n_bins": 5}, M.calibration_error, None),
    ("mce-1", TM.CalibrationError, {"norm": "max", "min_bin_count": 1}, M.calibration_error, None),
    ("rms", TM.CalibrationError, {"norm": "l2", "n_bins": 10}, M.calibration_error, None),
    ("ece-classwise", TM.CalibrationError, {"mode": "classwise"}, M.calibration_error, None),
    ("mce-classwise", TM.CalibrationError, {"mode": "classwise", "norm": "max", "n_bins": 4, "min_bin_count": 3},
     M.calibration_error, None),
    ("rms-classwise", TM.CalibrationError, {"mode": "classwise", "norm": "l2"}, M.calibration_error, None),
    ("reliability", TM.ReliabilityDiagram, {"n_bins": 7}, M.reliability, None),
    ("reliability-classwise", TM.ReliabilityDiagram, {"mode": "classwise", "n_bins": 6, "min_bin_count": 2},
     M.reliability, None),
    ("reliability-class1", TM.ReliabilityDiagram, {"mode": "classwise", "class_index": 1}, M.reliability,
     ("multiclass", "multilabel")),
    ("summary", TM.Summary, {"n_bins": 12, "min_bin_count": 3}, M.summary, None),
]
TASKS = ("binary", "multiclass", "multilabel")
PARAMS = [pytest.param(task, case, id=f"{case[0]}-{task}") for case in CASES for task in TASKS
          if case[4] is None or task in case[4]]


def reference_kwargs(cls, kwargs, task):
    out = dict(kwargs)
    if cls in (TM.NLL, TM.Brier, TM.CalibrationError, TM.ReliabilityDiagram) and "threshold" in out:
        del out["threshold"]
    return out


def assert_same(actual, expected, what):
    """``actual`` (tensors, dict of tensors or Reliability) equals ``expected`` (sigmax.metrics)."""
    if isinstance(expected, M.Reliability):
        assert isinstance(actual, M.Reliability), what
        np.testing.assert_array_equal(actual.count, expected.count, err_msg=what)
        np.testing.assert_array_equal(actual.bin_edges, expected.bin_edges, err_msg=what)
        assert (actual.weight is None) == (expected.weight is None), what
        for name in ("confidence", "accuracy", "bin_weight"):
            assert_close(getattr(actual, name), getattr(expected, name), "float64", factor=64, err_msg=f"{what}: {name}")
        assert actual.min_bin_count == expected.min_bin_count
        assert_close(actual.ece, expected.ece, "float64", factor=64, err_msg=f"{what}: ece")
        assert_close(actual.mce, expected.mce, "float64", factor=64, err_msg=f"{what}: mce")
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and list(actual) == list(expected), what
        for k in expected:
            assert_same(actual[k], expected[k], f"{what}[{k}]")
        return
    assert isinstance(actual, torch.Tensor) and actual.dtype == torch.float64, what
    assert_close(actual, expected, "float64", factor=64, err_msg=what)


def run_metric(metric, z, y, w=None):
    for s in batches(len(y)):
        metric.update(z[s], y[s], None if w is None else w[s])
    return metric.compute()


@pytest.mark.parametrize("task, case", PARAMS)
def test_equals_sigmax_metrics_on_the_concatenated_data(task, case):
    name, cls, kwargs, ref, _ = case
    z, y, w = make_data(task, seed=len(name))
    for space, weighted in (("logits", False), ("probs", True), ("log_probs", False)):
        s = in_space(z, task, space)
        m = cls(task, space=space, ignore_index=-100, **classes(task), **kwargs)
        got = run_metric(m, s, y, w if weighted else None)
        expected = ref(s.numpy(), y.numpy(), task, space=space, ignore_index=-100,
                       sample_weight=w.numpy() if weighted else None, **reference_kwargs(cls, kwargs, task))
        assert_same(got, expected, f"{name}, {task}, {space}, weighted={weighted}")
        # rows kept (a multilabel row stays, its ignored entries masked)
        assert m.n == (len(y) if task == "multilabel" else int((y != -100).sum()))


def test_summary_of_many_classes_has_the_top5_accuracy():
    g = torch.Generator().manual_seed(2)
    z, y = torch.randn(90, 7, generator=g, dtype=torch.float64), torch.randint(0, 7, (90,), generator=g)
    m = TM.Summary("multiclass", num_classes=7, threshold=None)
    m.update(z[:40], y[:40])
    m.update(z[40:], y[40:])
    got = m.compute()
    assert "top5_accuracy" in got
    assert_same(got, M.summary(z, y, "multiclass"), "summary, 7 classes")


def test_the_class_axis_is_torchmetrics_second_axis():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(6, C, 5, generator=g, dtype=torch.float64)  # (N, C, T), torchmetrics' layout
    y = torch.randint(0, C, (6, 5), generator=g)
    y[0, :2] = -100
    for cls, ref in ((TM.NLL, M.nll), (TM.CalibrationError, M.calibration_error)):
        m = cls("multiclass", num_classes=C, ignore_index=-100)
        m.update(z, y)
        assert_same(m.compute(), ref(z, y, "multiclass", axis=1, ignore_index=-100), cls.__name__)
        last = cls("multiclass", num_classes=C, ignore_index=-100, axis=-1)  # sigmax's layout, classes last
        last.update(z.movedim(1, -1), y)
        assert_same(last.compute(), ref(z, y, "multiclass", axis=1, ignore_index=-100), cls.__name__)
    with pytest.raises(ValueError, match="num_classes=4.*axis=-1"):
        TM.NLL("multiclass", num_classes=C).update(torch.zeros(3, C + 1), torch.tensor([0, 1, 2]))


# --------------------------------------------------------------------------------------------
# the same numbers as torchmetrics' own metrics
# --------------------------------------------------------------------------------------------


def test_equals_torchmetrics_where_both_define_it():
    z, y, _ = make_data("multiclass", seed=3, n=500)
    p = torch.softmax(z, -1).float()
    zb, yb, _ = make_data("binary", seed=4, n=500)
    zl, yl, _ = make_data("multilabel", seed=5, n=300)
    pairs = [
        # (ours, theirs, scores for ours, scores for theirs, labels)
        *[(TM.CalibrationError("multiclass", num_classes=C, norm=norm, min_bin_count=1, ignore_index=-100),
           TMC.MulticlassCalibrationError(num_classes=C, n_bins=15, norm=norm, ignore_index=-100), z, p, y)
          for norm in ("l1", "max", "l2")],
        *[(TM.CalibrationError("binary", mode="classwise", n_bins=10, norm=norm, min_bin_count=1, ignore_index=-100),
           TMC.BinaryCalibrationError(n_bins=10, norm=norm, ignore_index=-100), zb, torch.sigmoid(zb).float(), yb)
          for norm in ("l1", "max", "l2")],
        (TM.Accuracy("multiclass", num_classes=C, ignore_index=-100),
         TMC.MulticlassAccuracy(num_classes=C, average="micro", ignore_index=-100), z, p, y),
        (TM.Accuracy("multiclass", num_classes=C, top_k=2, ignore_index=-100),
         TMC.MulticlassAccuracy(num_classes=C, average="micro", top_k=2, ignore_index=-100), z, p, y),
        (TM.F1("multiclass", num_classes=C, average="macro", ignore_index=-100),
         TMC.MulticlassF1Score(num_classes=C, average="macro", ignore_index=-100), z, p, y),
        (TM.Precision("multiclass", num_classes=C, average="weighted", ignore_index=-100),
         TMC.MulticlassPrecision(num_classes=C, average="weighted", ignore_index=-100), z, p, y),
        (TM.F1("binary", ignore_index=-100), TMC.BinaryF1Score(ignore_index=-100), zb, torch.sigmoid(zb).float(), yb),
        (TM.Recall("binary", ignore_index=-100), TMC.BinaryRecall(ignore_index=-100), zb, torch.sigmoid(zb).float(), yb),
        (TM.F1("multilabel", num_labels=C, ignore_index=-100),
         TMC.MultilabelF1Score(num_labels=C, average="micro", ignore_index=-100), zl, torch.sigmoid(zl).float(), yl),
        (TM.F1("multilabel", num_labels=C, average="macro", ignore_index=-100),
         TMC.MultilabelF1Score(num_labels=C, average="macro", ignore_index=-100), zl, torch.sigmoid(zl).float(), yl),
        (TM.Accuracy("multilabel", num_labels=C, ignore_index=-100),
         TMC.MultilabelAccuracy(num_labels=C, average="micro", ignore_index=-100), zl, torch.sigmoid(zl).float(), yl),
    ]
    for ours, theirs, s, t, labels in pairs:
        for part in (slice(0, 123), slice(123, None)):
            ours.update(s[part], labels[part])
            theirs.update(t[part], labels[part])
        assert_close(ours.compute(), theirs.compute().double(), "float32", factor=8,
                     err_msg=f"{type(ours).__name__} vs {type(theirs).__name__}")


def test_the_state_does_not_grow_and_is_one_tensor():
    z, y, _ = make_data("multiclass", seed=6, n=400, ignore=False)
    ours = TM.CalibrationError("multiclass", num_classes=C, mode="classwise", n_bins=15)
    theirs = TMC.MulticlassCalibrationError(num_classes=C, n_bins=15)
    sizes = []
    for i in range(0, 400, 40):
        ours.update(z[i:i + 40], y[i:i + 40])
        theirs.update(torch.softmax(z[i:i + 40], -1), y[i:i + 40])
        sizes.append(sum(t.numel() for t in ours.metric_state.values()))
    assert list(ours.metric_state) == ["sums"]
    assert sizes == [3 + 4 * C * 15] * len(sizes)
    # torchmetrics' own keeps one confidence and one hit per prediction (lists that grow)
    assert sum(t.numel() for v in theirs.metric_state.values() for t in v) == 2 * 400
    for cls, kw in ((TM.NLL, {}), (TM.Summary, {}), (TM.F1, {"average": None})):
        m = cls("multiclass", num_classes=C, **kw)
        before = m.sums.numel()
        for i in range(0, 400, 40):
            m.update(z[i:i + 40], y[i:i + 40])
        assert m.sums.numel() == before and m.sums.dtype == torch.float64


# --------------------------------------------------------------------------------------------
# the torchmetrics interface
# --------------------------------------------------------------------------------------------


def test_class_attributes():
    for cls in (TM.NLL, TM.Brier, TM.Accuracy, TM.PrecisionRecallF1, TM.F1, TM.Precision, TM.Recall,
                TM.CalibrationError, TM.ReliabilityDiagram, TM.Summary):
        assert cls.full_state_update is False and cls.is_differentiable is False, cls
    assert TM.NLL.higher_is_better is False and TM.Brier.higher_is_better is False
    assert TM.CalibrationError.higher_is_better is False
    assert TM.Accuracy.higher_is_better is True and TM.F1.higher_is_better is True
    assert TM.ReliabilityDiagram.higher_is_better is None and TM.Summary.higher_is_better is None


def test_forward_gives_the_batch_value_and_accumulates():
    z, y, _ = make_data("multiclass", seed=7)
    for cls, ref, kw in ((TM.NLL, M.nll, {}), (TM.CalibrationError, M.calibration_error, {"n_bins": 5}),
                         (TM.ReliabilityDiagram, M.reliability, {"n_bins": 5}), (TM.Summary, M.summary, {})):
        m = cls("multiclass", num_classes=C, ignore_index=-100, **kw)
        for s in batches():
            batch = m(z[s], y[s])
            keep = (y[s] != -100).sum()
            if keep:
                assert_same(batch, ref(z[s], y[s], "multiclass", ignore_index=-100, **kw), f"{cls.__name__} batch")
            elif cls is TM.ReliabilityDiagram:
                assert batch.n == 0
            else:
                value = batch if isinstance(batch, torch.Tensor) else batch["nll"]
                assert torch.isnan(value)  # an all-ignored (or empty) batch is NaN, not an error
        assert_same(m.compute(), ref(z, y, "multiclass", ignore_index=-100, **kw), f"{cls.__name__} total")


def test_merge_state_and_reset():
    z, y, w = make_data("multilabel", seed=8)
    a, b, whole = (TM.Summary("multilabel", num_labels=C, ignore_index=-100) for _ in range(3))
    a.update(z[:50], y[:50], w[:50])
    b.update(z[50:], y[50:], w[50:])
    whole.update(z, y, w)
    a.merge_state(b)
    assert_same(a.compute(), {k: v.item() for k, v in whole.compute().items()}, "merged")
    assert_same(a.compute(), M.summary(z, y, "multilabel", ignore_index=-100, sample_weight=w), "merged vs sigmax")
    a.reset()
    assert a.n == 0 and not a.sums.any()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchmetrics: compute before update
        assert all(torch.isnan(v) for v in a.compute().values())
    a.update(z[:50], y[:50])
    assert_same(a.compute(), M.summary(z[:50], y[:50], "multilabel", ignore_index=-100), "after reset")


def test_clone_pickle_and_device_move():
    import pickle

    z, y, _ = make_data("multiclass", seed=9, ignore=False)
    for m in (TM.ReliabilityDiagram("multiclass", num_classes=C), TM.NLL("multiclass", num_classes=C)):
        m.update(z, y)
        for copy in (m.clone(), pickle.loads(pickle.dumps(m)), m.to("cpu")):
            assert_same(copy.compute(), m.compute(), "copy")
        m.half()  # torchmetrics keeps the state's dtype under .half(): sums stay float64
        assert m.sums.dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_and_state():
    z, y, w = make_data("multiclass", seed=11)
    for cls in (TM.Summary, TM.CalibrationError, TM.ReliabilityDiagram):
        gpu = cls("multiclass", num_classes=C, ignore_index=-100).to("cuda")
        got = run_metric(gpu, z.cuda().float(), y.cuda(), w.cuda())
        assert gpu.sums.device.type == "cuda" and gpu.sums.dtype == torch.float64
        if not isinstance(got, M.Reliability):
            values = got.values() if isinstance(got, dict) else [got]
            assert all(v.device.type == "cuda" for v in values)
        cpu = run_metric(cls("multiclass", num_classes=C, ignore_index=-100), z.float(), y, w)
        assert_same(got, cpu if isinstance(cpu, M.Reliability) else
                    ({k: v.item() for k, v in cpu.items()} if isinstance(cpu, dict) else cpu.item()), cls.__name__)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="needs num_classes"):
        TM.NLL("multiclass")
    with pytest.raises(ValueError, match="needs num_labels"):
        TM.NLL("multilabel")
    with pytest.raises(ValueError, match="leave num_classes and num_labels None"):
        TM.NLL("binary", num_labels=3)
    with pytest.raises(ValueError, match="equal_width"):
        TM.CalibrationError("binary", binning="equal_mass")
    with pytest.raises(ValueError, match="top_k"):
        TM.Accuracy("multiclass", num_classes=3, top_k=4)
    with pytest.raises(ValueError, match="threshold does not apply"):
        TM.F1("multiclass", num_classes=3, threshold=0.2)
    with pytest.raises(ValueError, match="class_index"):
        TM.ReliabilityDiagram("multiclass", num_classes=3, mode="classwise", class_index=3)
    with pytest.raises(ValueError, match="space"):
        TM.NLL("binary", space="logit-ish")
    with pytest.raises(ValueError, match="unknown norm"):
        TM.CalibrationError("binary", norm="l3")
    m = TM.NLL("multiclass", num_classes=3)
    with pytest.raises(ValueError, match="class index"):
        m.update(torch.zeros(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="NaN"):
        m.update(torch.tensor([[float("nan"), 0.0, 0.0]]), torch.tensor([0]))
    assert m.n == 0  # a refused batch adds nothing


def test_without_torchmetrics_the_import_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchmetrics", None)  # "not installed"
    monkeypatch.delitem(sys.modules, "sigmax.torch.metrics")
    import sigmax.torch

    monkeypatch.setattr(sigmax.torch, "metrics", TM, raising=False)  # restored afterwards
    with pytest.raises(ImportError, match="pip install torchmetrics"):
        importlib.import_module("sigmax.torch.metrics")


# --------------------------------------------------------------------------------------------
# two gloo processes against one
# --------------------------------------------------------------------------------------------


def dist_metrics():
    """(name, metric, task) built alike on every rank and in the single process."""
    return [
        ("nll", TM.NLL("multiclass", num_classes=C, ignore_index=-100), "multiclass"),
        ("ece", TM.CalibrationError("multiclass", num_classes=C, ignore_index=-100, min_bin_count=2), "multiclass"),
        ("classwise", TM.CalibrationError("multilabel", num_labels=C, mode="classwise", norm="l2",
                                          ignore_index=-100), "multilabel"),
        ("reliability", TM.ReliabilityDiagram("binary", n_bins=8, ignore_index=-100), "binary"),
        ("f1", TM.F1("multiclass", num_classes=C, average=None, ignore_index=-100), "multiclass"),
        ("summary", TM.Summary("binary", ignore_index=-100), "binary"),
    ]


def as_plain(value):
    if isinstance(value, M.Reliability):
        return value
    if isinstance(value, dict):
        return {k: v.clone() for k, v in value.items()}
    return value.clone()


def _dist_worker(rank, world, folder):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    calls = []
    all_reduce, all_gather = dist.all_reduce, dist.all_gather

    def counting_all_reduce(tensor, *args, **kwargs):
        calls.append(("all_reduce", tensor.numel()))
        return all_reduce(tensor, *args, **kwargs)

    def counting_all_gather(out, tensor, *args, **kwargs):
        calls.append(("all_gather", tensor.numel()))
        return all_gather(out, tensor, *args, **kwargs)

    dist.all_reduce, dist.all_gather = counting_all_reduce, counting_all_gather
    try:
        results = {}
        for name, metric, task in dist_metrics():
            z, y, w = make_data(task, seed=len(name))
            # rank r takes every other batch: uneven shards (rank 1 has the empty and all-ignored batches)
            for i, s in enumerate(batches()):
                if i % world == rank:
                    metric.update(z[s], y[s], w[s] if name == "summary" else None)
            local = metric.sums.clone()
            calls.clear()
            value = as_plain(metric.compute())
            results[name] = {"value": value, "calls": list(calls), "local_after": metric.sums.clone(),
                             "local": local}
        torch.save(results, os.path.join(folder, f"rank{rank}.pt"))
    finally:
        dist.all_reduce, dist.all_gather = all_reduce, all_gather
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_gloo_processes_equal_one_process(tmp_path):
    world = 2
    # spawn, not fork: an xdist worker may have started JAX's threads, and a forked child of a
    # multithreaded process can deadlock (each child re-imports torch and torchmetrics: a few seconds)
    mp.start_processes(_dist_worker, args=(world, str(tmp_path)), nprocs=world, join=True, start_method="spawn")
    per_rank = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(world)]
    for name, metric, task in dist_metrics():
        z, y, w = make_data(task, seed=len(name))
        single = run_metric(metric, z, y, w if name == "summary" else None)
        for rank, res in enumerate(per_rank):
            r = res[name]
            assert_same(r["value"], single, f"{name} on rank {rank}")
            # the sync is one all-reduce of the fixed-size state, nothing gathered
            assert r["calls"] == [("all_reduce", metric.sums.numel())], f"{name} on rank {rank}: {r['calls']}"
            assert torch.equal(r["local_after"], r["local"]), "compute() leaves the rank's own sums in place"
        assert torch.allclose(per_rank[0][name]["local"] + per_rank[1][name]["local"], metric.sums, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# logged from a LightningModule
# --------------------------------------------------------------------------------------------


def _lightning():
    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            return importlib.import_module(name)
        except ImportError:
            pass
    pytest.skip("neither lightning nor pytorch_lightning is installed")


@pytest.mark.slow
def test_logs_from_a_lightning_module(tmp_path):
    pl = _lightning()
    z, y, _ = make_data("multiclass", seed=10, n=96)
    data = torch.utils.data.TensorDataset(z.float(), y)

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(C, C)
            with torch.no_grad():
                self.layer.weight.copy_(torch.eye(C))
                self.layer.bias.zero_()
            self.ece = TM.CalibrationError("multiclass", num_classes=C, ignore_index=-100)
            self.nll = TM.NLL("multiclass", num_classes=C, ignore_index=-100)
            self.summary = TM.Summary("multiclass", num_classes=C, ignore_index=-100)

        def validation_step(self, batch, _):
            x, t = batch
            logits = self.layer(x)
            self.ece.update(logits, t)
            self.nll(logits, t)
            self.summary.update(logits, t)
            self.log("val_ece", self.ece, on_epoch=True)
            self.log("val_nll", self.nll, on_epoch=True)

        def on_validation_epoch_end(self):
            self.log_dict({f"val_{k}": v.float() for k, v in self.summary.compute().items()})
            self.summary.reset()

    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.validate(Module(), torch.utils.data.DataLoader(data, batch_size=20), verbose=False)
    logged = trainer.callback_metrics
    kw = {"ignore_index": -100}
    assert_close(logged["val_ece"].double(), M.calibration_error(z.float(), y, "multiclass", **kw), "float32")
    assert_close(logged["val_nll"].double(), M.nll(z.float(), y, "multiclass", **kw), "float32")
    assert_close(logged["val_accuracy"].double(), M.accuracy(z.float(), y, "multiclass", **kw), "float32")
