"""Per-language tables (and the few hooks that need code) for the tree-sitter walker."""

from __future__ import annotations

import bisect
import re

import tree_sitter

from codesearch import languages as _registry
from codesearch.indexer.chunking import rust_macros
from codesearch.indexer.chunking.treesitter import (
    CODE,
    DOC,
    IGNORE,
    PREFIX,
    TRANSPARENT,
    Decl,
    Grammar,
    Node,
    Role,
    first_line,
    parse,
)

# ----------------------------------------------------------------------------------------
# Rust


def _strip_generics(text: str, params: set[str]) -> str:
    """Drop ``<...>`` groups that merely list the impl's own type parameters / lifetimes
    (``Foo<T, 'a>`` -> ``Foo``; ``From<&[T]>`` and ``AsRef<Vec<T>>`` are kept)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "<":
            out.append(ch)
            i += 1
            continue
        depth, j = 0, i
        while j < n:
            if text[j] == "<":
                depth += 1
            elif text[j] == ">" and text[j - 1] != "-":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        group = text[i : j + 1]
        idents = re.findall(r"'?[A-Za-z_][A-Za-z0-9_]*", group)
        plain = not re.sub(r"'?[A-Za-z_][A-Za-z0-9_]*|[<>,\s]", "", group)
        if not (plain and all(x in params or x in ("_", "'_") for x in idents)):
            out.append(group)
        i = j + 1
    return "".join(out)


# Item nodes that make no chunk of their own but show that a macro body is a list of items.
_RUST_ITEMS_TOO = frozenset({"macro_invocation", "use_declaration", "extern_crate_declaration", "mod_item"})


class Rust(Grammar):
    name = "rust"
    attribute_line = re.compile(r"\s*#!?\[")
    prefix = frozenset({"line_comment", "block_comment", "attribute_item"})
    ignore = frozenset(
        {"use_declaration", "extern_crate_declaration", "inner_attribute_item", "shebang", "empty_statement"}
    )
    decls = {
        "function_item": "function",
        "function_signature_item": "function",
        "struct_item": "struct",
        "enum_item": "enum",
        "union_item": "union",
        "type_item": "type",
        "associated_type": "type",
        "const_item": "const",
        "static_item": "static",
        "macro_definition": "macro",
    }
    containers = {"impl_item": "impl", "trait_item": "trait", "mod_item": "mod", "foreign_mod_item": "extern"}
    mergeable = frozenset({"const", "static", "type", "impl"})
    absorb = frozenset({"const", "type"})
    method_parents = frozenset({"impl", "trait"})
    # Items found in a macro body: at least this share of its non-blank lines must be items.
    macro_min_item_share = 0.5

    def __init__(self, source: bytes = b"") -> None:
        super().__init__(source)
        self.masked: rust_macros.Masked | None = None  # Verus bodies, masked (made on first use)
        self.trees: list[tree_sitter.Tree] = []  # macro bodies parsed again: kept alive while walking

    def load(self) -> object:
        import tree_sitter_rust

        return tree_sitter_rust.language()

    def classify(self, node: Node, parent: Decl | None) -> Role:
        t = node.type
        if t in ("line_comment", "block_comment") and node.child_by_field_name("inner") is not None:
            return DOC
        if t == "mod_item" and node.child_by_field_name("body") is None:
            return IGNORE  # `mod foo;` is like a `use`
        if t in ("expression_statement", "macro_invocation") and parent is not None and parent.kind == "macro_call":
            return CODE
        if t == "expression_statement" and node.named_child_count == 1:
            inner = node.named_children[0]
            if inner.type == "macro_invocation":
                return self._macro(inner) or CODE
        if t == "macro_invocation":
            return self._macro(node) or CODE
        if t == "function_signature_item" and parent is not None and parent.kind == "extern":
            return Decl("function", self.name_of(node), mergeable=True)  # the declarations of an extern block
        role = super().classify(node, parent)
        if isinstance(role, Decl):
            if t == "function_signature_item":  # trait method without body / extern fn
                role.absorb = role.mergeable = True
                role.kind = "method" if parent is not None and parent.kind == "trait" else "function"
            if t in ("function_item", "function_signature_item"):
                role.kind = self._function_kind(node, parent) or role.kind
            if parent is not None and parent.kind == "macro":
                role.absorb = False  # a macro body is no type: its consts are items of their own
            if t == "struct_item" and self.masked is not None:
                name = node.child_by_field_name("name")
                if name is not None and self.masked.modes.get(name.start_byte) == ("broadcast", "group"):
                    role.kind = "broadcast_group"
            if t == "impl_item":
                role.header = "auto"
                role.mergeable = True  # `unsafe impl Send for X {}` one-liners
            elif t in ("mod_item", "foreign_mod_item"):
                role.header = "auto"
        return role

    def _function_kind(self, node: Node, parent: Decl | None) -> str | None:
        """A kind that says the function's verification mode: Verus ``spec``/``proof``/
        ``axiom`` functions, Kani proof harnesses, Creusot/Prusti logic functions."""
        name = node.child_by_field_name("name")
        if self.masked is not None and name is not None and name.start_byte in self.masked.modes:
            kind = rust_macros.mode_kind(self.masked.modes[name.start_byte])
            if kind is not None:
                return kind
        attributes = []
        p = node.prev_named_sibling
        while p is not None and p.type in ("attribute_item", "line_comment", "block_comment"):
            if p.type == "attribute_item":
                attributes.append(self.text(p))
            p = p.prev_named_sibling
        kind = rust_macros.attribute_kind(attributes)
        if kind is None and parent is not None and parent.kind == "macro" and parent.name == "predicate!":
            kind = "spec"  # Prusti's predicate! { fn ... }
        return kind

    # -- items inside macro bodies ---------------------------------------------------
    def _macro(self, mac: Node) -> Decl | None:
        """A macro invocation whose body parses as items: a container of those items."""
        tt = next((c for c in reversed(mac.named_children) if c.type == "token_tree"), None)
        path = mac.child_by_field_name("macro")
        if tt is None or path is None:
            return None
        name = self.text(path).rsplit("::", 1)[-1].strip()
        verus = name in rust_macros.VERUS_MACROS
        nodes = self._items_in(tt, verus, nested=True)
        if nodes:
            return Decl("macro", f"{name}!", label=f"{name}!", body=nodes, header="auto")
        declared = rust_macros.invocation_name(self.source, tt.start_byte + 1, tt.end_byte - 1)
        if declared:  # DEFINE_GUID!{IID_IFoo, ..}, bitflags! { pub struct Flags .. }
            return Decl("macro_call", declared, mergeable=True)
        return None

    def _items_in(self, tt: Node, verus: bool, nested: bool) -> list[Node]:
        """The item nodes of token tree ``tt`` parsed as Rust source, or [] when it does not
        parse as items. With ``nested``, a body that is no item list itself (``cfg_if!``'s
        ``if #[cfg(..)] { items } else { items }``) gives the items of its brace groups."""
        start, end = tt.start_byte + 1, tt.end_byte - 1
        if end - start < 2 or not rust_macros.may_hold_items(self.source, start, end):
            return []
        if self.masked is None:
            self.masked = rust_macros.Masked(bytearray(self.source))
        if verus:
            rust_macros.mask_verus(self.source, start, end, self.masked)
        source = self.masked.source
        r0, r1 = tt.start_point.row, tt.end_point.row
        tree = self._parse_range(source, start, end)
        if tree is not None:
            nodes = [c for c in tree.root_node.children if start <= c.start_byte and c.end_byte <= end]
            if any(n.type == "ERROR" for n in nodes):
                # Recover item boundaries where the parser errs: parse each item on its own.
                nodes = []
                for s0, s1 in rust_macros.item_segments(source, start, end):
                    seg = self._parse_range(source, s0, s1)
                    if seg is not None and seg.root_node.has_error:
                        rust_macros.blank_fn_bodies(source, s0, s1)  # an unreadable body: keep the signature
                        seg = self._parse_range(source, s0, s1)
                    if seg is not None:
                        nodes.extend(c for c in seg.root_node.children if s0 <= c.start_byte and c.end_byte <= s1)
            covered = self._item_lines(nodes)
            body = {r for r in range(r0 + 1, r1) if r < len(self.lines) and self.lines[r].strip()}
            if covered and len(covered & body) >= self.macro_min_item_share * max(len(body), 1):
                return nodes
        if not nested:
            return []
        out: list[Node] = []
        for c in tt.named_children:
            if c.type == "token_tree" and self.source[c.start_byte : c.start_byte + 1] == b"{":
                out.extend(self._items_in(c, verus, nested=False))
        return out

    def _parse_range(self, source: bytes | bytearray, start: int, end: int) -> tree_sitter.Tree | None:
        """Parse ``source[start:end]`` alone, its nodes keeping their offsets in the file."""
        rng = tree_sitter.Range(self._point(start), self._point(end), start, end)
        tree = parse(self, source, ranges=[rng])
        if tree is not None:
            self.trees.append(tree)  # its nodes are walked later: keep it alive
        return tree

    def _point(self, offset: int) -> tuple[int, int]:
        """(row, byte column) of a byte offset of the source."""
        if not hasattr(self, "_line_starts"):
            self._line_starts = [0] + [m.end() for m in re.finditer(rb"\n", self.source)]
        row = bisect.bisect_right(self._line_starts, offset) - 1
        return row, offset - self._line_starts[row]

    @property
    def lines(self) -> list[str]:
        if not hasattr(self, "_lines"):
            self._lines = self.source.decode("utf-8", "replace").split("\n")
        return self._lines

    def _item_lines(self, nodes: list[Node]) -> set[int]:
        """0-based rows covered by item nodes (looking inside ERROR nodes)."""
        rows: set[int] = set()
        for n in nodes:
            if n.type == "ERROR":
                rows |= self._item_lines(list(n.children))
            elif n.type in self.decls or n.type in self.containers or n.type in _RUST_ITEMS_TOO:
                rows.update(range(n.start_point.row, n.end_point.row + 1))
        return rows

    def name_of(self, node: Node) -> str:
        name = node.child_by_field_name("name")
        if self.masked is not None and name is not None and name.start_byte in self.masked.names:
            return self.masked.names[name.start_byte]
        if node.type == "impl_item":
            return self._impl_name(node)
        if node.type == "foreign_mod_item":
            return ""
        return super().name_of(node)

    def label(self, node: Node, kind: str, name: str) -> str:
        if node.type == "foreign_mod_item":
            for c in node.named_children:
                if c.type == "extern_modifier":
                    return first_line(self.text(c))
            return "extern"
        return super().label(node, kind, name)

    def _impl_name(self, node: Node) -> str:
        params: set[str] = set()
        tp = node.child_by_field_name("type_parameters")
        for c in tp.named_children if tp is not None else []:
            n = c.child_by_field_name("name")
            params.add(self.text(n if n is not None else c).split(":")[0].strip())

        def short(n: Node | None) -> str:
            s = " ".join(_strip_generics(self.text(n), params).split())
            return s.rsplit("::", 1)[-1] if re.fullmatch(r"[\w:]+", s) else s

        trait = node.child_by_field_name("trait")
        typ = short(node.child_by_field_name("type"))
        if trait is None:
            return typ
        neg = "!" if any(c.type == "!" for c in node.children) else ""
        return f"{neg}{short(trait)} for {typ}"


# ----------------------------------------------------------------------------------------
# Python

_PY_DEFS = ("function_definition", "class_definition", "decorated_definition")


def _py_blocks(node: Node) -> list[Node]:
    """Statements of the blocks of an if/try/with statement (and of its clauses)."""
    out: list[Node] = []
    for c in node.named_children:
        if c.type == "block":
            out.extend(c.children)
        elif c.type in ("elif_clause", "else_clause", "except_clause", "except_group_clause", "finally_clause"):
            out.extend(_py_blocks(c))
    return out


def _py_is_module_docstring(node: Node) -> bool:
    if node.type != "expression_statement" or node.named_child_count != 1 or node.named_children[0].type != "string":
        return False
    prev = node.prev_named_sibling
    while prev is not None and prev.type == "comment":
        prev = prev.prev_named_sibling
    return prev is None


class Python(Grammar):
    name = "python"
    attribute_line = re.compile(r"\s*@")
    prefix = frozenset({"comment"})
    ignore = frozenset({"import_statement", "import_from_statement", "future_import_statement", "pass_statement"})
    decls = {"function_definition": "function"}
    containers = {"class_definition": "class"}
    method_parents = frozenset({"class"})

    def load(self) -> object:
        import tree_sitter_python

        return tree_sitter_python.language()

    def classify(self, node: Node, parent: Decl | None) -> Role:
        if node.type == "decorated_definition":
            inner = node.child_by_field_name("definition")
            role = self.classify(inner, parent) if inner is not None else CODE
            if isinstance(role, Decl):
                role.node = node
            return role
        if parent is None and _py_is_module_docstring(node):
            return DOC
        if node.type in ("if_statement", "try_statement", "with_statement") and any(
            c.type in _PY_DEFS for c in _py_blocks(node)
        ):
            return TRANSPARENT  # `if sys.platform == ...: def f(): ...`
        return super().classify(node, parent)

    def children_in_place(self, node: Node) -> list[Node]:
        return _py_blocks(node) if node.type != "ERROR" else node.children


# ----------------------------------------------------------------------------------------
# TLA+ (and PlusCal algorithms inside comments)

_TLA_THEOREM_KEYWORDS = {"THEOREM": "theorem", "LEMMA": "lemma", "PROPOSITION": "proposition", "COROLLARY": "corollary"}


class TlaPlus(Grammar):
    name = "tlaplus"
    comment_line = re.compile(r"\s*(\\\*|\(\*)")
    prefix = frozenset({"comment", "block_comment"})
    ignore = frozenset({"header_line", "double_line", "single_line", "extends", "instance", "extramodular_text"})
    decls = {
        "operator_definition": "operator",
        "function_definition": "operator",
        "module_definition": "operator",
        "theorem": "theorem",
        "assumption": "assumption",
        "constant_declaration": "declaration",
        "variable_declaration": "declaration",
        "recursive_declaration": "declaration",
        "pcal_procedure": "procedure",
        "pcal_process": "process",
        "pcal_macro": "macro",
        "pcal_definitions": "define",
    }
    containers = {"module": "module", "pcal_algorithm": "algorithm"}
    mergeable = frozenset({"declaration"})
    absorb = frozenset({"declaration", "define"})

    def load(self) -> object:
        import tree_sitter_tlaplus

        return tree_sitter_tlaplus.language()

    def classify(self, node: Node, parent: Decl | None) -> Role:
        t = node.type
        if t == "block_comment":
            algo = next((c for c in node.named_children if c.type == "pcal_algorithm"), None)
            return self.classify(algo, parent) if algo is not None else PREFIX
        if t == "local_definition":
            inner = next((c for c in node.named_children), None)
            role = self.classify(inner, parent) if inner is not None else CODE
            if isinstance(role, Decl):
                role.node = node
            return role
        if t in ("pcal_var_decls", "identifier") and parent is not None:
            return IGNORE if t == "identifier" else CODE
        role = super().classify(node, parent)
        if isinstance(role, Decl):
            if t == "theorem":
                role.kind = _TLA_THEOREM_KEYWORDS.get(node.children[0].type if node.children else "", "theorem")
            if t == "module":
                role.header = "auto"
                role.label = f"MODULE {role.name}"
        return role

    def name_of(self, node: Node) -> str:
        t = node.type
        if t in ("constant_declaration", "variable_declaration", "recursive_declaration"):
            names = []
            for c in node.named_children:
                n = c.child_by_field_name("name") if c.type != "identifier" else c
                names.append(self.text(n if n is not None else c))
            return ", ".join(names)
        if t == "pcal_procedure":
            decl = next((c for c in node.named_children if c.type == "pcal_proc_decl"), None)
            return self.field_text(decl, "name") if decl is not None else ""
        return super().name_of(node)

    def body(self, node: Node) -> list[Node]:
        return list(node.children)


# ----------------------------------------------------------------------------------------
# C


def _c_has_function_declarator(node: Node | None) -> bool:
    while node is not None:
        if node.type == "function_declarator":
            return True
        node = node.child_by_field_name("declarator")
    return False


class C(Grammar):
    name = "c"
    prefix = frozenset({"comment"})
    ignore = frozenset({"preproc_include", "preproc_call", ";"})
    transparent = frozenset(  # walked in place: conditional compilation, extern "C" { ... }
        "ERROR preproc_ifdef preproc_if preproc_else preproc_elif preproc_elifdef".split()
        + ["linkage_specification", "declaration_list"]
    )
    decls = {
        "function_definition": "function",
        "struct_specifier": "struct",
        "union_specifier": "union",
        "enum_specifier": "enum",
        "type_definition": "typedef",
        "preproc_def": "macro",
        "preproc_function_def": "macro",
        "declaration": "variable",
    }
    mergeable = frozenset({"macro", "typedef", "variable", "declaration"})

    def load(self) -> object:
        import tree_sitter_c

        return tree_sitter_c.language()

    def classify(self, node: Node, parent: Decl | None) -> Role:
        t = node.type
        if t == "preproc_def" and node.child_by_field_name("value") is None:
            return IGNORE  # include guards and flags
        if t in ("struct_specifier", "union_specifier", "enum_specifier") and node.child_by_field_name("body") is None:
            return IGNORE  # forward declaration
        role = super().classify(node, parent)
        if isinstance(role, Decl) and t == "declaration":
            declarators = node.children_by_field_name("declarator")
            spec = node.child_by_field_name("type")
            if any(_c_has_function_declarator(d) for d in declarators):
                role.kind = "declaration"  # a prototype
            elif not declarators and spec is not None and spec.child_by_field_name("body") is not None:
                role.kind = spec.type.split("_")[0]  # `struct foo {...};`
                role.name = self.field_text(spec, "name")
                role.mergeable = False
        return role

    def name_of(self, node: Node) -> str:
        t = node.type
        if t == "function_definition":
            return self._declarator_name(node.child_by_field_name("declarator"))
        if t in ("type_definition", "declaration"):
            return ", ".join(self._declarator_name(d) for d in node.children_by_field_name("declarator"))
        return super().name_of(node)

    def _declarator_name(self, node: Node | None) -> str:
        """The identifier inside a (pointer / function / array ...) declarator."""
        while node is not None:
            if node.type in ("identifier", "field_identifier", "type_identifier", "primitive_type"):
                return self.text(node)
            inner = node.child_by_field_name("declarator")
            if inner is None:
                inner = next(
                    (c for c in node.named_children if c.type.endswith("declarator") or c.type == "identifier"), None
                )
            node = inner
        return ""

    def children_in_place(self, node: Node) -> list[Node]:
        if node.type == "preproc_if" or node.type == "preproc_elif":
            return [c for i, c in enumerate(node.children) if node.field_name_for_child(i) != "condition"]
        return super().children_in_place(node)


# ----------------------------------------------------------------------------------------
# Go


class Go(Grammar):
    name = "go"
    prefix = frozenset({"comment"})
    ignore = frozenset({"package_clause", "import_declaration"})
    decls = {
        "function_declaration": "function",
        "method_declaration": "method",
        "type_declaration": "type",
        "var_declaration": "variable",
        "const_declaration": "const",
    }
    mergeable = frozenset({"variable", "const", "type"})

    def load(self) -> object:
        import tree_sitter_go

        return tree_sitter_go.language()

    def name_of(self, node: Node) -> str:
        if node.type in ("type_declaration", "var_declaration", "const_declaration"):
            names: list[str] = []
            for spec in node.named_children:
                if spec.type in ("var_spec_list", "const_spec_list"):
                    specs = spec.named_children
                else:
                    specs = [spec]
                for s in specs:
                    names.extend(self.text(n) for n in s.children_by_field_name("name"))
            return ", ".join(n for n in names if n)
        return super().name_of(node)


# ----------------------------------------------------------------------------------------
# JavaScript / TypeScript / TSX


_JS_FUNCTION_VALUES = frozenset({"arrow_function", "function_expression", "function", "generator_function", "class"})


def _js_holds_function(node: Node) -> bool:
    for d in node.named_children:
        v = d.child_by_field_name("value") if d.type == "variable_declarator" else None
        if v is not None and v.type in _JS_FUNCTION_VALUES:
            return True
    return False


class JavaScript(Grammar):
    name = "javascript"
    prefix = frozenset({"comment", "decorator", "hash_bang_line"})
    ignore = frozenset({"import_statement", "empty_statement"})
    decls = {
        "function_declaration": "function",
        "generator_function_declaration": "function",
        "function_signature": "function",
        "interface_declaration": "interface",
        "type_alias_declaration": "type",
        "enum_declaration": "enum",
        "lexical_declaration": "variable",
        "variable_declaration": "variable",
        "method_definition": "method",
        "method_signature": "method",
        "abstract_method_signature": "method",
        "field_definition": "field",
        "public_field_definition": "field",
    }
    containers = {
        "class_declaration": "class",
        "abstract_class_declaration": "class",
        "internal_module": "namespace",
        "module": "namespace",
    }
    mergeable = frozenset({"variable", "type", "field"})
    absorb = frozenset({"field"})

    def load(self) -> object:
        import tree_sitter_javascript

        return tree_sitter_javascript.language()

    def classify(self, node: Node, parent: Decl | None) -> Role:
        t = node.type
        if t == "export_statement":
            inner = node.child_by_field_name("declaration")
            if inner is None:
                return CODE if node.child_by_field_name("value") is not None else IGNORE
            return self._wrapped(node, inner, parent)
        namespace = t == "expression_statement" and [c.type for c in node.named_children] == ["internal_module"]
        if t == "ambient_declaration" or namespace:
            inner = next((c for c in node.named_children if c.type != "comment"), None)
            return self._wrapped(node, inner, parent) if inner is not None else CODE
        if t in ("lexical_declaration", "variable_declaration") and self._is_require(node):
            return IGNORE
        role = super().classify(node, parent)
        if isinstance(role, Decl):
            if role.kind == "variable" and _js_holds_function(node):
                role.mergeable = False  # `const f = (x) => ...` is a function in all but name
            if t in ("method_signature", "abstract_method_signature"):
                role.absorb = role.mergeable = True
        return role

    def _is_require(self, node: Node) -> bool:
        """``const x = require("x")``: an import in CommonJS."""
        declarators = [d for d in node.named_children if d.type == "variable_declarator"]
        for d in declarators:
            v = d.child_by_field_name("value")
            if v is None or v.type != "call_expression" or self.field_text(v, "function") != "require":
                return False
        return bool(declarators)

    def _wrapped(self, outer: Node, inner: Node, parent: Decl | None) -> Role:
        role = self.classify(inner, parent)
        if isinstance(role, Decl):
            role.node = outer
        return role

    def name_of(self, node: Node) -> str:
        if node.type in ("lexical_declaration", "variable_declaration"):
            return ", ".join(
                first_line(self.field_text(d, "name")) for d in node.named_children if d.type == "variable_declarator"
            )
        if node.type == "module":
            return self.field_text(node, "name").strip("\"'")
        return super().name_of(node)

    def label(self, node: Node, kind: str, name: str) -> str:
        if node.type == "module":
            return f'module "{name}"'
        return super().label(node, kind, name)


class TypeScript(JavaScript):
    name = "typescript"

    def load(self) -> object:
        import tree_sitter_typescript

        return tree_sitter_typescript.language_typescript()


class Tsx(JavaScript):
    name = "tsx"

    def load(self) -> object:
        import tree_sitter_typescript

        return tree_sitter_typescript.language_tsx()


# ----------------------------------------------------------------------------------------
# Java


class Java(Grammar):
    name = "java"
    attribute_line = re.compile(r"\s*@")
    prefix = frozenset({"line_comment", "block_comment"})
    ignore = frozenset({"package_declaration", "import_declaration", ";"})
    transparent = frozenset({"ERROR", "enum_body_declarations"})
    decls = {
        "method_declaration": "method",
        "constructor_declaration": "constructor",
        "compact_constructor_declaration": "constructor",
        "field_declaration": "field",
        "constant_declaration": "field",
        "annotation_type_element_declaration": "method",
        "enum_constant": "constant",
    }
    containers = {
        "class_declaration": "class",
        "interface_declaration": "interface",
        "enum_declaration": "enum",
        "record_declaration": "record",
        "annotation_type_declaration": "annotation",
    }
    mergeable = frozenset({"field", "constant"})
    absorb = frozenset({"field", "constant"})

    def load(self) -> object:
        import tree_sitter_java

        return tree_sitter_java.language()

    def classify(self, node: Node, parent: Decl | None) -> Role:
        role = super().classify(node, parent)
        if isinstance(role, Decl) and node.type in ("method_declaration", "annotation_type_element_declaration"):
            if node.child_by_field_name("body") is None:  # abstract / interface method
                role.absorb = role.mergeable = True
        return role

    def name_of(self, node: Node) -> str:
        if node.type in ("field_declaration", "constant_declaration"):
            return ", ".join(self.field_text(d, "name") for d in node.children_by_field_name("declarator"))
        return super().name_of(node)


def grammar_for(language: str) -> type[Grammar] | None:
    """The tree-sitter grammar class the language registry names for ``language``, or None."""
    lang = _registry.get(language)
    chunker = lang.chunker if lang is not None else None
    if chunker is None or chunker.takes != "grammar":
        return None
    return chunker.resolve()  # type: ignore[return-value]


# Language name -> grammar class, as the registry stands at import (kept for callers).
GRAMMARS: dict[str, type[Grammar]] = {
    lang.name: g for lang in _registry.all_languages() if (g := grammar_for(lang.name)) is not None
}
