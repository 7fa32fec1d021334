"""Draw a derivation tree in the terminal (rich)."""
from __future__ import annotations

from rich.tree import Tree

from einsearch.grammar.tree import Arch, Node, format_value, to_text


def _label(node: Node) -> str:
    if node.kind == "net":
        return f"[bold]net[/] width={node.args[0]}"
    if node.kind == "repeat":
        return f"[bold]repeat[/] x{node.args[0]}"
    if node.kind == "block":
        place, norm = node.args
        return f"[bold]block[/] {place}{':' + norm if norm else ''}"
    if node.kind == "op":
        return f"[cyan]{to_text(node)}[/]"
    if not node.children:
        return f"[green]{to_text(node)}[/]"
    args = ", ".join(format_value(a) for a in node.args)
    return f"[bold]{node.kind}[/]{f' {args}' if args else ''}"


def tree(arch: Arch | Node) -> Tree:
    """A rich Tree of the derivation: one line per node."""
    root = arch.root if isinstance(arch, Arch) else arch

    def add(parent: Tree, node: Node) -> None:
        branch = parent.add(_label(node), highlight=False)
        for child in node.children:
            add(branch, child)

    top = Tree(_label(root), highlight=False)
    for child in root.children:
        add(top, child)
    return top
