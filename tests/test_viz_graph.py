"""Printing and drawing autograd graphs."""

import minidl
from minidl.viz import print_graph, to_dot


def test_print_graph_shows_ops_and_leaves(capsys):
    x = minidl.ones(2, requires_grad=True)
    x.name = "x"
    y = x * 3
    print_graph((y * y).sum())
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Sum -> tensor scalar float32"
    assert out[1] == "└── Mul -> tensor 2 float32"
    assert "    ├── Mul -> tensor 2 float32" in out
    assert "    │   ├── x 2 float32, requires_grad" in out
    assert out[-1].endswith("(shown above)")


def test_to_dot_lists_every_node_and_edge_once():
    a = minidl.ones(2, 3, requires_grad=True)
    b = minidl.ones(3, requires_grad=True)
    dot = to_dot((a @ b).relu())
    assert dot.startswith("digraph autograd {") and dot.endswith("}")
    assert dot.count('label="MatMul"') == 1
    assert dot.count('label="ReLU"') == 1
    assert dot.count("shape=box") == 4  # a, b, a @ b, relu(a @ b)
    assert dot.count("->") == 5  # a, b -> MatMul -> t -> ReLU -> out


def test_printing_a_deep_graph_needs_no_recursion():
    x = minidl.ones(1, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y + 1
    assert to_dot(y).count('label="Add"') == 5000
