"""State of the Azure DevOps emulator: organisations, their members and variable groups.

A PUT replaces a whole group (``docs/reference/consumers.md`` A5): variables left out are
deleted. What a secret variable sent with ``value: null`` does is unconfirmed (A6); the
emulator takes the dangerous reading by default — the null wipes the secret — and
``null_keeps_secret = True`` switches to the reading a user reported (the old value is kept).
"""

from __future__ import annotations

import copy
import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emulators.clock import Clock
    from emulators.registry import SecretRegistry

__all__ = ["ROLES", "DevOpsState", "GroupVariable", "PutRecord", "VariableGroup"]

ROLES = ("Reader", "User", "Administrator")
"""Library roles, weakest first; PUT needs Administrator (the docs' ``vso.variablegroups_manage``
scope; the role mapping is inferred)."""


@dataclass(slots=True)
class GroupVariable:
    """One variable as stored: secrets keep their real value here, never in an answer."""

    value: str = field(repr=False)
    is_secret: bool = False


@dataclass(frozen=True, slots=True)
class PutRecord:
    """One accepted PUT: who sent it and which secret variables it wiped or kept."""

    client_id: str
    wiped: tuple[str, ...]
    """Secret variables whose stored value was lost (sent as null, or left out)."""
    kept_by_null: tuple[str, ...]
    """Secret variables sent as null whose value was kept (only with ``null_keeps_secret``)."""


