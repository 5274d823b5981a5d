"""A small evaluator of Terraform configurations, for testing infra/ where Terraform cannot run.

python-hcl2 parses the .tf files; this evaluates their expressions with Terraform's semantics where they matter: maps
iterate in key order, a for expression that builds a duplicate key is an error, `try` catches a missing attribute,
`for_each` expands a resource into instances, and a reference to an instance that does not exist fails. It covers the
subset infra/ uses (for expressions, templates, conditionals, references, the collection functions) and raises
NotImplementedError outside it. Attributes the provider computes are modelled for the resource types infra/ reads
(COMPUTED); any other is a `Computed` placeholder naming its reference.

    tf = TerraformModule(Path("infra"), {"project_id": "p"})
    tf.local("subscriptions")                                  # a local, evaluated
    tf.instances("google_pubsub_topic", "event")               # for_each key -> each.value
    tf.argument("google_pubsub_subscription", "event", key, "dead_letter_policy", "dead_letter_topic")
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import yaml
from lark import Token, Tree

PROJECT_NUMBER = "123456789012"  # data.google_project.*.number


class EvalError(Exception):
    """An expression Terraform would reject (missing attribute, duplicate key, reference to a missing instance)."""


@dataclass(frozen=True)
class Computed:
    """A value known only after apply, kept as the reference it came from."""

    type: str
    name: str
    key: Any
    attr: str

    def __str__(self) -> str:
        index = "" if self.key is None else f"[{json.dumps(self.key)}]"
        return f"${{{self.type}.{self.name}{index}.{self.attr}}}"


@dataclass
class Block:
    type: str
    labels: tuple[str, ...]
    attrs: dict[str, Tree] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    def nested(self, block_type: str) -> list[Block]:
        return [b for b in self.blocks if b.type == block_type]


def _children(node: Tree) -> list[Any]:
    """Children without layout (newlines, comments)."""
    return [c for c in node.children if not (isinstance(c, Tree) and c.data == "new_line_or_comment")]


def _trees(node: Tree) -> list[Tree]:
    return [c for c in _children(node) if isinstance(c, Tree)]


def _name(node: Tree) -> str:
    return str(node.children[0])


def _unescape(chars: str) -> str:
    out, i = [], 0
    while i < len(chars):
        if chars[i] == "\\" and i + 1 < len(chars):
            nxt = chars[i + 1]
            if nxt == "u":
                out.append(chr(int(chars[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append({"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}.get(nxt, nxt))
            i += 2
        else:
            out.append(chars[i])
            i += 1
    return "".join(out)


def _parse_body(body: Tree, block_type: str = "", labels: tuple[str, ...] = ()) -> Block:
    block = Block(block_type, labels)
    for item in _trees(body):
        if item.data == "attribute":
            name, expression = _trees(item)
            block.attrs[_name(name)] = expression
        elif item.data == "block":
            parts = _trees(item)
            child_labels = tuple(_name(p) if p.data == "identifier" else _string_literal(p) for p in parts[1:-1])
            block.blocks.append(_parse_body(parts[-1], _name(parts[0]), child_labels))
    return block


def _string_literal(node: Tree) -> str:
    parts = [c for c in node.children if isinstance(c, Tree)]
    return "".join(_unescape(str(p.children[0])) for p in parts)


def _truthy(value: Any) -> bool:
    if not isinstance(value, bool):
        raise EvalError(f"a condition must be a bool, got {value!r}")
    return value


def _items(collection: Any) -> list[tuple[Any, Any]]:
    """(key, value) pairs in Terraform's order: maps by key, lists by index, sets by value."""
    if isinstance(collection, Mapping):
        return [(k, collection[k]) for k in sorted(collection)]
    if isinstance(collection, frozenset):
        return [(v, v) for v in sorted(collection)]
    if isinstance(collection, list | tuple):
        return list(enumerate(collection))
    raise EvalError(f"cannot iterate over {collection!r}")


