"""The one config tree: YAML → frozen dataclasses (unknown keys rejected, types checked).

    model:   architecture (rate_ref.ModelConfig): layers, loss, theta, kind (rate | spiking)
    method:  learning algorithm: ep (estimator, beta, T1, T2, mode) or bptt (T1, K)
    spiking: neuron model and local rule, used when model.kind is spiking
    optim:   SGD with momentum, per-layer learning rates, weight decay, cosine schedule
    data:    dataset, location, subsets, augmentation
    train:   epochs, batch size, seed, device, checkpointing, output folder
    compare: the arms of ``spiking-ep compare`` and what its gap report measures

``load_config(path, overrides)`` reads a YAML file and applies ``key.path=value`` overrides
(values parsed as YAML, list items addressed by index: ``model.layers.0.channels=64``).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from rate_ref.config import ConfigError, from_dict, to_dict
from rate_ref.network import ModelConfig


@dataclass(frozen=True)
class MethodConfig:
    """How gradients are computed. T1: free-phase steps; T2: nudged-phase steps; K: BPTT truncation.

    ``mode`` (schedule of one step): sync (every layer reads the previous step's states), evenodd
    (layers 1, 3, … then 2, 4, … from the fresh ones), forward (layers 1, 2, …, N in turn: layer n
    reads layer n−1 of this step and layer n+1 of the previous one — an exported NIR graph's schedule).
    """
    name: Literal["ep", "bptt"] = "ep"
    estimator: Literal["symmetric", "one_sided", "random_sign"] = "symmetric"
    beta: float = 1.0
    T1: int = 30
    T2: int = 10
    K: int | None = None
    mode: Literal["sync", "evenodd", "forward"] = "sync"   # see the docstring
    eval_T1: int | None = None
    vf_rule: Literal["new", "old"] = "new"
    warm_start: Literal["none", "persistent"] = "none"   # persistent: each example's free phase starts where its last one ended
    tol: float | None = None              # rate phases stop once max|s_{t+1} − s_t| < tol (at most T1 / T2 steps)

    def validate(self, where: str = "method") -> None:
        if self.T1 < 1 or self.T2 < 1:
            raise ConfigError(f"{where}: T1 and T2 must be ≥ 1, got T1 = {self.T1}, T2 = {self.T2}")
        if self.eval_T1 is not None and self.eval_T1 < 1:
            raise ConfigError(f"{where}.eval_T1: must be ≥ 1, got {self.eval_T1}")
        if self.tol is not None and not self.tol > 0:
            raise ConfigError(f"{where}.tol: must be > 0 (or null for fixed T1 / T2), got {self.tol}")
        if self.name == "ep" and not self.beta > 0:
            raise ConfigError(f"{where}.beta: must be > 0 for the {self.estimator} estimator "
                              f"(the estimator sets the signs of the nudged phases), got {self.beta}")
        if self.K is not None and not 0 < self.K <= self.T1:
            raise ConfigError(f"{where}.K: BPTT truncation needs 0 < K ≤ T1 ({self.T1}), got {self.K}")

    @property
    def bptt_K(self) -> int:
        return self.K if self.K is not None else min(self.T2, self.T1)

    @property
    def inference_T1(self) -> int:
        return self.eval_T1 if self.eval_T1 is not None else self.T1


@dataclass(frozen=True)
class SpikingConfig:
    """Spiking neurons and local rule (DESIGN §2). Times are in time steps.

    NIR-exact profile (the semantics an exported NIR graph runs, ``spiking_ep.export.NIR_PROFILE``):
    ``reset: zero``, ``v_floor: null``, ``v_ceiling: null``, ``tau_syn: null``, ``rate_estimate: count``
    and ``method.mode: forward``; see docs/export.md.
    """
    neuron: Literal["if", "lif"] = "if"
    v_threshold: float | None = None      # default: model.theta, so rates match σ
    tau_mem: float | None = None          # LIF membrane time constant; None = no leak
    tau_syn: float | None = None          # synaptic current filter; None = raw spikes
    v_floor: float | None = -1.0          # membrane floor in units of v_threshold; None = unbounded below
    v_ceiling: float | None = 2.0         # membrane ceiling (after reset) in units of v_threshold; None = unbounded
    reset: Literal["subtract", "zero"] = "subtract"   # after a spike v ← v − θ, or v ← 0 (NIR's IF/LIF; rate becomes 1/⌈θ/u⌉)
    rate_estimate: Literal["count", "charge"] = "count"   # count: spikes/window; charge: (spikes + Δv/θ)/window
    tau_nudge: float = 5.0                # time constant of the output rate trace that the nudge reads
    window: int | None = None             # rate window at the end of each phase; default: last half of the free phase, whole nudged phases
    rule: Literal["rates", "stdp"] = "rates"
    tau_trace: float = 20.0               # STDP trace time constant
    surrogate: Literal["fast_sigmoid", "atan"] = "fast_sigmoid"   # spiking BPTT: snntorch surrogate gradient
    surrogate_slope: float = 5.0          # its slope, per unit of (v − θ)/θ

    def validate(self, where: str = "spiking") -> None:
        for key in ("v_threshold", "tau_mem", "tau_syn"):
            v = getattr(self, key)
            if v is not None and not v > 0:
                raise ConfigError(f"{where}.{key}: must be > 0 (or null), got {v}")
        if self.window is not None and self.window < 1:
            raise ConfigError(f"{where}.window: must be ≥ 1 step, got {self.window}")
        if self.v_floor is not None and self.v_floor > 0:
            raise ConfigError(f"{where}.v_floor: must be ≤ 0 (in units of v_threshold), got {self.v_floor}")
        if self.v_ceiling is not None and self.v_ceiling < 1:
            raise ConfigError(f"{where}.v_ceiling: must be ≥ 1 (in units of v_threshold), got {self.v_ceiling}")
        for key in ("tau_trace", "tau_nudge", "surrogate_slope"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{where}.{key}: must be > 0 steps, got {getattr(self, key)}")


@dataclass(frozen=True)
class OptimConfig:
    """SGD with momentum; ``lrs``: one learning rate per layer, then one for the readout (if any)."""
    lrs: tuple[float, ...]
    momentum: float = 0.9
    weight_decay: float = 0.0
    nesterov: bool = False
    scheduler: Literal["cosine", "none"] = "cosine"
    T_max: int | None = None              # epochs; default: train.epochs
    eta_min: float = 1e-5

    def validate(self, where: str = "optim") -> None:
        bad = [f"{where}.lrs[{i}] = {v}" for i, v in enumerate(self.lrs) if not v >= 0]
        if bad:
            raise ConfigError(f"{', '.join(bad)}: learning rates must be ≥ 0 (a negative rate ascends the loss)")
        for key in ("momentum", "weight_decay", "eta_min"):
            if not getattr(self, key) >= 0:
                raise ConfigError(f"{where}.{key}: must be ≥ 0, got {getattr(self, key)}")
        if self.momentum >= 1:
            raise ConfigError(f"{where}.momentum: must be < 1, got {self.momentum}")
        if self.T_max is not None and self.T_max < 1:
            raise ConfigError(f"{where}.T_max: must be ≥ 1 epoch, got {self.T_max}")


@dataclass(frozen=True)
class DataConfig:
    """Dataset and augmentation. ``root`` else env SPIKING_EP_DATA else the user cache dir.

    Normalisation: x ↦ (x/255 − mean) / (std · std_scale) per channel, mean the dataset's and std
    ``std`` or the dataset's (CIFAR-10: 0.247, 0.2435, 0.2616). Augmentation (training only): a
    random crop shifting each image by up to ``crop_padding`` pixels, the uncovered border filled
    with zeros (black) or, with ``crop_pad_mode: edge``, the image's edge pixels repeated
    (torchvision's ``RandomCrop(padding_mode="edge")``), then a random horizontal flip (``hflip``).
    """
    name: Literal["mnist", "fashion_mnist", "cifar10"] = "mnist"
    root: str | None = None
    allow_embedded: bool = False          # fall back to the MNIST sample shipped in the package
    train_subset: int | None = None
    test_subset: int | None = None
    crop_padding: int = 0
    crop_pad_mode: Literal["zeros", "edge"] = "zeros"   # crop padding: black, or edge pixels repeated (the paper)
    hflip: bool = False
    std: tuple[float, ...] | None = None  # per-channel std, [0, 1] pixel scale; default the dataset's
    std_scale: float = 1.0                # multiplies the std; the paper: 3 × (0.2023, 0.1994, 0.2010) on CIFAR-10

    def validate(self, where: str = "data") -> None:
        for key in ("train_subset", "test_subset"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise ConfigError(f"{where}.{key}: must be ≥ 1 (or null for the whole split), got {v}")
        if self.crop_padding < 0:
            raise ConfigError(f"{where}.crop_padding: must be ≥ 0 pixels, got {self.crop_padding}")
        if not self.std_scale > 0:
            raise ConfigError(f"{where}.std_scale: must be > 0, got {self.std_scale}")
        if self.std is not None and (not self.std or not all(v > 0 for v in self.std)):
            raise ConfigError(f"{where}.std: one value > 0 per image channel (or null for the dataset's), "
                              f"got {list(self.std)}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 500
    seed: int = 0
    device: str = "auto"                  # auto | cpu | cuda | cuda:N
    dtype: Literal["float32", "float64"] = "float32"
    threads: int | None = None
    out_dir: str = "runs"
    run_name: str | None = None
    checkpoint_every_minutes: float = 10.0
    checkpoint_every_batches: int = 0     # 0 = only by time and at epoch ends
    save_epoch_weights: bool = False      # also keep weights-epochNNN.pt (NNN = 000 for the initial weights)
    channels_last: bool | None = None     # NHWC image batches and states; default: on for conv networks (faster convolutions)
    precision: Literal["float32", "tf32", "bf16"] = "float32"   # tf32 / bf16-autocast convolutions (spiking_ep.accel)
    compile: bool = False                 # torch.compile the step functions (a GPU option)
    on_nonfinite: Literal["stop", "skip"] = "stop"
    stop_at_test_error: float | None = None   # end training after the first epoch whose test error ≤ this (time-to-accuracy runs)

    def validate(self, where: str = "train") -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError(f"{where}: epochs, batch_size and eval_batch_size must be ≥ 1")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"{where}.threads: must be ≥ 1 (or null: the cores not already busy), got {self.threads}")
        if self.checkpoint_every_minutes <= 0 or self.checkpoint_every_batches < 0:
            raise ConfigError(f"{where}: checkpoint_every_minutes must be > 0 and checkpoint_every_batches ≥ 0")
        if self.stop_at_test_error is not None and not 0.0 <= self.stop_at_test_error <= 1.0:
            raise ConfigError(f"{where}.stop_at_test_error: a test error fraction in [0, 1] (or null), "
                              f"got {self.stop_at_test_error}")


ARMS = ("rate_ep", "bptt", "spiking_rates", "spiking_stdp", "spiking_bptt")
Arm = Literal["rate_ep", "bptt", "spiking_rates", "spiking_stdp", "spiking_bptt"]


@dataclass(frozen=True)
class ArmOverride:
    """Extra ``key.path=value`` settings for one arm of a comparison (e.g. a longer T1 for one arm)."""
    arm: Arm
    set: tuple[str, ...] = ()


@dataclass(frozen=True)
class CompareConfig:
    """``spiking-ep compare``: the arms trained on the config's network, data and budget.

    The ``method`` section is the rate-EP arm (β, T1, T2, mode, tol, warm start, eval_T1); BPTT uses
    the same T1 and K = method.K (default T2). The spiking arms (EP with the ``rates`` / ``stdp``
    rule, surrogate-gradient BPTT) use ``spiking_T1`` / ``spiking_T2`` / ``spiking_eval_T1``
    (default: method's) and the ``spiking`` section; spiking BPTT backpropagates through the last
    ``spiking_bptt_K`` steps (default: the last half of the free phase, the window inference reads).
    """
    arms: tuple[Arm, ...] = ARMS
    spiking_T1: int | None = None
    spiking_T2: int | None = None
    spiking_eval_T1: int | None = None
    spiking_bptt_K: int | None = None
    overrides: tuple[ArmOverride, ...] = ()
    grad_batches: int = 2                 # fixed training batches for the gradient agreement
    grad_batch_size: int = 64
    grad_epochs: tuple[int, ...] | None = None   # rate-EP snapshots to compare at; default: init, middle, end
    fixed_point_T1: tuple[int, ...] = (10, 20, 40, 80, 160)
    fixed_point_images: int = 256
    conversion_steps: tuple[int, ...] = (10, 20, 40, 80)
    conversion_test_subset: int | None = 2000     # test images for the conversion sweeps (None: all)

    def validate(self, where: str = "compare") -> None:
        if not self.arms or len(set(self.arms)) != len(self.arms):
            raise ConfigError(f"{where}.arms: a non-empty list of distinct arms from {list(ARMS)}, got {list(self.arms)}")
        for key in ("spiking_T1", "spiking_T2", "spiking_eval_T1", "spiking_bptt_K", "conversion_test_subset"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise ConfigError(f"{where}.{key}: must be ≥ 1 (or null), got {v}")
        for key in ("grad_batches", "grad_batch_size", "fixed_point_images"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{where}.{key}: must be ≥ 1, got {getattr(self, key)}")
        for key in ("fixed_point_T1", "conversion_steps"):
            if not getattr(self, key) or any(t < 1 for t in getattr(self, key)):
                raise ConfigError(f"{where}.{key}: a non-empty list of step counts ≥ 1, got {list(getattr(self, key))}")
        if self.grad_epochs is not None and any(e < 0 for e in self.grad_epochs):
            raise ConfigError(f"{where}.grad_epochs: epochs ≥ 0 (0 = the initial weights), got {list(self.grad_epochs)}")


@dataclass(frozen=True)
class Config:
    model: ModelConfig
    optim: OptimConfig
    method: MethodConfig = field(default_factory=MethodConfig)
    spiking: SpikingConfig = field(default_factory=SpikingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)

    def validate(self, where: str = "") -> None:
        n_groups = len(self.model.layers) + (1 if self.model.loss == "cross_entropy" else 0)
        if len(self.optim.lrs) != n_groups:
            raise ConfigError(
                f"optim.lrs: {len(self.optim.lrs)} learning rates given, {n_groups} needed "
                f"(one per layer{' plus one for the readout' if self.model.loss == 'cross_entropy' else ''})")
        if self.data.std is not None and len(self.data.std) != self.model.input_shape[0]:
            raise ConfigError(f"data.std: {len(self.data.std)} values given, the input has "
                              f"{self.model.input_shape[0]} channels (model.input_shape)")
        if (self.model.kind == "rate" and self.model.loss == "squared_error" and self.method.name == "ep"
                and self.method.beta >= self.model.theta):
            raise ConfigError(
                f"method.beta: {self.method.beta:g} ≥ model.theta ({self.model.theta:g}) with loss squared_error: the "
                f"nudge β(y − s_N) feeds the output back onto itself with slope −β/θ ≤ −1, so the nudged phases "
                f"oscillate instead of settling; use beta < theta (the paper uses 0.5 with θ = 1)")
        if self.model.kind == "spiking":
            for i, lc in enumerate(self.model.layers):
                if lc.type == "conv" and lc.pool == "max":
                    raise ConfigError(
                        f"model.layers[{i}].pool: max pooling is not supported by spiking models (its unpooling "
                        f"mismatches spike trains, and NIR has no max pooling); use pool: avg")
            if self.model.unidirectional:
                raise ConfigError("model.unidirectional: not supported for spiking models yet")
        if self.method.tol is not None and self.model.kind == "spiking" and self.method.name == "ep":
            raise ConfigError("method.tol: early stopping applies to rate phases (and BPTT's graph-free steps); "
                              "spiking phases run their full T1 / T2 (their state never stops changing)")


def config_from_dict(data: dict, source: str = "config") -> Config:
    """Dict → :class:`Config`; errors are prefixed with ``source`` (the file name)."""
    try:
        return from_dict(Config, data)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def _apply_override(tree: dict, item: str, source: str) -> None:
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key.path=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {key}: cannot parse value {raw!r}: {e}") from None
    parts = key.strip().split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"--set {key}: '{where}' is not an index of a {len(node)}-item list")
            node = node[int(part)]
        else:
            if part not in node or node[part] is None:
                node[part] = {}
            node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        if not last.isdigit() or int(last) >= len(node):
            raise ConfigError(f"--set {key}: '{last}' is not an index of a {len(node)}-item list")
        node[int(last)] = value
    else:
        node[last] = value


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read YAML ``path`` (or the embedded default when None) and apply ``--set`` overrides."""
    if path is None:
        from importlib import resources
        text = resources.files("spiking_ep").joinpath("assets/default.yaml").read_text()
        source = "embedded default config"
    else:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        text, source = path.read_text(), str(path)
    try:
        tree = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {e}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections (model, optim, ...)")
    tree = copy.deepcopy(tree)
    for item in overrides:
        _apply_override(tree, item, source)
    return config_from_dict(tree, source)


def dump_config(cfg: Config) -> str:
    """The resolved config as YAML (loadable again by :func:`load_config`)."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
