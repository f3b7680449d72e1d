"""The progress bar of a run: labelled with the run's name, drawn once when it ends.

A bar that ends short of its total reads as a crash, so a run that ends early on purpose
says why (:meth:`Bar.stop_early`), and a finished run's bar ends at the step the run ended
on (PPO rounds ``total_steps`` down to whole rollouts: 99840 of 100000 is its end).
"""

from __future__ import annotations

import os
import sys
from typing import Any


class Bar:
    """A tqdm bar on stderr (none on a non-terminal or under ``CI``), or nothing."""

    def __init__(self, label: str | None, total: int, initial: int, show: bool) -> None:
        self.total = total
        self._bar: Any = None
        if show:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                desc=label,
                total=total,
                initial=min(initial, total),
                unit="step",
                dynamic_ncols=True,
                mininterval=0.5,
                file=sys.stderr,
                disable=None if not os.environ.get("CI") else True,
            )

    def update(self, step: int, postfix: dict[str, str]) -> None:
        if self._bar is None:
            return
        if postfix:  # before the update, so that the bar drawn shows this step's values
            self._bar.set_postfix(postfix, refresh=False)
        delta = min(step, self.total) - self._bar.n
        if delta > 0:
            self._bar.update(delta)
        if step >= self.total:
            # Drawn once, finished: whatever the run prints next (an evaluation, a
            # library's warning) cannot make the bar draw itself again below that.
            self.close()

    def stop_early(self, reason: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"stopped early: {reason}", refresh=False)
            self.close()

    def close(self, finished: bool = False) -> None:
        if self._bar is None:
            return
        if finished and 0 < self._bar.n < self.total:
            self._bar.total = self._bar.n
        self._bar.close()
        self._bar = None
