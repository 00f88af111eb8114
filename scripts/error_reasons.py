"""The ErrorInfo reasons the public API answers with, grouped by status code, read from the sources.

Every refusal names a machine-readable reason (``POOL_NOT_FOUND``); the README's "Other languages"
section lists them all. This script finds them in the server's sources (by their syntax tree, so
that the list cannot go stale) and writes the list into the README between the markers
``<!-- error-reasons:start -->`` and ``<!-- error-reasons:end -->``:

    scripts/error_reasons.py            # print the list
    scripts/error_reasons.py --write    # rewrite it in README.md
    scripts/error_reasons.py --check    # exit 1 when README.md's list differs (tests/unit/test_error_reasons.py)

What counts as a refusal (with its status code): a `Refused` subclass of `server/domain/errors.py`
or a helper of `server/api/errors.py` (`invalid`, `not_found`, ...), any call with a
`grpc.StatusCode.X` argument followed by the reason (`ApiError(code, reason, ...)`), an
`ErrorInfo(reason=...)` beside a `code=code_pb2.X`, a `JoinTokenError` (answered UNAUTHENTICATED) and
an `AddTaskResult(error_reason=...)` (ALREADY_EXISTS from AddTask). A reason is a string literal, a
constant of any scanned module, a local variable or parameter whose assignments (or defaults and
keyword arguments at call sites) are such, or a loop over a local tuple of them. A refusal whose
reason cannot be resolved so must be listed in `DYNAMIC` with where its reasons come from: a new one
fails `--check` until it is.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
START, END = "<!-- error-reasons:start -->", "<!-- error-reasons:end -->"

#: Where the public API's refusals are made: the control plane, its shared modules, the CA.
SOURCES = ("server", "shoal_root", "certs")
#: The agent's file service: its file reasons reach clients through the task and node file calls.
AGENT_FILES = "nodeagent/fileservice.py"

#: Callee name -> the status code its refusals get (server/api/errors.py REFUSAL_CODES and helpers).
CALL_CODES = {
    "NotFound": "NOT_FOUND",
    "AlreadyExists": "ALREADY_EXISTS",
    "FailedPrecondition": "FAILED_PRECONDITION",
    "InvalidInput": "INVALID_ARGUMENT",
    "Conflict": "ABORTED",
    "Unauthenticated": "UNAUTHENTICATED",
    "PermissionDenied": "PERMISSION_DENIED",
    "QuotaExceeded": "RESOURCE_EXHAUSTED",
    "invalid": "INVALID_ARGUMENT",
    "invalid_input": "INVALID_ARGUMENT",
    "not_found": "NOT_FOUND",
    "already_exists": "ALREADY_EXISTS",
    "failed_precondition": "FAILED_PRECONDITION",
    # The join service answers a token that does not admit with UNAUTHENTICATED and its reason.
    "JoinTokenError": "UNAUTHENTICATED",
}

#: (file, function) -> why the reasons of its refusals with a computed reason are covered anyway.
DYNAMIC = {
    ("server/api/errors.py", "from_refusal"): "passes on a Refused's reason (each found where it is raised)",
    ("server/api/errors.py", "invalid"): "the helper itself (its callers are scanned)",
    ("server/api/errors.py", "not_found"): "the helper itself",
    ("server/api/errors.py", "already_exists"): "the helper itself",
    ("server/api/errors.py", "failed_precondition"): "the helper itself",
    ("server/domain/errors.py", "invalid_input"): "the helper itself",
    ("server/api/join.py", "JoinNode"): "a JoinTokenError's reason (JoinTokenError calls are scanned)",
    ("server/api/tasks.py", "AddTask"): "an AddTaskResult's error_reason (AddTaskResult calls are scanned)",
    ("server/api/nodefiles.py", "translate"): f"an agent's file reason ({AGENT_FILES} is scanned)",
    ("server/lifecycle/tasks.py", "add_tasks"): "reasons of job_task_ids (the literals of its tuples)",
    ("server/nodeusers/registry.py", "_usable"): "a node state's refusal (server/nodeusers/model.py state_refusal)",
}

UPPER = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)+$|^[A-Z]{4,}$")


@dataclass
class Found:
    """The reasons found, by status code, and the refusals whose reason could not be resolved."""

    reasons: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    unresolved: list[str] = field(default_factory=list)


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _status_code(node: ast.expr) -> str | None:
    """`X` of `grpc.StatusCode.X` or `code_pb2.X`."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute | ast.Name):
        owner = _name(node.value)
        if owner in ("StatusCode", "code_pb2"):
            return node.attr
    return None


