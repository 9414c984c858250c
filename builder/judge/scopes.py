"""Python's name scoping, read from a syntax tree: which function binds each name.

A name bound anywhere in a function (a parameter, an assignment, an import, a definition, a
loop, `with` or `except` target) is that function's local everywhere in it: Python decides this
when it compiles the function, so such a name is never a built-in or a module's name there,
whatever it is called (FlagGems's `def avg_pool1d(input, ...)`). Comprehensions and lambdas are
functions too. A `global` or `nonlocal` declaration sends the name elsewhere. Module and class
bodies are looked up at run time (a class body reads a built-in until its own assignment runs,
a module's `del` brings a built-in back), so a binding there never makes a name surely local.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

#: Nodes whose own names are local to them, as in a function.
FUNCTION_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
                   ast.GeneratorExp)
COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
SCOPES = (ast.Module, ast.ClassDef, *FUNCTION_SCOPES)


class Scopes:
    """Where the names of a module are bound. `local(name_node)` is the function that binds the
    name there, or None when it is the module's, a class body's or a built-in."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.scope_of: dict[int, ast.AST] = {}  # id(node) -> the scope that evaluates it
        self.enclosing: dict[int, ast.AST] = {}  # id(scope) -> the scope it is defined in
        self.locals: dict[int, set[str]] = {}  # id(scope) -> names local to it
        self.globals: dict[int, set[str]] = {}  # id(scope) -> names it declares global
        self._visit(tree, None)
        for scope in self._all_scopes():
            self.locals[id(scope)] = self._local_names(scope)
        #: Names the module or a class body binds, directly or through `global`: they are not
        #: surely the built-ins of the same name anywhere.
        self.module_bound = self._bound_at_module()

    # -- queries ------------------------------------------------------------------------------

    def local(self, node: ast.Name | ast.arg) -> ast.AST | None:
        """The function (or lambda, comprehension) whose local `node` is, else None."""
        name = node.id if isinstance(node, ast.Name) else node.arg
        scope: ast.AST | None = self.scope_of.get(id(node))
        first = True
        while scope is not None and not isinstance(scope, ast.Module):
            if isinstance(scope, ast.ClassDef):
                if first:
                    return None  # a class body's names are looked up at run time
            elif name in self.globals[id(scope)]:
                return None
            elif name in self.locals[id(scope)]:
                return scope
            first = False
            scope = self.enclosing.get(id(scope))
        return None

    def maybe_builtin(self, node: ast.Name) -> bool:
        """Whether `node` can be the built-in of its name (no function binds it)."""
        return self.local(node) is None

    def surely_builtin(self, node: ast.Name) -> bool:
        """Whether `node` is the built-in of its name: nothing in the file binds that name where
        `node` can see it."""
        return self.local(node) is None and node.id not in self.module_bound

    def in_function(self, node: ast.AST) -> bool:
        """Whether `node` is evaluated inside a function (its bindings are that function's)."""
        return isinstance(self.scope_of.get(id(node)), FUNCTION_SCOPES)

    # -- building -----------------------------------------------------------------------------

    def _visit(self, scope: ast.AST, parent: ast.AST | None) -> None:
        if parent is not None:
            self.enclosing[id(scope)] = parent
        for node in _own_nodes(scope):
            if node is scope:
                continue
            self.scope_of[id(node)] = scope
            if isinstance(node, SCOPES):
                self._visit(node, scope)
        if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for arg in _parameters(scope.args):
                self.scope_of[id(arg)] = scope

    def _all_scopes(self) -> Iterator[ast.AST]:
        yield self.tree
        yield from (n for n in ast.walk(self.tree) if isinstance(n, SCOPES) and n is not self.tree)

    def _local_names(self, scope: ast.AST) -> set[str]:
        declared: set[str] = set()
        names: set[str] = set()
        if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            names |= {a.arg for a in _parameters(scope.args)}
        for node in _own_nodes(scope):
            if node is scope:
                continue
            if isinstance(node, (ast.Global, ast.Nonlocal)):
                declared |= set(node.names)
            names |= set(_bound_names(node, scope))
        walrus = {n.target.id for n in _own_nodes(scope) if isinstance(n, ast.NamedExpr)
                  and isinstance(n.target, ast.Name)}
        if isinstance(scope, COMPREHENSIONS):
            names -= walrus  # a walrus in a comprehension binds in the enclosing function
        else:
            names |= self._walrus_from_comprehensions(scope)
        self.globals[id(scope)] = {n for node in _own_nodes(scope) if isinstance(node, ast.Global) for n in node.names}
        return names - declared

    def _walrus_from_comprehensions(self, scope: ast.AST) -> set[str]:
        """Walrus targets of the comprehensions directly inside `scope` (they bind here)."""
        found: set[str] = set()
        for node in _own_nodes(scope):
            if node is not scope and isinstance(node, COMPREHENSIONS):
                for sub in _own_nodes(node):
                    if isinstance(sub, ast.NamedExpr) and isinstance(sub.target, ast.Name):
                        found.add(sub.target.id)
                found |= self._walrus_from_comprehensions(node)
        return found

    def _bound_at_module(self) -> set[str]:
        names: set[str] = set()
        for scope in self._all_scopes():
            if isinstance(scope, (ast.Module, ast.ClassDef)):
                names |= {n for node in _own_nodes(scope) if node is not scope for n in _bound_names(node, scope)}
            else:
                names |= self.globals.get(id(scope), set())
        return names


def _parameters(args: ast.arguments) -> list[ast.arg]:
    every = args.posonlyargs + args.args + args.kwonlyargs
    return every + [a for a in (args.vararg, args.kwarg) if a is not None]


def _bound_names(node: ast.AST, scope: ast.AST) -> Iterator[str]:
    """The names `node` itself binds in the scope that evaluates it."""
    if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
        yield node.id
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node is not scope:
        yield node.name
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        for alias in node.names:
            if alias.name != "*":
                yield alias.asname or alias.name.split(".")[0]
    elif isinstance(node, ast.ExceptHandler) and node.name:
        yield node.name
    elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
        yield node.name
    elif isinstance(node, ast.MatchMapping) and node.rest:
        yield node.rest


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """`scope` and the nodes evaluated in it, not in the scopes nested in it (whose decorators,
    defaults, annotations, bases and first iterable are evaluated here; their bodies are not)."""
    yield scope
    if isinstance(scope, ast.Lambda):
        roots: list[ast.AST] = [scope.body]
    elif isinstance(scope, COMPREHENSIONS):
        elements = [scope.key, scope.value] if isinstance(scope, ast.DictComp) else [scope.elt]
        roots = elements + [part for i, gen in enumerate(scope.generators)
                            for part in ([gen.target, *gen.ifs] + ([gen.iter] if i else []))]
    else:
        roots = list(getattr(scope, "body", []))
    stack = list(reversed(roots))
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(_evaluated_here(node)))


def _evaluated_here(node: ast.AST) -> list[ast.AST]:
    """The children of `node` evaluated in the same scope as `node`."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        args = node.args
        notes = [a.annotation for a in _parameters(args) if a.annotation] + ([node.returns] if node.returns else [])
        return [*node.decorator_list, *args.defaults, *[d for d in args.kw_defaults if d], *notes]
    if isinstance(node, ast.Lambda):
        return [*node.args.defaults, *[d for d in node.args.kw_defaults if d]]
    if isinstance(node, ast.ClassDef):
        return [*node.decorator_list, *node.bases, *node.keywords]
    if isinstance(node, COMPREHENSIONS):
        return [node.generators[0].iter]
    return list(ast.iter_child_nodes(node))
