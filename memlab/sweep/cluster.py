"""What a cluster offers, and the trials of a study it cannot place.

A cluster is a list of node kinds: labels and, where known, GPUs and CPUs per node. They come
from a cluster file (the Ray cluster launcher's node types, KubeRay's head and worker groups:
the nodes an autoscaler can start) or from a running cluster's alive nodes. `refusals` names,
in one line per study key, each selector no kind satisfies and each trial or actor that asks
for more GPUs (or CPUs, where known) than any node its selector allows has; `memlab plan`,
`run` and `submit` refuse such a study (exit 2) before anything starts, where Ray would wait
for ever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from memlab.config.expand import Study
from memlab.config.keys import resolved
from memlab.config.load import ConfigError
from memlab.config.placement import matches, selectors, show

DEFAULT_LABEL_PREFIX = "ray.io/"  # labels Ray adds to every node (node id, ...): not shown


@dataclass
class NodeKind:
    """Nodes alike for placement: `name` (a node type, or where alive nodes run), `labels`,
    GPUs and CPUs per node (None: not declared; the autoscaler detects it)."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)
    gpus: float | None = None
    cpus: float | None = None

    def __str__(self) -> str:
        own = {k: v for k, v in self.labels.items() if not k.startswith(DEFAULT_LABEL_PREFIX)}
        gpus = "" if self.gpus is None else f", {self.gpus:g} GPU"
        return f"{self.name} {show(own)}{gpus}"


def _quantity(value) -> float | None:
    """A Kubernetes CPU / GPU quantity ("8", 8, "500m") as a number."""
    if value is None:
        return None
    text = str(value).strip().strip('"')
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    return float(text)


def _kuberay_group(name: str, group: dict) -> NodeKind:
    """A KubeRay head or worker group as the autoscaler reads it: the group's `labels` field
    (KubeRay 1.5+), GPUs and CPUs from rayStartParams or the Ray container's limits."""
    start = group.get("rayStartParams") or {}
    limits = group["template"]["spec"]["containers"][0].get("resources", {}).get("limits", {})
    declared = group.get("resources") or {}
    gpus = declared.get("GPU", start.get("num-gpus", limits.get("nvidia.com/gpu", 0)))
    cpus = declared.get("CPU", start.get("num-cpus", limits.get("cpu")))
    return NodeKind(name, dict(group.get("labels") or {}), _quantity(gpus), _quantity(cpus))