def _constants(trees: dict[str, ast.Module]) -> dict[str, set[str]]:
    """Module-level NAME = "REASON" (and NAME: Final = ...), and every string of a module-level dict's values."""
    out: dict[str, set[str]] = defaultdict(set)
    for tree in trees.values():
        for stmt in tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
                target, value = stmt.targets[0], stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                target, value = stmt.target, stmt.value
            else:
                continue
            if not isinstance(target, ast.Name):
                continue
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                out[target.id].add(value.value)
            elif isinstance(value, ast.Dict):
                out[target.id] |= {
                    v.value for v in value.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
                }
                out[target.id] |= {f"@{_name(v)}" for v in value.values if _name(v)}
    # A dict of constants' names: resolve them.
    for values in out.values():
        for v in [v for v in values if v.startswith("@")]:
            values.discard(v)
            values |= out.get(v[1:], set())
    return out


class _Scanner:
    def __init__(self, trees: dict[str, ast.Module], constants: dict[str, set[str]]) -> None:
        self.trees = trees
        self.constants = constants
        self.found = Found()
        # Function name -> string values given to each of its parameters at call sites (by keyword).
        self.keyword_args: dict[tuple[str, str], set[str]] = defaultdict(set)
        for tree in trees.values():
            for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
                fn = _name(call.func)
                for kw in call.keywords:
                    if fn and kw.arg and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                        self.keyword_args[(fn, kw.arg)].add(kw.value.value)

    def resolve(
        self, expr: ast.expr, fn: ast.FunctionDef | ast.AsyncFunctionDef | None, depth: int = 0
    ) -> set[str] | None:
        """The reasons `expr` may be, or None when that cannot be told from the source."""
        if depth > 5:
            return None
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if isinstance(expr, ast.IfExp):
            a, b = self.resolve(expr.body, fn, depth + 1), self.resolve(expr.orelse, fn, depth + 1)
            return None if a is None or b is None else a | b
        if isinstance(expr, ast.Subscript):
            name = _name(expr.value)
            return self.constants.get(name) if name else None
        if isinstance(expr, ast.Attribute):
            return self.constants.get(expr.attr)
        if not isinstance(expr, ast.Name):
            return None
        if fn is not None:
            local = self._local(expr.id, fn, depth)
            if local is not None:
                return local
        return self.constants.get(expr.id)

    def _local(self, name: str, fn: ast.FunctionDef | ast.AsyncFunctionDef, depth: int) -> set[str] | None:
        values: set[str] = set()
        bound = False
        for node in ast.walk(fn):
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                bound = True
                got = self.resolve(node.value, fn, depth + 1)
                if got is None:
                    return None
                values |= got
            elif isinstance(node, ast.For) and isinstance(node.target, ast.Tuple):
                # for reason, ... in checks: the first elements of a local tuple of tuples.
                names = [_name(e) for e in node.target.elts]
                if name in names:
                    bound = True
                    got = self._loop_values(node.iter, names.index(name), fn)
                    if got is None:
                        return None
                    values |= got
        args = fn.args
        params = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
        if name in params:
            bound = True
            defaults = dict(
                zip([a.arg for a in args.args][len(args.args) - len(args.defaults) :], args.defaults, strict=True)
            )
            default = defaults.get(name)
            if default is None:
                return None
            got = self.resolve(default, None, depth + 1)
            if got is None:
                return None
            values |= got | self.keyword_args.get((fn.name, name), set())
        return values if bound else None

    def _loop_values(
        self, iterable: ast.expr, index: int, fn: ast.FunctionDef | ast.AsyncFunctionDef
    ) -> set[str] | None:
        if isinstance(iterable, ast.Name):
            for node in ast.walk(fn):
                if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == iterable.id for t in node.targets
                ):
                    iterable = node.value
                    break
        if not isinstance(iterable, ast.Tuple | ast.List):
            return None
        out: set[str] = set()
        for row in iterable.elts:
            if not isinstance(row, ast.Tuple) or index >= len(row.elts):
                return None
            got = self.resolve(row.elts[index], None)
            if got is None:
                return None
            out |= got
        return out

    def scan(self, path: str, tree: ast.Module, only: frozenset[str] | None = None) -> None:
        """Record the refusals of one module (`only`: keep just these reasons)."""
        for fn, call in _calls(tree):
            for code, expr in self._refusals(call, fn):
                got = self.resolve(expr, fn)
                if got is None:
                    where = (path, fn.name if fn else "")
                    if where not in DYNAMIC:
                        self.found.unresolved.append(f"{path}:{call.lineno} ({ast.unparse(expr)})")
                    continue
                for reason in got:
                    if only is None or reason in only:
                        self.found.reasons[code].add(reason)
        # The reasons of job_task_ids: the first literal of each tuple it stores.
        for fn, _ in _calls(tree):
            if fn is not None and fn.name == "job_task_ids":
                for node in ast.walk(fn):
                    if isinstance(node, ast.Tuple) and node.elts and isinstance(node.elts[0], ast.Constant):
                        self.found.reasons["ALREADY_EXISTS"].add(str(node.elts[0].value))
                break

    def _refusals(
        self, call: ast.Call, fn: ast.FunctionDef | ast.AsyncFunctionDef | None
    ) -> Iterator[tuple[str, ast.expr]]:
        callee = _name(call.func)
        if callee in CALL_CODES and call.args:
            yield CALL_CODES[callee], call.args[0]
            return
        if callee == "AddTaskResult":
            for kw in call.keywords:
                if kw.arg == "error_reason":
                    yield "ALREADY_EXISTS", kw.value
            return
        if callee == "ErrorInfo" and fn is not None:
            codes = {
                c
                for n in ast.walk(fn)
                if isinstance(n, ast.keyword) and n.arg == "code" and (c := _status_code(n.value))
            }
            for kw in call.keywords:
                if kw.arg == "reason" and len(codes) == 1:
                    yield codes.pop(), kw.value
            return
        for i, arg in enumerate(call.args[:-1]):
            code = _status_code(arg)
            if code is not None:
                yield code, call.args[i + 1]
                return


