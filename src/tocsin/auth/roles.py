"""The role ladder: each role can do everything the roles below it can."""

from __future__ import annotations

from enum import IntEnum


class Role(IntEnum):
    viewer = 0
    responder = 1
    commander = 2
    admin = 3

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name]
        except KeyError:
            raise ValueError(f"unknown role {name!r}; one of {', '.join(r.name for r in cls)}") from None
