"""The commands on finished runs: ``eval``, ``compare``, ``plot``, ``export-nir`` and
``deploy`` (each imports what it needs in ``run``: JAX, Gymnasium and matplotlib only when
used)."""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Literal

import tyro

from spikerl_jax.config import ConfigError


class CommandError(Exception):
    """A command's failure as one line for the terminal."""


def _writing(target: str, fn, *args):
    """``fn(*args)``, with an OSError reported as a command error about ``target`` (the
    option naming what is written)."""
    try:
        return fn(*args)
    except OSError as e:
        raise CommandError(f"cannot write {target}: {e.strerror or e}") from None


@dataclasses.dataclass(frozen=True)
class Eval:
    """Run deterministic episodes of a trained run's policy."""

    run_dir: tyro.conf.Positional[str]
    """The run directory (holds config.json)."""
    episodes: int = 10
    """Episodes to run."""
    checkpoint: Literal["best", "latest"] = "best"
    """Which policy: the best evaluation's or the latest."""
    seed: int = 0
    """Seeds the episodes' resets."""
    render: str | None = None
    """Also record the first episode as this video (an .mp4)."""
    raster: str | None = None
    """Also draw every layer's spikes over the first steps of an episode (PopSAN) as this PNG."""
    json: bool = False
    """Print the result as one JSON line instead of tables."""

    def run(self) -> int:
        from spikerl_jax.export.policy import evaluate_run

        result = _writing(
            "--raster/--render",
            evaluate_run,
            self.run_dir,
            self.episodes,
            self.checkpoint,
            self.seed,
            self.render,
            self.raster,
        )
        if self.json:
            print(json.dumps(result))
        else:
            from rich.console import Console

            console = Console()
            for table in evaluation_tables(result):
                console.print(table)
            written = [result[k] for k in ("video", "raster") if k in result]
            if written:
                console.print(f"written: {', '.join(written)}", markup=False, soft_wrap=True)
        return 0


def evaluation_tables(result: dict) -> list:
    """``eval``'s result as rich tables: the episodes, and (PopSAN) each layer's spikes and
    the energy estimate per inference."""
    from rich.table import Table

    title = f"{result['run_dir']}: {result['checkpoint']} policy (step {result['step']:,})"
    episodes = Table(title=title, show_header=False)
    episodes.add_row("episodes", str(result["episodes"]))
    episodes.add_row("return", f"{result['return_mean']:.2f} ± {result['return_std']:.2f} (std)")
    episodes.add_row("episode length", f"{result['length_mean']:.1f}")
    spikes = result["spikes"]
    if spikes is None:
        return [episodes]
    t, n = spikes["timesteps"], spikes["inferences"]
    layers = Table(title=f"spikes per inference ({t} timesteps each, {n:,} inferences)")
    for column in ("layer", "neurons", "spikes", "firing rate"):
        layers.add_column(column, justify="left" if column == "layer" else "right")
    for name, layer in spikes["layers"].items():
        rate = f"{layer['firing_rate']:.3f}"
        layers.add_row(name, str(layer["neurons"]), f"{layer['spikes_per_inference']:.1f}", rate)
    energy = Table(title="estimated energy per inference", show_header=False)
    snn, ann = spikes["snn_energy_pj_per_inference"], spikes["ann_energy_pj_per_inference"]
    energy.add_row("spiking actor", f"{spikes['synops_per_inference']:,.0f} synops, {snn:,.0f} pJ")
    energy.add_row("same-size ANN", f"{spikes['ann_macs_per_inference']:,} MACs, {ann:,.0f} pJ")
    energy.add_row("ANN / spiking", f"{spikes['ann_over_snn_energy']:.2f}x")
    return [episodes, layers, energy]


@dataclasses.dataclass(frozen=True)
class Compare:
    """Speedup = T_base/T_new, Powerup = P_new/P_base, Greenup = E_base/E_new and carbon
    reduction of finished runs against the first (the base)."""

    base: tyro.conf.Positional[str]
    """The base run directory."""
    runs: tyro.conf.Positional[tuple[str, ...]]
    """Run directories compared with the base."""
    out: str | None = None
    """Writes OUT.json and OUT.csv (default: BASE/comparison)."""

    def run(self) -> int:
        from rich.console import Console

        from spikerl_jax.reporting.compare import compare_runs, comparison_table, write_comparison
        from spikerl_jax.reporting.runs import read_run

        if not self.runs:
            raise ConfigError("compare needs at least one run besides the base")
        out = self.out or os.path.join(self.base, "comparison")
        rows = compare_runs(read_run(self.base), [read_run(r) for r in self.runs])
        paths = _writing(f"--out {out}", write_comparison, rows, out)
        console = Console()
        console.print(comparison_table(rows))
        console.print(f"written: {', '.join(paths)}", markup=False)
        return 0


