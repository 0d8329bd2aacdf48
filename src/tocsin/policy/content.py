"""The runbook's guidance as data: workflow phases, scenarios, mitigations, checklists, templates."""

from __future__ import annotations

from typing import Annotated

import jinja2
import jinja2.meta
from pydantic import AfterValidator, Field

from tocsin.policy.fields import Duration, PolicyModel, Slug, custom_error

# The variables each template may use; whoever renders a template passes all of them.
TEMPLATE_VARIABLES: dict[str, frozenset[str]] = {
    "status_initial": frozenset({"organization", "title", "description", "severity", "posted_at"}),
    "status_resolution": frozenset({"organization", "title", "description", "severity", "posted_at"}),
    "postmortem": frozenset(
        {"organization", "title", "date", "duration", "severity", "incident_commander", "description"}
    ),
}

_Text = Annotated[str, Field(min_length=1)]


class Step(PolicyModel):
    """One thing to run or do: a shell command, or a note where the seed gives none."""

    title: _Text
    command: str | None = None
    note: str | None = None


class Cause(PolicyModel):
    """A common cause of a scenario and what fixes it."""

    cause: _Text
    solution: _Text


class Scenario(PolicyModel):
    """A common kind of incident: how it shows, how to investigate it, what usually causes it."""

    name: Slug
    title: _Text
    symptoms: list[_Text]
    investigation: list[Step]
    causes: list[Cause]


class Mitigation(PolicyModel):
    """A general procedure (gather information, roll back, scale, ...) usable in any incident."""

    name: Slug
    title: _Text
    steps: list[Step] = Field(min_length=1)


class Section(PolicyModel):
    """A titled list of guidance, e.g. the areas to look at during investigation."""

    title: _Text
    items: list[_Text]


class Phase(PolicyModel):
    """A stage of the response workflow, with its window after detection where the runbook gives one."""

    name: Slug
    title: _Text
    starts: Duration | None = None
    ends: Duration | None = None
    actions: list[_Text] = []
    sections: list[Section] = []


class Checklists(PolicyModel):
    """The runbook's checklists, item by item."""

    during_incident: list[_Text]
    post_incident: list[_Text]
    immediate: list[_Text]
    immediate_within: Duration
    follow_up: list[_Text]
    follow_up_within: Duration


def _template_checker(name: str) -> AfterValidator:
    allowed = TEMPLATE_VARIABLES[name]

    def check(source: str) -> str:
        # Parsing here turns a typo in a template into a start-up error instead of a failed status update.
        try:
            parsed = jinja2.Environment(autoescape=False).parse(source)
        except jinja2.TemplateSyntaxError as error:
            raise custom_error("template", f"template line {error.lineno}: {error.message}") from None
        unknown = sorted(jinja2.meta.find_undeclared_variables(parsed) - allowed)
        if unknown:
            raise custom_error(
                "template",
                f"unknown template variable {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
            )
        return source

    return AfterValidator(check)


class Templates(PolicyModel):
    """Jinja templates for status-page updates and the post-mortem document."""

    status_initial: Annotated[str, _template_checker("status_initial")]
    status_resolution: Annotated[str, _template_checker("status_resolution")]
    postmortem: Annotated[str, _template_checker("postmortem")]

    def render(self, name: str, **variables: object) -> str:
        """Render template name with variables; missing variables are errors, not blanks."""
        if name not in TEMPLATE_VARIABLES:
            raise ValueError(f"unknown template {name!r}; expected one of {', '.join(TEMPLATE_VARIABLES)}")
        environment = jinja2.Environment(
            autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
        )
        return environment.from_string(getattr(self, name)).render(**variables)


def unique_names(items: list[Scenario] | list[Mitigation] | list[Phase], what: str) -> None:
    """Raise a validation error naming the first duplicate ``name`` among items."""
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            raise custom_error("duplicate", f'{what} "{item.name}" is defined twice')
        seen.add(item.name)
