"""Show an autograd graph: Graphviz DOT text, or an indented tree in the terminal.

Both walk the graph from the output back to the leaves with an explicit stack,
so a graph of any depth prints.
"""

from __future__ import annotations

from minidl.autograd.tensor import Tensor


def _tensor_label(t: Tensor) -> str:
    if t.name:
        kind = t.name
    elif t.is_leaf:
        kind = "leaf" if t.requires_grad else "const"
    else:
        kind = "tensor"
    shape = "x".join(str(n) for n in t.shape) or "scalar"
    grad = ", requires_grad" if t.is_leaf and t.requires_grad else ""
    return f"{kind} {shape} {t.dtype}{grad}"


def to_dot(root: Tensor) -> str:
    """Return the graph that produced ``root`` as Graphviz DOT text.

    Tensors are boxes (name or kind, shape, dtype), ops are ellipses, and
    edges follow the forward direction. Paste the text into any Graphviz
    viewer, or run ``dot -Tsvg``; producing it needs no Graphviz.

    Examples
    --------
    >>> import minidl
    >>> x = minidl.ones(2, requires_grad=True)
    >>> print(to_dot((x * 3).sum()).splitlines()[0])
    digraph autograd {
    """
    lines = ["digraph autograd {", "  rankdir=LR;", '  node [fontname="monospace"];']
    number: dict[int, int] = {}  # short node names t0, t1, ... in visiting order

    def node(t: Tensor) -> str:
        return f"t{number.setdefault(id(t), len(number))}"

    stack = [root]
    node(root)
    while stack:
        t = stack.pop()
        lines.append(f'  {node(t)} [shape=box, label="{_tensor_label(t)}"];')
        fn = t.grad_fn
        if fn is None:
            continue
        op = f"{node(t)}_op"
        lines.append(f'  {op} [shape=ellipse, label="{fn.name}"];')
        lines.append(f"  {op} -> {node(t)};")
        for parent in fn.parents:
            if id(parent) not in number:
                stack.append(parent)
            lines.append(f"  {node(parent)} -> {op};")
    lines.append("}")
    return "\n".join(lines)


def format_graph(root: Tensor) -> str:
    """Return the indented text tree that :func:`print_graph` prints."""
    lines = []
    shown: set[int] = set()
    # Each entry: (tensor, prefix for its own line, prefix for its children).
    stack = [(root, "", "")]
    while stack:
        t, own, below = stack.pop()
        fn = t.grad_fn
        label = _tensor_label(t) if fn is None else f"{fn.name} -> {_tensor_label(t)}"
        if id(t) in shown and fn is not None:
            lines.append(f"{own}{label} (shown above)")
            continue
        shown.add(id(t))
        lines.append(own + label)
        if fn is None:
            continue
        parents = list(fn.parents)
        for i in reversed(range(len(parents))):
            last = i == len(parents) - 1
            stack.append((parents[i], below + ("└── " if last else "├── "),
                          below + ("    " if last else "│   ")))
    return "\n".join(lines)


def print_graph(root: Tensor) -> None:
    """Print the graph that produced ``root`` as an indented tree.

    Each line shows the op that produced a tensor and the tensor's shape and
    dtype; its inputs are indented below it. A subgraph used twice is printed
    once and marked "(shown above)" the second time.

    Examples
    --------
    >>> import minidl
    >>> x = minidl.ones(2, requires_grad=True)
    >>> print_graph((x * 3).sum())
    Sum -> tensor scalar float32
    └── Mul -> tensor 2 float32
        ├── leaf 2 float32, requires_grad
        └── const scalar float32
    """
    print(format_graph(root))
