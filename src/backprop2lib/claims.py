"""Chapter claims: checked, printed as stable verdict lines, then asserted.

A claim cell prints one line per claim, ``<statement>: True|False``. The statement
must not contain numbers that vary between runs or profiles, so the printed output
is identical everywhere (nbval compares it); measured figures go in other cells.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Claims:
    verdicts: list[tuple[str, bool]] = field(default_factory=list)

    def check(self, statement: str, verdict) -> bool:
        verdict = bool(verdict)
        if any(s == statement for s, _ in self.verdicts):
            raise ValueError(f"claim {statement!r} was checked twice")
        self.verdicts.append((statement, verdict))
        print(f"{statement}: {verdict}")
        return verdict

    def assert_all(self) -> None:
        failed = [s for s, v in self.verdicts if not v]
        if failed:
            raise AssertionError("claims that did not hold: " + "; ".join(failed))
