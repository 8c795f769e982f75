"""Experiment profiles: how big a chapter's experiments are.

``smoke`` exercises every code path in seconds (CI), ``paper`` produces the committed
outputs on a 2-core CPU, ``full`` is the published scale where ``paper`` shrinks it.
A notebook's ``parameters`` cell sets ``profile``; if it is left as ``None`` the
environment variable ``BACKPROP2_PROFILE`` decides, else ``paper``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

PROFILES = ("smoke", "paper", "full")
DEFAULT_PROFILE = "paper"
ENV_VAR = "BACKPROP2_PROFILE"


@dataclass(frozen=True)
class Profile:
    name: str

    def select(self, **settings: Any) -> Any:
        """Pick the value for this profile: ``profile.select(smoke=1, paper=10, full=100)``.

        ``full`` falls back to ``paper`` when not given (for chapters whose paper
        profile already runs at the published scale).
        """
        unknown = set(settings) - set(PROFILES)
        if unknown:
            raise ValueError(f"select() got unknown profile(s) {sorted(unknown)}; valid: {list(PROFILES)}")
        if self.name in settings:
            return settings[self.name]
        if self.name == "full" and "paper" in settings:
            return settings["paper"]
        raise ValueError(f"select() has no value for profile {self.name!r}; give {self.name}=...")

    def __str__(self) -> str:
        return self.name


def resolve_profile(profile: str | Profile | None = None) -> Profile:
    """Resolve a profile from the argument, else ``$BACKPROP2_PROFILE``, else ``paper``."""
    if isinstance(profile, Profile):
        return profile
    source = "argument 'profile'"
    if profile is None or profile == "":
        profile = os.environ.get(ENV_VAR) or None
        source = f"environment variable {ENV_VAR}"
    if profile is None:
        return Profile(DEFAULT_PROFILE)
    name = str(profile).strip().lower()
    if name not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} (from {source}); valid profiles: {', '.join(PROFILES)}")
    return Profile(name)