def _calls(tree: ast.Module) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef | None, ast.Call]]:
    """Every call, with the innermost function it is in (None at module level)."""

    def walk(
        node: ast.AST, fn: ast.FunctionDef | ast.AsyncFunctionDef | None
    ) -> Iterator[tuple[ast.FunctionDef | ast.AsyncFunctionDef | None, ast.Call]]:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else fn
            if isinstance(child, ast.Call):
                yield inner, child
            yield from walk(child, inner)

    yield from walk(tree, None)


def _parse(paths: Iterable[Path]) -> dict[str, ast.Module]:
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text(), str(p)) for p in sorted(paths)}


def find(root: Path = ROOT) -> Found:
    """Every reason of the public API, by status code (and the refusals that could not be read)."""
    trees = _parse(p for d in SOURCES for p in (root / d).rglob("*.py"))
    agent = _parse([root / AGENT_FILES])
    scanner = _Scanner(trees | agent, _constants(trees | agent))
    for path, tree in trees.items():
        scanner.scan(path, tree)
    from shoal.agenterrors import REASONS  # the file reasons the control plane passes on

    scanner.scan(AGENT_FILES, agent[AGENT_FILES], only=frozenset(REASONS))
    found = scanner.found
    found.reasons = {code: {r for r in rs if UPPER.match(r)} for code, rs in found.reasons.items()}
    return found


def markdown(found: Found) -> str:
    """The list as README lines: one per status code, its reasons in order."""
    lines = [f"- `{code}`: " + ", ".join(f"`{r}`" for r in sorted(rs)) for code, rs in sorted(found.reasons.items())]
    return "\n".join(lines)


def readme_list(text: str) -> str:
    """What README's markers enclose now."""
    start, end = text.index(START) + len(START), text.index(END)
    return text[start:end].strip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the list in README.md")
    parser.add_argument("--check", action="store_true", help="fail when README.md's list is stale")
    args = parser.parse_args(argv)
    found = find()
    if found.unresolved:
        print("refusals whose reason cannot be read (add them to DYNAMIC, saying where their reasons are found):")
        print("\n".join(f"  {u}" for u in found.unresolved))
        return 1
    listed = markdown(found)
    text = README.read_text()
    if args.check:
        if readme_list(text) != listed:
            print("README.md's list of error reasons is stale: run scripts/error_reasons.py --write")
            return 1
        return 0
    if args.write:
        start, end = text.index(START) + len(START), text.index(END)
        README.write_text(text[:start] + "\n" + listed + "\n" + text[end:])
        return 0
    print(listed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
