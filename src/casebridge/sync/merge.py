"""The field-level three-way merge: base, local and remote in, one decision per field out. Pure.

| case                        | decision                                  |
|-----------------------------|-------------------------------------------|
| local == remote             | same (the base becomes that value)        |
| a person resolved the field | write the chosen value wherever it differs |
| pull-only field             | pull the remote value                     |
| local == base               | pull                                      |
| remote == base              | push                                      |
| both changed (or no base)   | the conflict policy decides               |

A coupled field (a matter's close date, which only a closed matter has) is held whenever the field it
goes with is: writing one without the other would make a record neither side accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Policy = Literal["hold", "casebridge_wins", "clio_wins", "newest_wins"]
POLICIES: tuple[Policy, ...] = ("hold", "casebridge_wins", "clio_wins", "newest_wins")
_MISSING = object()


@dataclass(frozen=True)
class Decision:
    field: str
    push: bool  # write ``value`` to the remote side
    pull: bool  # write ``value`` to the local side
    held: bool  # a conflict left for a person: neither side changes
    value: Any  # what both sides hold afterwards (unless held)
    local: Any
    remote: Any
    base: Any  # None when there is no base for the field
    why: str

    @property
    def action(self) -> str:
        if self.held:
            return "conflict"
        return {(True, True): "both", (True, False): "push", (False, True): "pull"}.get(
            (self.push, self.pull), "same"
        )


def decide(
    fields: tuple[str, ...],
    base: Mapping[str, Any] | None,
    local: Mapping[str, Any],
    remote: Mapping[str, Any],
    *,
    policy: Policy = "hold",
    pull_only: tuple[str, ...] = (),
    local_is_newer: bool = False,
    resolutions: Mapping[str, Any] | None = None,
    coupled: Mapping[str, str] | None = None,
) -> list[Decision]:
    decisions = []
    resolutions = resolutions or {}
    for f in fields:
        lv, rv = local.get(f), remote.get(f)
        bv = base.get(f, _MISSING) if base is not None else _MISSING
        shown_base = None if bv is _MISSING else bv

        def make(push: bool, pull: bool, value: Any, why: str, *, held: bool = False) -> Decision:
            return Decision(f, push, pull, held, value, lv, rv, shown_base, why)  # noqa: B023

        if f in resolutions:
            value = resolutions[f]
            decisions.append(make(rv != value, lv != value, value, "resolved by a person"))
        elif lv == rv:
            decisions.append(make(False, False, lv, "equal"))
        elif f in pull_only:
            decisions.append(make(False, True, rv, "owned by the remote side"))
        elif bv is not _MISSING and lv == bv:
            decisions.append(make(False, True, rv, "changed remotely"))
        elif bv is not _MISSING and rv == bv:
            decisions.append(make(True, False, lv, "changed locally"))
        else:
            why = "changed on both sides" if bv is not _MISSING else "differs and there is no base"
            if policy == "casebridge_wins":
                decisions.append(make(True, False, lv, f"{why}: Casebridge wins"))
            elif policy == "clio_wins":
                decisions.append(make(False, True, rv, f"{why}: Clio wins"))
            elif policy == "newest_wins":
                if local_is_newer:
                    decisions.append(make(True, False, lv, f"{why}: Casebridge's change is newer"))
                else:
                    decisions.append(make(False, True, rv, f"{why}: Clio's change is newer"))
            else:
                decisions.append(make(False, False, shown_base, f"{why}: held for review", held=True))
    held = {d.field for d in decisions if d.held}
    for n, d in enumerate(decisions):
        goes_with = (coupled or {}).get(d.field)
        if goes_with in held and not d.held and d.action != "same" and d.field not in resolutions:
            why = f"held with {goes_with}, which it goes with"
            decisions[n] = Decision(d.field, False, False, True, d.base, d.local, d.remote, d.base, why)
    return decisions
