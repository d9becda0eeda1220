"""The metric gate: is this build healthy, and should its model replace the champion? (pure logic)

Two questions, kept apart as MLflow's model validation keeps them (``MetricThreshold``: threshold,
min_absolute_change, min_relative_change, greater_is_better, against a baseline model). All
figures are ``gate.metric`` (f1, roc_auc, accuracy, precision, recall; rmse, mae, r2) on the test
rows, the candidate and every reference model scored on the *same* rows.

**Healthy** (otherwise the verdict is ``failed`` and the build fails, exit 1):

* ``threshold``: the candidate reaches ``gate.threshold`` (at most, for a lower-is-better metric);
* ``baseline``: it beats ``gate.baseline`` (``majority_class``, ``mean`` for regression, or a
  registered ``models:/NAME/VERSION``) by ``gate.min_delta``, in the metric's units;
* ``not_worse``: it is not *significantly worse* than the champion: the ``1 - gate.alpha``
  paired-bootstrap interval of the difference lies entirely on the worse side and (classifiers) the
  paired McNemar test agrees at ``gate.alpha``.

**Promotable** (otherwise ``not_promotable``: a healthy build, exit 0, that `mlnb promote` refuses):
there is no champion yet, or the candidate cuts the champion's *error* (``1 - value`` for a metric
bounded by 1, the value itself for rmse/mae) by ``gate.min_relative_change`` and improves the
metric by at least ``gate.min_absolute_change`` (and by something); with
``gate.require_significance`` its interval must also lie entirely on the better side. An error cut
stays reachable near the ceiling: against F1 0.9889 a 20 % cut needs F1 0.9911, where "2 points
more" would need 1.0089.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mlnb.errors import EnvError

FAILED, NOT_PROMOTABLE, PROMOTABLE = "failed", "not_promotable", "promotable"
VERDICTS = (PROMOTABLE, NOT_PROMOTABLE, FAILED)
EPS = 1e-9  # float noise: a cut of exactly gate.min_relative_change counts
RENAMED = {"min_f1": "gate.threshold (with gate.metric: f1)"}


@dataclass(frozen=True)
class GateConfig:
    metric: str = "f1"
    threshold: float | None = 0.9
    baseline: str = "majority_class"
    min_delta: float = 0.02
    alpha: float = 0.05
    min_relative_change: float = 0.2
    min_absolute_change: float = 0.0
    require_significance: bool = False
    greater_is_better: bool | None = None  # None: the metric's own direction
    bootstrap: int = 1000
    seed: int = 0

    @classmethod
    def from_env(cls, gate: Any, source: str = "params.yaml") -> GateConfig:
        """Check the ``gate:`` section (one line naming the key and value on any problem)."""
        from mlnb.core.metrics import METRICS

        if not isinstance(gate, dict):
            raise EnvError(f"{source}: gate: expected a mapping, got {gate!r}")
        known = {f.name for f in fields(cls)}
        for key in gate:
            if key in RENAMED:
                raise EnvError(f"{source}: gate.{key}: renamed: use {RENAMED[key]}")
            if key not in known:
                raise EnvError(f"{source}: gate.{key}: unknown key (known: {', '.join(sorted(known))})")
        values = {**asdict(cls()), **gate}
        metric = values["metric"]
        if metric not in METRICS:
            raise EnvError(f"{source}: gate.metric: expected one of {', '.join(METRICS)}, got {metric!r}")
        numbers = ("min_delta", "alpha", "min_relative_change", "min_absolute_change")
        for key in (*numbers, "threshold"):
            value = values[key]
            if (value is None and key == "threshold") or (isinstance(value, int | float)
                                                          and not isinstance(value, bool)):
                continue
            raise EnvError(f"{source}: gate.{key}: expected a number, got {value!r}")
        for key in ("bootstrap", "seed"):
            if not isinstance(values[key], int) or isinstance(values[key], bool) or values[key] < 0:
                raise EnvError(f"{source}: gate.{key}: expected a whole number >= 0, got {values[key]!r}")
        for key in ("require_significance", "greater_is_better"):
            if not (isinstance(values[key], bool) or (key == "greater_is_better" and values[key] is None)):
                raise EnvError(f"{source}: gate.{key}: expected true or false, got {values[key]!r}")
        if not 0 < values["alpha"] < 1:
            raise EnvError(f"{source}: gate.alpha: must be between 0 and 1, got {values['alpha']!r}")
        if values["min_relative_change"] >= 1:
            raise EnvError(f"{source}: gate.min_relative_change: must be below 1 (a 100 % error cut), "
                           f"got {values['min_relative_change']!r}")
        direction = METRICS[metric].greater_is_better
        if values["greater_is_better"] not in (None, direction):
            raise EnvError(f"{source}: gate.greater_is_better: {metric} is {'higher' if direction else 'lower'}-is-"
                           f"better, got {values['greater_is_better']!r}")
        baseline = values["baseline"]
        trivial = "mean" if METRICS[metric].needs == "values" else "majority_class"
        if not isinstance(baseline, str) or not (baseline == trivial or baseline.startswith("models:/")):
            raise EnvError(f"{source}: gate.baseline: expected {trivial} or models:/NAME/VERSION for {metric}, "
                           f"got {baseline!r}")
        return cls(**{**values, "greater_is_better": direction,
                      **{k: float(values[k]) for k in numbers},
                      "threshold": None if values["threshold"] is None else float(values["threshold"])})


@dataclass(frozen=True)
class Check:
    name: str  # threshold | baseline | not_worse | beats_champion
    held: bool
    detail: str


@dataclass(frozen=True)
class GateResult:
    verdict: str
    reason: str
    metric: str
    candidate: float
    checks: list[Check] = field(default_factory=list)
    baseline: dict[str, Any] | None = None
    champion: dict[str, Any] | None = None
    significance: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    rows: int = 0
    config_changes: list[str] | None = None  # set by the build: gate settings other than the committed ones
    # the gate product as read (:meth:`from_dict`): :meth:`to_dict` gives it back unchanged, plus the build's
    # judgement (verdict, reason, promotable, config_changes) once there is one
    source: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def passed(self) -> bool:
        """The build is healthy (``mlnb.gate_passed``, for readers of the old tag)."""
        return self.verdict != FAILED

    @property
    def promotable(self) -> bool:
        return self.verdict == PROMOTABLE

    def to_dict(self) -> dict[str, Any]:
        if self.source is not None:
            if self.config_changes is None:
                return dict(self.source)
            return {**self.source, "verdict": self.verdict, "reason": self.reason, "promotable": self.promotable,
                    "config_changes": list(self.config_changes)}
        data = asdict(self)
        del data["config_changes"], data["source"]
        data.update(passed=self.passed, promotable=self.promotable)
        if self.config_changes is not None:
            data["config_changes"] = list(self.config_changes)
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "gate.json") -> GateResult:
        """A gate product (what :meth:`to_dict` wrote, or a project's own gate task's ``{"passed": ...}``);
        an :class:`~mlnb.errors.EnvError` naming ``source`` and the field when it is not one."""
        if not isinstance(data, dict):
            raise EnvError(f"{source}: expected a JSON object, got {type(data).__name__}")
        verdict = data.get("verdict") or (PROMOTABLE if data.get("passed") else FAILED)
        if verdict not in VERDICTS:
            raise EnvError(f"{source}: verdict: expected one of {', '.join(VERDICTS)}, got {verdict!r}"[:300])
        checks = data.get("checks") or []
        if not isinstance(checks, list) or not all(isinstance(c, dict) for c in checks):
            raise EnvError(f"{source}: checks: expected a list of objects, got {checks!r}"[:300])
        candidate = data.get("candidate", math.nan)
        if not isinstance(candidate, int | float) or isinstance(candidate, bool):
            raise EnvError(f"{source}: candidate: expected a number, got {candidate!r}"[:300])
        changes = data.get("config_changes")
        return cls(str(verdict), str(data.get("reason", "")), str(data.get("metric", "")), float(candidate),
                   [Check(str(c.get("name", "")), bool(c.get("held")), str(c.get("detail", ""))) for c in checks],
                   _mapping(data, "baseline", source), _mapping(data, "champion", source),
                   _mapping(data, "significance", source) or {}, _mapping(data, "config", source) or {},
                   int(data.get("rows") or 0), [str(c) for c in changes] if isinstance(changes, list) else None,
                   data)


def _mapping(data: dict[str, Any], key: str, source: str) -> dict[str, Any] | None:
    value = data.get(key)
    if value is not None and not isinstance(value, dict):
        raise EnvError(f"{source}: {key}: expected an object, got {value!r}"[:300])
    return value


def _f(value: float) -> str:
    return f"{value:.4f}"


def _needed(value: float, up: bool) -> str:
    """The value a candidate needs, rounded to 4 places on the safe side (0.99112 -> 0.9912)."""
    scaled = value * 10_000
    return _f((math.ceil(scaled - EPS) if up else math.floor(scaled + EPS)) / 10_000)


def _beats(m: Any, candidate: float, champion: float, ci: list[float] | None, champion_name: str,
           config: GateConfig) -> tuple[bool, str]:
    """The promotable margin: (beats it, one-line account with the figures)."""
    up, name = m.greater_is_better, m.name
    err_c, err_n = m.error(champion), m.error(candidate)
    cut = (err_c - err_n) / err_c if err_c > 0 else (0.0 if err_n <= 0 else -1.0)
    gain = m.gain(candidate, champion)
    needed = m.from_error(err_c * (1 - config.min_relative_change))
    needed = max(needed, champion + config.min_absolute_change) if up else min(needed, champion -
                                                                              config.min_absolute_change)
    cut_ok = gain > 0 and cut >= config.min_relative_change - EPS
    why = (f"{name} {_f(candidate)} vs {champion_name} {_f(champion)}: error {err_c:.4f} -> {err_n:.4f}, "
           + (f"cut {100 * cut:.0f}%" if cut >= 0 else f"up {-100 * cut:.0f}%")
           + f" {'>=' if cut_ok else '<'} gate.min_relative_change {100 * config.min_relative_change:.0f}%")
    problems = [] if cut_ok else [f"needs {name} {_needed(needed, up)}"]
    if cut_ok and gain < config.min_absolute_change - EPS:
        problems.append(f"gain {gain:+.4f} < gate.min_absolute_change {_f(config.min_absolute_change)}")
    if config.require_significance and ci is not None and not (ci[0] > 0 if up else ci[1] < 0):
        problems.append(f"not significantly better (interval [{ci[0]:+.4f}, {ci[1]:+.4f}])")
    return not problems, why + (f" ({'; '.join(problems)})" if problems else "")


def decide(candidate: float, config: GateConfig, *, baseline: float | None = None,
           champion: float | None = None, champion_ci: list[float] | None = None, champion_name: str = "champion",
           champion_note: str | None = None, champion_p: float | None = None) -> tuple[str, str, list[Check]]:
    """The verdict from the figures: (verdict, one-line reason, checks). ``champion_ci`` is the
    interval of candidate - champion, ``champion_p`` the paired McNemar p-value when there is one
    (then both must say "worse"); ``champion_note`` says why the champion could not be scored."""
    from mlnb.core.metrics import METRICS

    m = METRICS[config.metric]
    name, up = m.name, m.greater_is_better
    checks: list[Check] = []
    if config.threshold is not None:
        held = candidate >= config.threshold if up else candidate <= config.threshold
        word = ("reaches" if held else "is below") if up else ("is within" if held else "is above")
        checks.append(Check("threshold", held, f"{name} {_f(candidate)} {word} gate.threshold {_f(config.threshold)}"))
    if baseline is not None:
        gain = m.gain(candidate, baseline)
        held = gain >= config.min_delta
        checks.append(Check("baseline", held, f"{'beats' if gain > 0 else 'does not beat'} {config.baseline} "
                                              f"({_f(baseline)}) by {gain:+.4f}{' >=' if held else ', needs'} "
                                              f"gate.min_delta {_f(config.min_delta)}"))
    if champion is not None and champion_ci is not None:
        lo, hi = champion_ci
        worse = (hi < 0 if up else lo > 0) and (champion_p is None or champion_p < config.alpha)
        paired = "" if champion_p is None else f", McNemar p {champion_p:.3f}"
        level = f"{100 * (1 - config.alpha):g}%"
        verb = "significantly worse than" if worse else "not significantly worse than"
        checks.append(Check("not_worse", not worse, f"{name} {_f(candidate)} is {verb} {champion_name} "
                                                    f"{_f(champion)} ({level} interval of the difference "
                                                    f"[{lo:+.4f}, {hi:+.4f}]{paired})"))
    healthy = all(c.held for c in checks)
    if champion is None:
        promotable = healthy and champion_note is None
        why = champion_note or "no champion yet"
    else:
        beats, why = _beats(m, candidate, champion, champion_ci, champion_name, config)
        checks.append(Check("beats_champion", beats, why))
        promotable = healthy and beats
    failing = [c.detail for c in checks if not c.held and c.name != "beats_champion"]
    if not healthy:
        return FAILED, "; ".join(failing), checks
    health = "; ".join(c.detail for c in checks if c.name != "beats_champion")
    verdict = PROMOTABLE if promotable else NOT_PROMOTABLE
    return verdict, f"{why}; healthy: {health}" if health else why, checks


def evaluate_gate(y_true: Any, candidate_out: Any, config: GateConfig, *, champion_out: Any = None,
                  champion_info: dict[str, Any] | None = None, champion_note: str | None = None,
                  baseline_out: Any = None, labels: dict[str, Any] | None = None) -> GateResult:
    """Score the candidate, the baseline and the champion (``*_out``: labels, scores or values, as
    ``gate.metric`` needs) on the same rows, with paired tests against the champion (or, without
    one, the baseline), and decide. ``labels`` (classification: ``candidate``, ``champion``,
    ``baseline`` predicted classes) add a McNemar test against the same reference."""
    from mlnb.core.metrics import bootstrap_diff, mcnemar, metric_value

    name = config.metric
    cand = metric_value(name, y_true, candidate_out)
    base = metric_value(name, y_true, baseline_out) if baseline_out is not None else None
    champ = metric_value(name, y_true, champion_out) if champion_out is not None else None
    reference, ref_name = (champion_out, "champion") if champion_out is not None else (baseline_out, config.baseline)
    significance: dict[str, Any] = {}
    if reference is not None:
        significance = {"reference": ref_name, "bootstrap": bootstrap_diff(
            name, y_true, candidate_out, reference, config.bootstrap, config.seed, config.alpha)}
        ref_labels = (labels or {}).get("champion" if champion_out is not None else "baseline")
        if labels and labels.get("candidate") is not None and ref_labels is not None:
            significance["mcnemar"] = mcnemar(y_true, labels["candidate"], ref_labels)
    info = dict(champion_info or {})
    label = f"champion v{info['version']}" if info.get("version") else "champion"
    ci = significance["bootstrap"]["ci"] if champion_out is not None else None
    p = significance.get("mcnemar", {}).get("p_value") if champion_out is not None else None
    verdict, reason, checks = decide(cand, config, baseline=base, champion=champ, champion_ci=ci, champion_p=p,
                                     champion_name=label, champion_note=champion_note)
    champion = None
    if champion_info is not None:
        champion = {**info, "value": champ, **({"note": champion_note} if champion_note else {})}
    baseline = {"model": config.baseline, "value": base} if base is not None else None
    return GateResult(verdict, reason, name, cand, checks, baseline, champion, significance, asdict(config),
                      len(y_true))


def headline(gate: GateResult | dict[str, Any]) -> str:
    """The one line a build prints: ``gate: <verdict>: <reason>`` (of a result, or of its dict in a notebook)."""
    if isinstance(gate, GateResult):
        return f"gate: {gate.verdict.replace('_', ' ')}: {gate.reason}"
    verdict = str(gate.get("verdict") or (PROMOTABLE if gate.get("passed") else FAILED))
    return f"gate: {verdict.replace('_', ' ')}: {gate.get('reason', '')}"


def verdict_of(tags: dict[str, str]) -> str | None:
    """A build run's verdict from its tags (``mlnb.gate.verdict``; a build from before verdicts has only
    ``mlnb.gate_passed``, which then meant promotable); None when the build has no gate result."""
    verdict = tags.get("mlnb.gate.verdict")
    if verdict in VERDICTS:
        return verdict
    return {"true": PROMOTABLE, "false": FAILED}.get(tags.get("mlnb.gate_passed", ""))
