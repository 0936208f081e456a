"""Which files of a build context reach the image: ``.dockerignore`` as BuildKit reads it.

A faithful port of ``moby/patternmatcher`` (the matcher BuildKit's file
sync and pulumi-docker-build's context hash both use): patterns are cleaned
like Go's ``filepath.Clean``, ``*`` and ``?`` stay within one path segment,
``**`` spans any number of them, a leading ``!`` re-includes, the last
matching pattern wins, and a path is excluded when it or one of its parent
directories matches (``MatchesOrParentMatches``).

Pure: no Docker, no Pulumi. :mod:`infra.components.image` hashes what this
lets through to name the image; the project loader reads the configuration
the image holds through it.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.errors import UserError

# What the default image (infra/Dockerfile) leaves out of a project.
DEFAULT_IGNORE = Path(__file__).resolve().parent / ".dockerignore"
# Characters a regexp needs escaped that mean nothing special in a pattern.
_ESCAPE = set(".+()|{}$")


def read_patterns(text: str) -> list[str]:
    """Patterns of an ignore file, as ``ignorefile.ReadAll`` returns them.

    Comment lines (``#`` first) and blank lines are dropped; each pattern is
    cleaned and loses a leading ``/`` (paths are relative to the context).
    """
    patterns = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = _clean(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append(f"!{pattern}" if invert else pattern)
    return patterns


def _clean(path: str) -> str:
    """Go's ``filepath.Clean`` on a slash-separated path."""
    cleaned = posixpath.normpath(path)
    # normpath keeps a leading "//"; Go collapses it.
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


@dataclass(frozen=True)
class _Pattern:
    text: str  # cleaned, without "!"
    exclusion: bool  # a "!" pattern: re-includes what it matches
    kind: str  # exact | prefix | suffix | regexp
    regexp: re.Pattern[str] | None

    @classmethod
    def compile(cls, raw: str) -> _Pattern:
        raw = raw.strip()
        exclusion = raw.startswith("!")
        if exclusion:
            if len(raw) == 1:
                raise UserError('.dockerignore: illegal exclusion pattern "!"; remove that line')
            raw = raw[1:]
        text = _clean(raw)
        regexp, kind, i, first = "^", "exact", 0, True
        while i < len(text):
            ch, opening = text[i], first
            i, first = i + 1, False
            if ch == "*":
                if i < len(text) and text[i] == "*":
                    i += 1
                    if i < len(text) and text[i] == "/":
                        i += 1
                    if i >= len(text):
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            regexp += ".*"
                            kind = "regexp"
                    else:
                        regexp += "(.*/)?"
                        kind = "regexp"
                    if opening:
                        kind = "suffix"
                else:
                    regexp += "[^/]*"
                    kind = "regexp"
            elif ch == "?":
                regexp += "[^/]"
                kind = "regexp"
            elif ch in _ESCAPE:
                regexp += "\\" + ch
            elif ch == "\\":
                if i < len(text):
                    regexp += "\\" + text[i]
                    i += 1
                    kind = "regexp"
                else:
                    regexp += "\\\\"
            elif ch in "[]":
                regexp += ch
                kind = "regexp"
            else:
                regexp += re.escape(ch) if ch in "^" else ch
        compiled = None
        if kind == "regexp":
            try:
                compiled = re.compile(regexp + "$", re.DOTALL)
            except re.error:
                raise UserError(
                    f".dockerignore: bad pattern {raw!r}; fix its brackets or escapes"
                ) from None
        return cls(text, exclusion, kind, compiled)

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regexp is not None
        return self.regexp.match(path) is not None


class IgnoreRules:
    """The patterns of one ignore file, ready to decide path by path."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._patterns = [_Pattern.compile(p) for p in patterns if p.strip()]
        self._reincludes = [p for p in self._patterns if p.exclusion]

    def excluded(self, path: str) -> bool:
        """Whether ``path`` (relative, ``/``-separated) stays out of the context."""
        path = _clean(path)
        if path == ".":
            return False
        parents = path.split("/")[:-1]
        matched = False
        for pattern in self._patterns:
            if pattern.exclusion != matched:
                continue  # cannot change the outcome
            hit = pattern.match(path) or any(
                pattern.match("/".join(parents[: i + 1])) for i in range(len(parents))
            )
            if hit:
                matched = not pattern.exclusion
        return matched

    def may_reinclude_under(self, directory: str) -> bool:
        """Whether a ``!`` pattern might bring back a file below an excluded ``directory``.

        Errs towards yes (the walk then descends): a needless look costs time,
        a wrong no would leave out a file the image gets.
        """
        depth = len(directory.split("/"))
        for pattern in self._reincludes:
            parts = pattern.text.split("/")
            if any("**" in part for part in parts[:depth]):
                return True
            if len(parts) > depth and all(
                _Pattern.compile(part).match(name)
                for part, name in zip(parts, directory.split("/"), strict=False)
            ):
                return True
        return False


def context_files(root: Path, rules: IgnoreRules) -> Iterator[str]:
    """Relative paths of the files (and symlinks) under ``root`` that the build
    context holds, in a stable order. Excluded directories are not entered
    unless a ``!`` pattern may re-include something inside them."""
    for directory, dirs, files in os.walk(root):
        base = Path(directory).relative_to(root).as_posix()
        prefix = "" if base == "." else f"{base}/"
        # A symlink to a directory is sent as the link itself, never followed.
        links = [d for d in dirs if os.path.islink(os.path.join(directory, d))]
        names = sorted([*files, *links])
        dirs[:] = sorted(
            d
            for d in dirs
            if d not in links
            and (not rules.excluded(prefix + d) or rules.may_reinclude_under(prefix + d))
        )
        for name in names:
            if not rules.excluded(prefix + name):
                yield prefix + name


def ignore_file(dockerfile: Path, context: Path) -> Path | None:
    """The ignore file BuildKit (and pulumi-docker-build's hash) applies to every
    context of this build: ``<Dockerfile>.dockerignore``, else the context's
    ``.dockerignore``."""
    for candidate in (
        dockerfile.with_name(dockerfile.name + ".dockerignore"),
        context / ".dockerignore",
    ):
        if candidate.is_file():
            return candidate
    return None


def image_ignore_file(project_dir: Path) -> Path | None:
    """The ignore file the project's image is built with: the default image's,
    or the one that goes with the project's own ``Dockerfile`` (if any)."""
    own = project_dir / "Dockerfile"
    return ignore_file(own, project_dir) if own.is_file() else DEFAULT_IGNORE
