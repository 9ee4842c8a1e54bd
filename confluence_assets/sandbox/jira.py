"""A small Jira the sandbox's Jira issues macro reads from: issues, saved filters and JQL.

Confluence renders a ``jira`` macro with a ``jqlQuery`` (or a saved filter) as a table of the issues the
query returns at view time; storage holds only the query. Tests add issues and either rely on the small
JQL subset below (``project``, ``key``, ``status``, ``type``, ``priority``, ``assignee``, ``labels`` with
``=``, ``!=``, ``in``, ``not in``; ``summary`` / ``text`` with ``~``; clauses joined by ``AND``; ``ORDER
BY key``) or register the result of a query outright (:meth:`JiraSite.set_query`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class JQLError(ValueError):
    """A query the sandbox's Jira cannot answer (Jira would say why; the macro shows an error)."""


@dataclass(slots=True)
class JiraIssue:
    key: str
    summary: str
    status: str = "To Do"
    issue_type: str = "Task"
    priority: str = "Medium"
    assignee: str | None = None
    labels: tuple[str, ...] = ()

    @property
    def project(self) -> str:
        return self.key.rsplit("-", 1)[0]

    @property
    def number(self) -> int:
        tail = self.key.rsplit("-", 1)[-1]
        return int(tail) if tail.isdigit() else 0


_CLAUSE = re.compile(r"^\s*([A-Za-z]+)\s*(not\s+in|!=|=|~|in)\s*(.+?)\s*$", re.I | re.S)
_AND = re.compile(r"\s+AND\s+", re.I)
_ORDER = re.compile(r"\s+ORDER\s+BY\s+(.+)$", re.I | re.S)
_FILTER = re.compile(r"^\s*filter\s*=\s*\"?(\w+)\"?\s*$", re.I)
_FIELDS = {"project", "key", "issuekey", "status", "type", "issuetype", "priority", "assignee", "labels"}


def _values(raw: str) -> list[str]:
    raw = raw.strip()
    if raw.startswith("(") and raw.endswith(")"):
        raw = raw[1:-1]
    return [v.strip().strip("\"'") for v in raw.split(",") if v.strip()]


@dataclass
class JiraSite:
    issues: dict[str, JiraIssue] = field(default_factory=dict)
    queries: dict[str, list[str]] = field(default_factory=dict)  # normalised JQL -> issue keys
    filters: dict[str, str] = field(default_factory=dict)  # saved filter id -> JQL

    def add_issue(self, key: str, summary: str, **fields: object) -> JiraIssue:
        issue = JiraIssue(key, summary, **fields)  # type: ignore[arg-type]
        self.issues[key] = issue
        return issue

    def set_query(self, jql: str, keys: list[str]) -> None:
        self.queries[" ".join(jql.split()).lower()] = list(keys)

    def add_filter(self, filter_id: str, jql: str) -> None:
        self.filters[str(filter_id)] = jql

    def search(self, jql: str, *, depth: int = 0) -> list[JiraIssue]:
        normalised = " ".join(jql.split()).lower()
        if normalised in self.queries:
            return [self.issues[k] for k in self.queries[normalised] if k in self.issues]
        if (m := _FILTER.match(jql)) and depth < 3:
            if m.group(1) not in self.filters:
                raise JQLError(f"The filter {m.group(1)} does not exist or you do not have permission to view it.")
            return self.search(self.filters[m.group(1)], depth=depth + 1)
        where, order = jql, ""
        if m := _ORDER.search(jql):
            where, order = jql[: m.start()], m.group(1)
        found = list(self.issues.values())
        if where.strip():
            for clause in _AND.split(where):
                found = [i for i in found if self._matches(i, clause)]
        if "key" in order.lower():
            found.sort(key=lambda i: (i.project, i.number), reverse="desc" in order.lower())
        return found

    def _matches(self, issue: JiraIssue, clause: str) -> bool:
        m = _CLAUSE.match(clause)
        if not m or " or " in clause.lower():
            raise JQLError(f"Error in the JQL Query: {clause.strip()!r} is not supported by the sandbox")
        name, op, raw = m.group(1).lower(), " ".join(m.group(2).lower().split()), m.group(3)
        if name in ("summary", "text"):
            if op != "~":
                raise JQLError(f"The operator {op!r} is not supported by the field {name!r}")
            words = _values(raw)[0].lower().split()
            return all(w in issue.summary.lower() for w in words)
        if name not in _FIELDS:
            raise JQLError(f"Field {name!r} does not exist or you do not have permission to view it.")
        actual = {
            "project": [issue.project],
            "key": [issue.key],
            "issuekey": [issue.key],
            "status": [issue.status],
            "type": [issue.issue_type],
            "issuetype": [issue.issue_type],
            "priority": [issue.priority],
            "assignee": [issue.assignee or ""],
            "labels": list(issue.labels),
        }[name]
        wanted = {v.lower() for v in _values(raw)}
        hit = any(a.lower() in wanted for a in actual)
        return hit if op in ("=", "in") else not hit if op in ("!=", "not in") else False