def _template_str(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        raise EvalError("null in a string template")
    if isinstance(value, dict | list | tuple | frozenset):
        raise EvalError(f"a collection in a string template: {value!r}")
    return str(value)


def _flatten(value: Any) -> list[Any]:
    out: list[Any] = []
    for item in value:
        out.extend(_flatten(item) if isinstance(item, list | tuple) else [item])
    return out


def _coalesce(*values: Any) -> Any:
    for value in values:
        if value is not None and value != "":
            return value
    raise EvalError("coalesce: no non-null, non-empty argument")


def _merge(*maps: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for m in maps:
        if m is not None:
            merged.update(m)
    return merged


def _setproduct(*collections: Any) -> list[list[Any]]:
    result: list[list[Any]] = [[]]
    for collection in collections:
        result = [prefix + [v] for prefix in result for _, v in _items(collection)]
    return result if collections else []


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "coalesce": _coalesce,
    "concat": lambda *lists: [v for lst in lists for v in lst],
    "contains": lambda collection, value: value in [v for _, v in _items(collection)],
    "flatten": _flatten,
    "keys": lambda m: sorted(m),
    "length": len,
    "lookup": lambda m, key, default=None: m.get(key, default),
    "merge": _merge,
    "setproduct": _setproduct,
    "setunion": lambda *sets: frozenset(v for s in sets for _, v in _items(s)),
    "sort": lambda values: sorted(v for _, v in _items(values)),
    "toset": lambda values: frozenset(v for _, v in _items(values)),
    "values": lambda m: [m[k] for k in sorted(m)],
    "yamldecode": yaml.safe_load,
}

BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "%": lambda a, b: a % b,
    "&&": lambda a, b: _truthy(a) and _truthy(b),
    "||": lambda a, b: _truthy(a) or _truthy(b),
}


@dataclass(frozen=True)
class _Resources:
    """`google_x` (or `data.google_x`): indexing by name gives a resource block's instances."""

    module: TerraformModule
    type: str
    data: bool = False


@dataclass(frozen=True)
class _Instances:
    module: TerraformModule
    type: str
    name: str
    data: bool


@dataclass(frozen=True)
class _Instance:
    module: TerraformModule
    type: str
    name: str
    key: Any
    data: bool

    def attr(self, attr: str) -> Any:
        return self.module.instance_attr(self.type, self.name, self.key, attr, data=self.data)