def from_file(path: str | Path) -> list[NodeKind]:
    """The node kinds of a Ray cluster launcher YAML (`available_node_types`) or of the
    RayCluster / RayJob manifests of a KubeRay YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError([f"--cluster {path}: no such file"])
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    except yaml.YAMLError as e:
        raise ConfigError([f"--cluster {path}: not YAML ({e})".replace("\n", " ")]) from None
    kinds: list[NodeKind] = []
    for doc in docs:
        if "available_node_types" in doc:  # the cluster launcher
            for name, t in doc["available_node_types"].items():
                res = t.get("resources") or {}
                kinds.append(NodeKind(name, dict(t.get("labels") or {}),
                                      _quantity(res.get("GPU")), _quantity(res.get("CPU"))))
        elif doc.get("kind") in ("RayCluster", "RayJob"):
            spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
            kinds.append(_kuberay_group("head", spec["headGroupSpec"]))
            kinds += [_kuberay_group(g["groupName"], g) for g in spec.get("workerGroupSpecs", [])]
    if not kinds:
        raise ConfigError([f"--cluster {path}: neither a Ray cluster launcher file "
                           "(available_node_types) nor a KubeRay RayCluster / RayJob"])
    return kinds


def _kinds_of_nodes(nodes: list[tuple[bool, dict, dict]]) -> list[NodeKind]:
    """(is head, labels, total resources) of alive nodes -> one kind per distinct labels, GPUs
    and CPUs ("head", "2 nodes")."""
    groups: dict[tuple, int] = {}
    for head, labels, res in nodes:
        own = {k: v for k, v in labels.items() if k != "ray.io/node-id"}
        key = (head, tuple(sorted(own.items())), res.get("GPU", 0.0), res.get("CPU", 0.0))
        groups[key] = groups.get(key, 0) + 1
    return [NodeKind("head" if head else f"{n} node{'s' if n > 1 else ''}", dict(labels),
                     float(gpus), float(cpus))
            for (head, labels, gpus, cpus), n in groups.items()]


def connected_kinds() -> list[NodeKind]:
    """The alive nodes of the Ray cluster this process is connected to (ray.init)."""
    import ray

    return _kinds_of_nodes([("node:__internal_head__" in n["Resources"], n.get("Labels") or {},
                             n["Resources"]) for n in ray.nodes() if n["Alive"]])


def kinds_at(address: str) -> list[NodeKind]:
    """The alive nodes of a running Ray cluster, by its address (GCS `host:6379` or the
    dashboard's `http://host:8265`), through Ray's State API."""
    import os

    from ray.util.state import list_nodes

    # (Ray's State API client takes $RAY_ADDRESS over the address it is given)
    saved = {k: os.environ.pop(k, None) for k in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    try:
        nodes = list_nodes(address=address, filters=[("state", "=", "ALIVE")], limit=10_000,
                           raise_on_missing_output=False)
    except Exception as e:  # noqa: BLE001  (unreachable, no dashboard: said in one line)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError([f"--address {address}: cannot list the cluster's nodes ({first})"]) \
            from None
    finally:
        os.environ.update({k: v for k, v in saved.items() if v is not None})
    return _kinds_of_nodes([(n.is_head_node, n.labels or {}, n.resources_total or {})
                            for n in nodes])


def _asks(cfg) -> list[tuple[str, str, dict, float, float]]:
    """What one trial places: (labels key, resources key, selector, GPUs that must sit on one
    node, CPUs per placed unit)."""
    t, res, a = cfg.train.strategy, cfg.reserved, cfg.attack
    sel = selectors(cfg)
    actor_key = f"resources.{t}.actor_labels" if res.actor_labels is not None \
        else f"resources.{t}.labels"
    # a trial across Ray Train workers (DeepSpeed): one ZeRO group, its GPUs on one node
    # (NVLink, as the cluster files' node types are built); each worker's CPUs
    workers = res.workers if resolved(cfg)["train_engine"] == "deepspeed" else 1
    trial = (f"resources.{t}.labels", f"resources.{t}.gpu", sel["trial"], res.gpu * workers,
             res.cpu)
    return [trial, (actor_key, "attack.actor_gpus", sel["actors"], a.actor_gpus,
                    a.actor_cpus)]


def refusals(study: Study, kinds: list[NodeKind], where: str, hint: str = "") -> list[str]:
    """One line per study key that `kinds` (the nodes of `where`) cannot satisfy; `hint` ends
    each line about labels."""
    out: dict[str, None] = {}
    listed = "; ".join(dict.fromkeys(str(k) for k in kinds))
    for trial in study.trials:
        cfg = trial.config
        for labels_key, gpu_key, sel, gpus, cpus in _asks(cfg):
            fit = [k for k in kinds if matches(sel, k.labels)]
            if not fit:
                out[f"{labels_key} {show(sel)}: no node of {where} has these labels "
                    f"(nodes: {listed}){hint}"] = None
                continue
            known = [k.gpus for k in fit if k.gpus is not None]
            if gpus > 0 and len(known) == len(fit) and gpus > max(known) + 1e-9:
                per = " (workers x gpu: one ZeRO group on one node)" \
                    if gpu_key.startswith("resources.") and cfg.reserved.workers > 1 else ""
                out[f"{gpu_key}: {gpus:g} GPU per trial{per}, but the nodes of {where} with "
                    f"{show(sel)} have at most {max(known):g}"] = None
            cpu_known = [k.cpus for k in fit if k.cpus is not None]
            if cpus > 0 and len(cpu_known) == len(fit) and cpus > max(cpu_known) + 1e-9:
                cpu_key = gpu_key.replace("gpu", "cpu")
                out[f"{cpu_key}: {cpus:g} CPU, but the nodes of {where} with {show(sel)} "
                    f"have at most {max(cpu_known):g}"] = None
    return list(out)


def check(study: Study, address: str | None = None, cluster_file: str | None = None,
          connected: bool = False) -> None:
    """Refuse (ConfigError, exit 2) a study that the cluster cannot place: the alive nodes of
    the cluster at `address` (or of the one this process is `connected` to) and the node types
    of `cluster_file` (those an autoscaler may still start). Nothing to check: no-op."""
    kinds, where = [], []
    if connected:
        kinds += connected_kinds()
        where.append(f"the Ray cluster at {address}" if address
                     else "the local Ray instance (no RAY_ADDRESS: Ray started on this machine)")
    elif address:
        kinds += kinds_at(address)
        where.append(f"the Ray cluster at {address}")
    if cluster_file:
        kinds += from_file(cluster_file)
        where.append(str(cluster_file))
    hint = "" if cluster_file or not address else \
        "; nodes an autoscaler has not started yet count with --cluster FILE"
    if where and (problems := refusals(study, kinds, " + ".join(where), hint)):
        raise ConfigError(problems)
