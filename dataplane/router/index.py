"""Candidates indexed so a request only looks at the ones that can match it.

Candidates are bucketed by host (exact name, wildcard suffix, wildcard prefix, or any host).
Inside a bucket, prefix paths sit in a dict keyed by the prefix: a request probes its own path
cut at each distinct prefix length of the bucket, so the cost depends on the path, not on the
number of routes. Regex paths and routes without paths are scanned, best first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from dataplane.router.candidate import Candidate, RequestFacts

__all__ = ["Found", "HostBucket", "RouteIndex"]

# The best candidate so far and where its path match ends (0 for a route without paths).
Found = tuple[Candidate, int]


@dataclass(slots=True)
class HostBucket:
    """The candidates of one host pattern (or of routes without hosts)."""

    prefixes: dict[str, list[Candidate]] = field(default_factory=dict)
    lengths: tuple[int, ...] = ()  # distinct prefix lengths, longest first
    regexes: list[Candidate] = field(default_factory=list)
    pathless: list[Candidate] = field(default_factory=list)

    def add(self, candidate: Candidate) -> None:
        """File a candidate under its kind of path."""
        if candidate.path is None:
            self.pathless.append(candidate)
        elif candidate.regex is not None:
            self.regexes.append(candidate)
        else:
            self.prefixes.setdefault(candidate.path, []).append(candidate)

    def seal(self) -> None:
        """Sort everything best first once all candidates are in."""
        for group in (*self.prefixes.values(), self.regexes, self.pathless):
            group.sort(key=lambda c: c.key)
        self.lengths = tuple(sorted({len(p) for p in self.prefixes}, reverse=True))

    def best(self, request: RequestFacts, found: Found | None) -> Found | None:
        """The better of ``found`` and this bucket's best candidate for ``request``."""
        path = request.path
        for length in self.lengths:
            if length <= len(path):
                group = self.prefixes.get(path[:length])
                if group is not None:
                    found = _first(group, request, found, length)
        for candidate in self.regexes:
            if found is not None and candidate.key >= found[0].key:
                break
            if candidate.accepts(request):
                assert candidate.regex is not None
                match = candidate.regex.match(path)
                if match is not None:
                    found = candidate, match.end()
                    break
        return _first(self.pathless, request, found, 0)


def _first(
    group: list[Candidate], request: RequestFacts, found: Found | None, end: int
) -> Found | None:
    for candidate in group:
        if found is not None and candidate.key >= found[0].key:
            return found
        if candidate.accepts(request):
            return candidate, end
    return found


@dataclass(slots=True)
class RouteIndex:
    """All candidates of a config, bucketed by host."""

    exact: dict[str, HostBucket] = field(default_factory=dict)
    suffixes: dict[str, HostBucket] = field(default_factory=dict)  # '.example.com'
    prefixes: dict[str, HostBucket] = field(default_factory=dict)  # 'example.'
    any_host: HostBucket = field(default_factory=HostBucket)

    @classmethod
    def build(cls, candidates: Iterable[Candidate]) -> RouteIndex:
        """Index ``candidates``."""
        index = cls()
        for candidate in candidates:
            index._bucket_for(candidate).add(candidate)
        for bucket in index._all_buckets():
            bucket.seal()
        return index

    def _bucket_for(self, candidate: Candidate) -> HostBucket:
        host = candidate.host
        if host is None:
            return self.any_host
        table = {"exact": self.exact, "suffix": self.suffixes, "prefix": self.prefixes}[host.kind]
        return table.setdefault(host.key, HostBucket())

    def _all_buckets(self) -> Iterator[HostBucket]:
        yield from self.exact.values()
        yield from self.suffixes.values()
        yield from self.prefixes.values()
        yield self.any_host

    def find(self, host: str, request: RequestFacts) -> Found | None:
        """The best candidate for a request to ``host`` (a lower-case name without port)."""
        found: Found | None = None
        bucket = self.exact.get(host)
        if bucket is not None:
            found = bucket.best(request, found)
        if self.suffixes or self.prefixes:
            for bucket in self._wildcard_buckets(host):
                found = bucket.best(request, found)
        return self.any_host.best(request, found)

    def _wildcard_buckets(self, host: str) -> Iterator[HostBucket]:
        # A wildcard stands for at least one character: '*.b.c' matches 'a.b.c', not '.b.c'.
        dot = host.find(".", 1)
        while dot != -1:
            if self.suffixes and (bucket := self.suffixes.get(host[dot:])) is not None:
                yield bucket
            if (
                self.prefixes
                and dot < len(host) - 1
                and (bucket := self.prefixes.get(host[: dot + 1])) is not None
            ):
                yield bucket
            dot = host.find(".", dot + 1)