class TerraformModule:
    """The .tf files of one folder: variables, locals, resources and data sources, evaluated on demand."""

    def __init__(self, folder: Path, variables: Mapping[str, Any] | None = None) -> None:
        self.folder = folder
        self.root = Block("module", ())
        for tf in sorted(folder.glob("*.tf")):
            file_block = _parse_body(_trees(hcl2.parses_to_tree(tf.read_text()))[0])
            self.root.attrs.update(file_block.attrs)
            self.root.blocks.extend(file_block.blocks)
        self.locals_src: dict[str, Tree] = {}
        for block in self.root.nested("locals"):
            for name, node in block.attrs.items():
                assert name not in self.locals_src, f"local.{name} declared twice"
                self.locals_src[name] = node
        self.resources = {(b.labels[0], b.labels[1]): b for b in self.root.nested("resource")}
        self.data = {(b.labels[0], b.labels[1]): b for b in self.root.nested("data")}
        self.var_blocks = {b.labels[0]: b for b in self.root.nested("variable")}
        self._var_values = dict(variables or {})
        self._locals: dict[str, Any] = {}
        self._evaluating: set[str] = set()
        self._instances: dict[tuple[bool, str, str], dict[Any, Any]] = {}

    # -- names --------------------------------------------------------------------------------------------------
    def var(self, name: str) -> Any:
        if name in self._var_values:
            return self._var_values[name]
        if name not in self.var_blocks:
            raise EvalError(f"undeclared variable {name!r}")
        default = self.var_blocks[name].attrs.get("default")
        if default is None:
            raise EvalError(f"variable {name!r} has no default and no value")
        return self.eval(default)

    def local(self, name: str) -> Any:
        if name not in self._locals:
            if name not in self.locals_src:
                raise EvalError(f"undeclared local {name!r}")
            if name in self._evaluating:
                raise EvalError(f"local.{name} refers to itself")
            self._evaluating.add(name)
            try:
                self._locals[name] = self.eval(self.locals_src[name])
            finally:
                self._evaluating.discard(name)
        return self._locals[name]

    def block(self, type_: str, name: str, data: bool = False) -> Block:
        table = self.data if data else self.resources
        if (type_, name) not in table:
            raise EvalError(f"reference to undeclared {'data.' if data else ''}{type_}.{name}")
        return table[(type_, name)]

    def instances(self, type_: str, name: str, data: bool = False) -> dict[Any, Any]:
        """Instance key → each.value: a for_each map or set, or the single instance (key None)."""
        cache_key = (data, type_, name)
        if cache_key not in self._instances:
            block = self.block(type_, name, data)
            if "count" in block.attrs:
                raise EvalError("count is not used in infra/: use for_each")
            if "for_each" not in block.attrs:
                self._instances[cache_key] = {None: None}
            else:
                each = self.eval(block.attrs["for_each"])
                if not isinstance(each, Mapping | frozenset):
                    raise EvalError(f"{type_}.{name}: for_each needs a map or a set, got {type(each).__name__}")
                self._instances[cache_key] = dict(_items(each))
        return self._instances[cache_key]

    def instance_attr(self, type_: str, name: str, key: Any, attr: str, *, data: bool = False) -> Any:
        """An argument of one instance, or the attribute the provider computes (see COMPUTED)."""
        block = self.block(type_, name, data)
        instances = self.instances(type_, name, data)
        if key not in instances:
            raise EvalError(f"{type_}.{name}[{key!r}] does not exist")
        each = {"key": key, "value": instances[key]}
        if attr in block.attrs:
            return self.eval(block.attrs[attr], {"each": each} if key is not None else {})
        computed = COMPUTED.get((type_, attr))
        if computed is not None:
            return computed(lambda a: self.instance_attr(type_, name, key, a, data=data), self)
        return Computed(("data." if data else "") + type_, name, key, attr)

    def argument(self, type_: str, name: str, key: Any, *path: str) -> Any:
        """An argument of one resource instance, through nested blocks: ("dead_letter_policy", "dead_letter_topic")."""
        block = self.block(type_, name)
        for nested in path[:-1]:
            (block,) = block.nested(nested)
        node = block.attrs.get(path[-1])
        if node is None:
            raise EvalError(f"{type_}.{name} has no argument {'.'.join(path)}")
        each = {"key": key, "value": self.instances(type_, name)[key]}
        return self.eval(node, {"each": each} if key is not None else {})

    # -- expressions --------------------------------------------------------------------------------------------
    def eval(self, node: Any, scope: Mapping[str, Any] | None = None) -> Any:
        scope = scope or {}
        if isinstance(node, Token):
            raise EvalError(f"unexpected token {node!r}")
        kind = node.data
        method = getattr(self, f"_e_{kind}", None)
        if method is None:
            raise NotImplementedError(f"HCL construct {kind!r} is outside the evaluated subset")
        return method(node, scope)

    def _e_expr_term(self, node: Tree, scope: Mapping[str, Any]) -> Any:
        (inner,) = _trees(node)  # a parenthesized expression or any term
        return self.eval(inner, scope)

    def _e_int_lit(self, node: Tree, scope: Mapping[str, Any]) -> Any:
        return int(str(node.children[0]))

    def _e_float_lit(self, node: Tree, scope: Mapping[str, Any]) -> Any:
        return float(str(node.children[0]))

    def _e_literal_value(self, node: Tree, scope: Mapping[str, Any]) -> Any:
        return {"true": True, "false": False, "null": None}[str(node.children[0])]

    def _e_string(self, node: Tree, scope: Mapping[str, Any]) -> Any:
        out: list[str] = []
        for part in (c for c in node.children if isinstance(c, Tree)):
            (piece,) = part.children
            if isinstance(piece, Token) and piece.type == "STRING_CHARS":
                out.append(_unescape(str(piece)))
            elif isinstance(piece, Token) and piece.type == "ESCAPED_INTERPOLATION":
                out.append(str(piece)[1:])
            elif isinstance(piece, Tree) and piece.data == "interpolation":
                (expression,) = _trees(piece)
                out.append(_template_str(self.eval(expression, scope)))
            else:
                raise NotImplementedError(f"template construct {piece!r}")
        return "".join(out)

    def _e_tuple(self, node: Tree, scope: Mapping[str, Any]) -> Any:
        return [self.eval(c, scope) for c in _trees(node)]

    def _e_object(self, node: Tree, scope: Mapping[str, Any]) -> Any:
        result: dict[str, Any] = {}
        for elem in _trees(node):
            key_node, value_node = _trees(elem)
            (key_expr,) = _trees(key_node)
            key = self._object_key(key_expr, scope)
            result[key] = self.eval(value_node, scope)
        return result

    def _object_key(self, node: Tree, scope: Mapping[str, Any]) -> str:
        inner = _trees(node)[0] if node.data == "expr_term" and _trees(node) else node
        if inner.data == "identifier":  # a bare name is a literal key, as in Terraform
            return _name(inner)
        return _template_str(self.eval(node, scope))

    def _e_identifier(self, node: Tree, scope: Mapping[str, Any]) -> Any:
        name = _name(node)
        if name in scope:
            return scope[name]
        if name in ("var", "local", "path", "each", "data"):
            return ("namespace", name)
        if any(t == name for t, _ in self.resources):
            return _Resources(self, name)
        raise EvalError(f"unknown name {name!r}")

    def _e_get_attr_expr_term(self, node: Tree, scope: Mapping[str, Any]) -> Any:
        target_node, get_attr = _trees(node)
        attr = _name(_trees(get_attr)[0])
        target = self.eval(target_node, scope)
        return self._get_attr(target, attr)

    def _get_attr(self, target: Any, attr: str) -> Any:
        if target == ("namespace", "var"):
            return self.var(attr)
        if target == ("namespace", "local"):
            return self.local(attr)
        if target == ("namespace", "path"):
            if attr != "module":
                raise EvalError(f"path.{attr} is not supported")
            return str(self.folder)
        if target == ("namespace", "each"):
            raise EvalError("`each` outside a resource with for_each")
        if target == ("namespace", "data"):
            return _Resources(self, attr, data=True)
        if isinstance(target, _Resources):
            self.block(target.type, attr, target.data)
            single = _Instances(self, target.type, attr, target.data)
            if None in self.instances(target.type, attr, target.data):
                return _Instance(self, target.type, attr, None, target.data)
            return single
        if isinstance(target, _Instance):
            return target.attr(attr)
        if isinstance(target, _Instances):
            raise EvalError(f"{target.type}.{target.name} has for_each: index it before .{attr}")
        if isinstance(target, Mapping):
            if attr not in target:
                raise EvalError(f"object has no attribute {attr!r}")
            return target[attr]
        raise EvalError(f"cannot read .{attr} of {target!r}")

    def _e_index_expr_term(self, node: Tree, scope: Mapping[str, Any]) -> Any:
        target_node, index = _trees(node)
        target = self.eval(target_node, scope)
        if index.data == "short_index":
            key: Any = int(str(index.children[-1]))
        else:
            (key_node,) = _trees(index)
            key = self.eval(key_node, scope)
        if isinstance(target, _Instances):
            if key not in self.instances(target.type, target.name, target.data):
                raise EvalError(f"{target.type}.{target.name}[{key!r}] does not exist")
            return _Instance(self, target.type, target.name, key, target.data)
        try:
            return target[key]
        except (KeyError, IndexError, TypeError):
            raise EvalError(f"no element {key!r} in {target!r}") from None

    def _e_function_call(self, node: Tree, scope: Mapping[str, Any]) -> Any:
        parts = _trees(node)
        name = _name(parts[0])
        arg_nodes = _trees(parts[1]) if len(parts) > 1 else []
        expand = len(parts) > 1 and any(isinstance(c, Token) and c.type == "ELLIPSIS" for c in parts[1].children)
        if name == "try":
            for arg in arg_nodes:
                try:
                    return self.eval(arg, scope)
                except EvalError:
                    continue
            raise EvalError("try: every argument failed")
        if name == "file":
            (path_node,) = arg_nodes
            return Path(self.eval(path_node, scope)).read_text()
        if name not in FUNCTIONS:
            raise NotImplementedError(f"function {name}()")
        args = [self.eval(a, scope) for a in arg_nodes]
        if expand:
            args = args[:-1] + list(args[-1])
        try:
            return FUNCTIONS[name](*args)
        except EvalError:
            raise
        except Exception as exc:  # a Python error of a function is a Terraform evaluation error
            raise EvalError(f"{name}(): {exc}") from exc

    def _for_bindings(self, intro: Tree, scope: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        names = [_name(c) for c in _trees(intro) if c.data == "identifier"]
        (collection_node,) = [c for c in _trees(intro) if c.data != "identifier"]
        collection = self.eval(collection_node, scope)
        if collection is None:
            raise EvalError("for expression over null")
        for key, value in _items(collection):
            bound = dict(scope)
            if len(names) == 2:
                bound[names[0]], bound[names[1]] = key, value
            else:
                bound[names[0]] = value
            yield bound

    def _for_parts(self, node: Tree) -> tuple[Tree, list[Tree], Tree | None]:
        parts = _trees(node)
        intro = parts[0]
        cond = parts[-1] if parts[-1].data == "for_cond" else None
        body = parts[1:-1] if cond is not None else parts[1:]
        return intro, body, cond

    def _keep(self, cond: Tree | None, scope: Mapping[str, Any]) -> bool:
        if cond is None:
            return True
        (expression,) = _trees(cond)
        return _truthy(self.eval(expression, scope))

    def _e_for_tuple_expr(self, node: Tree, scope: Mapping[str, Any]) -> Any:
        intro, (value_node,), cond = self._for_parts(node)
        return [self.eval(value_node, s) for s in self._for_bindings(intro, scope) if self._keep(cond, s)]

    def _e_for_object_expr(self, node: Tree, scope: Mapping[str, Any]) -> Any:
        if any(isinstance(c, Token) and c.type == "ELLIPSIS" for c in node.children):
            raise NotImplementedError("grouping mode (...) of a for expression")
        intro, (key_node, value_node), cond = self._for_parts(node)
        result: dict[str, Any] = {}
        for s in self._for_bindings(intro, scope):
            if not self._keep(cond, s):
                continue
            key = _template_str(self.eval(key_node, s))
            if key in result:
                raise EvalError(f"duplicate key {key!r} in a for expression")
            result[key] = self.eval(value_node, s)
        return result

    def _e_conditional(self, node: Tree, scope: Mapping[str, Any]) -> Any:
        cond, if_true, if_false = _trees(node)
        return self.eval(if_true if _truthy(self.eval(cond, scope)) else if_false, scope)

    def _e_binary_op(self, node: Tree, scope: Mapping[str, Any]) -> Any:
        left_node, term = _trees(node)
        operator_node, right_node = _trees(term)
        operator = str(operator_node.children[0])
        return BINARY[operator](self.eval(left_node, scope), self.eval(right_node, scope))

    def _e_unary_op(self, node: Tree, scope: Mapping[str, Any]) -> Any:
        operator = str(node.children[0])
        value = self.eval(_trees(node)[0], scope)
        return (not _truthy(value)) if operator == "!" else -value


# Attributes the provider computes, for the resource types infra/ references (else a Computed placeholder).
COMPUTED: dict[tuple[str, str], Callable[[Callable[[str], Any], TerraformModule], Any]] = {
    ("google_service_account", "email"): lambda a, m: (
        f"{a('account_id')}@{m.var('project_id')}.iam.gserviceaccount.com"
    ),
    ("google_service_account", "name"): lambda a, m: f"projects/{m.var('project_id')}/serviceAccounts/{a('email')}",
    ("google_pubsub_topic", "id"): lambda a, m: f"projects/{m.var('project_id')}/topics/{a('name')}",
    ("google_pubsub_subscription", "id"): lambda a, m: f"projects/{m.var('project_id')}/subscriptions/{a('name')}",
    ("google_project", "number"): lambda a, m: PROJECT_NUMBER,
}