@dataclasses.dataclass(frozen=True)
class Plot:
    """Learning curves (mean ± std over runs differing only in seed), energy and time bars,
    and firing rates per layer of finished runs, as PNG files."""

    runs: tyro.conf.Positional[tuple[str, ...]]
    """Run directories."""
    out: str | None = None
    """Directory for the PNGs (default: the run directory for one run, plots/ for several)."""

    def run(self) -> int:
        from spikerl_jax.reporting.plots import plot_runs
        from spikerl_jax.reporting.runs import read_run

        if not self.runs:
            raise ConfigError("plot needs at least one run directory")
        out = self.out or (self.runs[0] if len(self.runs) == 1 else "plots")
        paths = _writing(f"--out {out}", plot_runs, [read_run(r) for r in self.runs], out)
        print("written: " + ", ".join(paths))
        return 0


@dataclasses.dataclass(frozen=True)
class ExportNir:
    """Export a trained PopSAN actor to NIR (Neuromorphic Intermediate Representation): its
    LIF layers as Affine + CubaLIF nodes, the population encoder and decoder as documented
    pre/post-processing in OUT.popsan.npz beside the graph (spikerl_jax/export/nir.py has the
    mapping). Needs pip install 'spikerl_jax[nir]'."""

    run_dir: tyro.conf.Positional[str]
    """The run directory."""
    out: tyro.conf.Positional[str]
    """The NIR file to write (e.g. actor.nir)."""
    checkpoint: Literal["best", "latest"] = "best"
    """Which policy: the best evaluation's or the latest."""
    dt: float = 1e-4
    """The time step (seconds) of one PopSAN timestep, which the time constants are written
    for: 1e-4 is what snnTorch's and Lava's importers assume."""
    check: bool = False
    """Also run the exported graph in every installed toolchain (snnTorch, Norse, Spyx,
    Rockpool) and print its agreement with this actor's spikes and actions."""

    def run(self) -> int:
        from rich.console import Console
        from rich.table import Table

        from spikerl_jax.export.nir import export_nir
        from spikerl_jax.export.nir_consumers import check_export

        args = (self.run_dir, self.out, self.checkpoint, self.dt)
        paths = _writing(self.out, export_nir, *args)
        print("written: " + ", ".join(paths))
        if self.check:
            table = Table(title="the exported graph in each installed toolchain (20 observations)")
            for column in ("toolchain", "loads", "spike bins equal", "max action error"):
                table.add_column(column)
            for row in check_export(self.run_dir, self.out, self.checkpoint):
                equal = (
                    f"{row['bins_equal']:.1%} ({', '.join(row['layers'])})" if row["loads"] else ""
                )
                error = f"{row['action_error']:.2g}" if row["loads"] else row["error"]
                table.add_row(row["toolchain"], str(row["loads"]), equal, error)
            Console().print(table)
        return 0


@dataclasses.dataclass(frozen=True)
class Deploy:
    """Run a trained PopSAN policy on a simulated neuromorphic chip (Loihi's fixed point,
    spikerl_jax/export/loihi.py) closed loop beside the float actor, over the same episode
    seeds, and write deploy.json: both returns, spike and action agreement, and the energy
    of a decision on the chip against the MLP actor on a CPU and a GPU (docs/neuromorphic.md)."""

    run_dir: tyro.conf.Positional[str]
    """The run directory (a PopSAN run with a checkpoint)."""
    chip: Literal["loihi"] = "loihi"
    """The chip simulated."""
    episodes: int = 10
    """Episodes on the float actor and on the chip each (the same seeds)."""
    checkpoint: Literal["best", "latest"] = "best"
    """Which policy: the best evaluation's or the latest."""
    seed: int = 0
    """Seeds the episodes' resets (seed, seed+1, ...)."""
    weight_exp: tuple[int, ...] = (0,)
    """Loihi's weight exponent (-8..7): one for every layer, or one per layer."""
    out: str | None = None
    """The JSON file written (default: RUN_DIR/deploy.json)."""

    def run(self) -> int:
        from spikerl_jax.export.deploy import deploy

        args = (self.run_dir, self.chip, self.episodes, self.checkpoint, self.seed)
        result = _writing(
            f"--out {self.out or 'RUN_DIR/deploy.json'}",
            deploy,
            *args,
            self.weight_exp,
            self.out,
        )
        fl, ch, agree = result["float"], result["on_chip"], result["agreement"]
        energy = result["energy"]
        print(
            f"{result['episodes']} episodes: float {fl['return_mean']:.1f} ± "
            f"{fl['return_std']:.1f}, {self.chip} {ch['return_mean']:.1f} ± {ch['return_std']:.1f}"
        )
        print(
            f"output spike bins identical {agree['output_spike_agreement']:.2%}, action error "
            f"{agree['action_error_mean']:.3g} mean, {agree['action_error_max']:.3g} max"
        )
        print(
            f"per decision: {self.chip} {energy['loihi']['nj']:,.0f} nJ; MLP actor CPU "
            f"{energy['mlp']['cpu_nj']:,.0f} nJ ({energy['mlp_cpu_over_loihi']:.0f}x), GPU "
            f"{energy['mlp']['gpu_nj']:,.0f} nJ ({energy['mlp_gpu_over_loihi']:.1f}x)"
        )
        print(f"written: {result['path']}")
        return 0
