"""Energy and carbon of a run's phases, measured with codecarbon's ``OfflineEmissionsTracker``.

Training alternates between two phases, ``train`` (env steps, updates, checkpoints) and
``eval`` (deterministic episodes). Each phase has its own tracker; a phase is measured as a
sequence of codecarbon tasks (one per stretch between phase switches) whose energies add up.
Before a stretch ends the device work it queued is awaited, so energy is not booked to the
next phase.

Only the offline tracker is used: the online one, without network access, silently falls
back to one fixed grid (Canada/Quebec). The grid is chosen with ``country_iso_code`` (and
``region`` for the USA and Canada).

Measuring never stops training: any tracker error turns the meter off with one warning, and
the summary says why there are no figures.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings

import jax

from spikerl_jax.config import ConfigError

PHASES = ("train", "eval")
KWH_TO_J = 3.6e6
EMISSIONS_COLUMNS = (
    "phase",
    "step",
    "duration_s",
    "energy_kwh",
    "cpu_energy_kwh",
    "gpu_energy_kwh",
    "ram_energy_kwh",
    "emissions_kg",
    "cpu_power_w",
    "gpu_power_w",
    "ram_power_w",
)


@dataclasses.dataclass
class PhaseTotals:
    """What one phase has used so far (all stretches, and earlier processes when resumed)."""

    duration_s: float = 0.0
    energy_kwh: float = 0.0
    cpu_energy_kwh: float = 0.0
    gpu_energy_kwh: float = 0.0
    ram_energy_kwh: float = 0.0
    emissions_kg: float = 0.0

    def add(self, other: PhaseTotals) -> PhaseTotals:
        return PhaseTotals(
            **{
                f.name: getattr(self, f.name) + getattr(other, f.name)
                for f in dataclasses.fields(self)
            }
        )

    def report(self) -> dict:
        """The totals plus mean power (W) = energy / duration."""
        power = self.energy_kwh * KWH_TO_J / self.duration_s if self.duration_s else None
        return {**dataclasses.asdict(self), "mean_power_w": power}


def check_grid(country_iso_code: str, region: str | None) -> None:
    """Raises ``ConfigError`` unless codecarbon has carbon data for the country (and region).

    codecarbon itself only logs an unknown country and goes on with a wrong grid.
    """
    from codecarbon.input import DataSource

    data = DataSource()
    countries = data.get_global_energy_mix_data()
    if country_iso_code not in countries:
        raise ConfigError(
            f"--energy-country {country_iso_code!r} is not an ISO 3166 alpha-3 code codecarbon "
            f"has grid data for (e.g. USA, FRA, DEU, GBR, CHN, IND; {len(countries)} in all)"
        )
    if region is None:
        return
    regional = {"USA": data.get_country_emissions_data, "CAN": data.get_country_energy_mix_data}
    if country_iso_code not in regional:
        raise ConfigError(
            f"--energy-region is only known for USA and CAN; drop it for {country_iso_code}"
        )
    regions = sorted(
        k for k in regional[country_iso_code](country_iso_code.lower()) if not k.startswith("_")
    )
    if region not in regions:
        raise ConfigError(
            f"--energy-region {region!r} is not a region of {country_iso_code}; one of: "
            + ", ".join(regions)
        )


def power_source(hardware: list[str]) -> dict:
    """How codecarbon obtains each component's power, from its hardware descriptions.

    Args:
      hardware: codecarbon's descriptions, e.g. ``["RAM()", "CPU(Intel Rapl)"]``.

    Returns:
      ``{"cpu": ..., "gpu": ..., "ram": ...}`` naming the method (RAPL, NVML or an estimate).
    """
    source = {"cpu": "not measured", "gpu": "no GPU", "ram": "not measured"}
    for item in hardware:
        if item.startswith("CPU(Intel Rapl") or "Rapl" in item:
            source["cpu"] = "RAPL (measured energy counters)"
        elif item.startswith("CPU(Cpu Load"):
            source["cpu"] = "TDP estimate scaled by CPU load (no RAPL access)"
        elif item.startswith("CPU("):
            source["cpu"] = f"TDP estimate, constant ({item})"
        elif item.startswith("GPU"):
            source["gpu"] = "NVML (measured)" if "AMD" not in item else "AMDSMI (measured)"
        elif item.startswith("RAM"):
            source["ram"] = "codecarbon RAM model (estimate from installed memory)"
        else:
            source.setdefault("other", []).append(item)
    return source


class EnergyMeter:
    """Per-phase energy and carbon of one process, added to the totals of earlier ones.

    Usage: ``begin("train")``, then ``switch("eval", step, sync)`` / ``switch("train", ...)``
    at phase changes, ``end(step, sync)`` at the end, ``report()`` for the summary.

    Args:
      country_iso_code: the grid's country (ISO 3166 alpha-3, e.g. "USA", "FRA", "DEU").
      region: a US state or Canadian province name, for those countries' regional grids.
      log: called with each finished stretch as a row of ``EMISSIONS_COLUMNS``.
      totals: per-phase totals of earlier processes of this run (``totals()``'s output).
      enabled: False makes every method a no-op and the report ``{"enabled": False}``.
    """

    def __init__(
        self,
        country_iso_code: str,
        region: str | None = None,
        log=None,
        totals: dict | None = None,
        enabled: bool = True,
    ):
        self.enabled = enabled
        self.error: str | None = None
        self._log = log
        self._phase: str | None = None
        self._totals = {p: PhaseTotals(**(totals or {}).get(p, {})) for p in PHASES}
        self._grid = {"country_iso_code": country_iso_code, "region": region}
        self._trackers: dict = {}
        if enabled:
            self._guard(self._make_trackers)

    def _make_trackers(self) -> None:
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)  # its TDP-guess warnings
        for phase in PHASES:
            self._trackers[phase] = OfflineEmissionsTracker(
                project_name=f"spikerl_jax-{phase}",
                country_iso_code=self._grid["country_iso_code"],
                region=self._grid["region"],
                output_methods=[],  # the meter writes its own per-stretch CSV
                allow_multiple_runs=True,  # one tracker per phase in this process
                log_level="error",
            )

    def _guard(self, fn):
        """Runs a tracker call; an error switches the meter off instead of raising."""
        if not self.enabled or self.error is not None:
            return None
        try:
            return fn()
        except Exception as e:  # codecarbon's failures are many and none may stop training
            self.error = f"{type(e).__name__}: {e}"
            warnings.warn(
                f"energy tracking failed ({self.error}); training continues without it",
                RuntimeWarning,
                stacklevel=3,
            )
            return None

    def begin(self, phase: str) -> None:
        """Starts measuring ``phase`` (one of ``PHASES``)."""
        self._phase = phase
        self._guard(lambda: self._trackers[phase].start_task(phase))

    def end(self, step: int, sync=None) -> None:
        """Stops the current phase after ``sync`` (a pytree of arrays) is computed."""
        if self._phase is None:
            return
        phase, self._phase = self._phase, None
        if sync is not None:
            jax.block_until_ready(sync)
        data = self._guard(lambda: self._trackers[phase].stop_task())
        if data is None:
            return
        stretch = PhaseTotals(
            duration_s=data.duration,
            energy_kwh=data.energy_consumed,
            cpu_energy_kwh=data.cpu_energy,
            gpu_energy_kwh=data.gpu_energy,
            ram_energy_kwh=data.ram_energy,
            emissions_kg=data.emissions,
        )
        self._totals[phase] = self._totals[phase].add(stretch)
        if self._log is not None:
            self._log(
                {
                    "phase": phase,
                    "step": step,
                    **dataclasses.asdict(stretch),
                    "cpu_power_w": data.cpu_power,
                    "gpu_power_w": data.gpu_power,
                    "ram_power_w": data.ram_power,
                }
            )

    def switch(self, phase: str, step: int, sync=None) -> None:
        """Ends the current phase (after ``sync``) and begins ``phase``."""
        self.end(step, sync)
        self.begin(phase)

    def _hardware(self) -> list[str]:
        # codecarbon detects the hardware at the first task and keeps the descriptions in its
        # config; there is no public accessor for how each component is measured.
        tracker = self._trackers.get("train")
        return list(tracker._conf.get("hardware", [])) if tracker is not None else []

    def totals(self) -> dict:
        """Per-phase totals so far, JSON-able (for checkpoints)."""
        return {p: dataclasses.asdict(t) for p, t in self._totals.items()}

    def report(self) -> dict:
        """The ``energy`` entry of ``summary.json``."""
        if not self.enabled:
            return {"enabled": False}
        total = PhaseTotals()
        for t in self._totals.values():
            total = total.add(t)
        report = {
            "enabled": True,
            **{p: t.report() for p, t in self._totals.items()},
            "total": total.report(),
            **self._grid,
            "power_source": power_source(self._hardware()),
            "tracker": "codecarbon OfflineEmissionsTracker",
        }
        if self.error is not None:
            report["error"] = f"tracking stopped early: {self.error}"
        return report

    def close(self) -> None:
        for tracker in self._trackers.values():
            self._guard(tracker.stop)