class VariableGroup:
    """A variable group of one organisation, shared with one or more projects."""

    def __init__(self, group_id: int, organization: str, body: dict[str, Any]) -> None:
        self.id = group_id
        self.organization = organization
        self.name: str = body["name"]
        self.description: str = body.get("description", "")
        self.type: str = body.get("type", "Vsts")
        self.project_references: list[dict[str, Any]] = body["variableGroupProjectReferences"]
        self.variables: dict[str, GroupVariable] = {}
        self.created_by: dict[str, str] = body["createdBy"]
        self.modified_by: dict[str, str] = body["createdBy"]
        self.created_on: str = body["createdOn"]
        self.modified_on: str = body["createdOn"]
        self.history: dict[str, list[str]] = {}
        self.puts: list[PutRecord] = []

    def projects(self) -> list[str]:
        """Names of the projects the group is shared with."""
        return [str(r.get("projectReference", {}).get("name", "")) for r in self.project_references]

    def value(self, name: str) -> str:
        """Return the stored value of a variable (secret or not); KeyError if there is none."""
        return self.variables[name].value

    def is_secret(self, name: str) -> bool:
        """Whether a variable is secret; KeyError if there is none."""
        return self.variables[name].is_secret

    def set(self, name: str, value: str, *, secret: bool) -> None:
        """Store one variable and remember its value in ``history``."""
        self.variables[name] = GroupVariable(value, secret)
        past = self.history.setdefault(name, [])
        if not past or past[-1] != value:
            past.append(value)

    def as_json(self) -> dict[str, Any]:
        """Return the group as GET and PUT answer it: secret values are null."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "type": self.type,
            "variables": {
                name: ({"value": None, "isSecret": True} if var.is_secret else {"value": var.value})
                for name, var in self.variables.items()
            },
            "variableGroupProjectReferences": copy.deepcopy(self.project_references),
            "createdBy": dict(self.created_by),
            "createdOn": self.created_on,
            "modifiedBy": dict(self.modified_by),
            "modifiedOn": self.modified_on,
            "isShared": len(self.project_references) > 1,
        }

    def __repr__(self) -> str:
        return (
            f"VariableGroup(id={self.id}, name={self.name!r}, variables={sorted(self.variables)})"
        )


class DevOpsState:
    """Organisations, their members (Entra principals) and variable groups; thread-safe.

    ``null_keeps_secret`` (settable while running, default False): whether a secret variable
    sent with ``value: null`` keeps its stored value (True) or is wiped (False).
    """

    def __init__(self, *, registry: SecretRegistry, clock: Clock) -> None:
        self.null_keeps_secret = False
        self._registry = registry
        self._clock = clock
        self._members: dict[tuple[str, str], str] = {}
        self._groups: dict[int, VariableGroup] = {}
        self._next_id = 1
        self.lock = threading.RLock()
        """Held by the app while it reads or changes a group."""

    def add_member(self, organization: str, client_id: str, role: str = "Administrator") -> None:
        """Add an Entra principal (app or managed identity) to an organisation with a role."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        with self.lock:
            self._members[organization.lower(), client_id.lower()] = role

    def remove_member(self, organization: str, client_id: str) -> None:
        """Take a principal out of an organisation."""
        with self.lock:
            self._members.pop((organization.lower(), client_id.lower()), None)

    def role_of(self, organization: str, client_id: str) -> str | None:
        """Return the principal's role in the organisation, None if it is not a member."""
        with self.lock:
            return self._members.get((organization.lower(), client_id.lower()))

    def add_group(
        self,
        organization: str,
        project: str,
        name: str,
        variables: dict[str, tuple[str, bool]] | None = None,
        *,
        projects: tuple[str, ...] = (),
    ) -> int:
        """Create a group in ``project`` (and shared with ``projects``); return its id.

        ``variables`` maps a name to ``(value, is_secret)``; secret values are registered
        with the secret registry.
        """
        references = [
            {"name": name, "description": "", "projectReference": {"id": f"p-{p}", "name": p}}
            for p in (project, *projects)
        ]
        creator = {"displayName": "seed", "id": "00000000-0000-0000-0000-000000000000"}
        with self.lock:
            group_id = self._next_id
            self._next_id += 1
            body = {
                "name": name,
                "variableGroupProjectReferences": references,
                "createdBy": creator,
                "createdOn": self.now_iso(),
            }
            group = VariableGroup(group_id, organization, body)
            for var, (value, secret) in (variables or {}).items():
                if secret and value:
                    self._remember(value)
                group.set(var, value, secret=secret)
            self._groups[group_id] = group
            return group_id

    def group(self, group_id: int) -> VariableGroup:
        """Return a group by id (KeyError if unknown); the object is live."""
        with self.lock:
            return self._groups[group_id]

    def find(self, organization: str, group_id: int) -> VariableGroup | None:
        """Return an organisation's group by id, or None."""
        with self.lock:
            group = self._groups.get(group_id)
            return group if group and group.organization.lower() == organization.lower() else None

    def replace(self, group: VariableGroup, body: dict[str, Any], caller: dict[str, str]) -> None:
        """Apply a validated PUT body to ``group``: everything not sent is gone."""
        with self.lock:
            wiped: list[str] = []
            kept: list[str] = []
            old = group.variables
            group.variables = {}
            for name, var in body["variables"].items():
                secret = bool(var.get("isSecret", False))
                value = var.get("value")
                before = old.get(name)
                if value is None and secret and before is not None and before.is_secret:
                    if self.null_keeps_secret:
                        kept.append(name)
                        group.set(name, before.value, secret=True)
                        continue
                    wiped.append(name)
                if secret and value:
                    self._remember(str(value))
                group.set(name, "" if value is None else str(value), secret=secret)
            wiped += [n for n, v in old.items() if v.is_secret and n not in body["variables"]]
            group.name = body["name"]
            group.description = body.get("description") or ""
            group.type = body.get("type") or group.type
            group.project_references = copy.deepcopy(body["variableGroupProjectReferences"])
            group.modified_by = caller
            group.modified_on = self.now_iso(after=group.modified_on)
            group.puts.append(PutRecord(caller["id"], tuple(wiped), tuple(kept)))

    def _remember(self, value: str) -> None:
        """Register a secret value unless it is known already (a PAT keeps its kind)."""
        if self._registry.kind_of(value) is None:
            self._registry.add(value, "devops_secret")

    def now_iso(self, after: str | None = None) -> str:
        """Return the virtual time as ADO writes it; strictly later than ``after`` when given."""
        moment = dt.datetime.fromtimestamp(self._clock.now(), dt.UTC)
        if after is not None:
            earlier = dt.datetime.fromisoformat(after)
            moment = max(moment, earlier + dt.timedelta(milliseconds=1))
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def __repr__(self) -> str:
        with self.lock:
            return f"DevOpsState(groups={len(self._groups)}, members={len(self._members)})"
