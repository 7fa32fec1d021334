"""Source extraction: only what is used, renamed where names collide, torch and stdlib imports only."""
from __future__ import annotations

import ast
import textwrap

import pytest

from einsearch.export.source import ExportError, SourceBundle, load_module


def _write(tmp_path, name: str, text: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    load_module.cache_clear()


@pytest.fixture
def modules(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    _write(tmp_path, "xmod_a", '''
        import math

        import torch

        SCALE = 2.0
        UNUSED = 3


        def helper(x):
            return x * SCALE


        class A(torch.nn.Module):
            def forward(self, x):
                return helper(x) + math.pi
    ''')
    _write(tmp_path, "xmod_b", '''
        from xmod_a import A


        def helper(x):  # same name as xmod_a.helper, different function
            return x - 1


        class B(A):
            def forward(self, x):
                return helper(super().forward(x))
    ''')
    yield tmp_path
    load_module.cache_clear()


def _emit(bundle: SourceBundle) -> str:
    bundle.assign_names()
    imports = "\n".join(sorted(bundle.import_lines()))
    return imports + "\n\n" + "\n\n".join(bundle.text_of(d) for d in bundle.ordered())


def test_only_used_definitions_and_renamed_collisions(modules):
    bundle = SourceBundle(extra_modules=("xmod_a", "xmod_b"))
    import xmod_b

    bundle.add_object(xmod_b.B)
    text = _emit(bundle)
    names = [n.name if hasattr(n, "name") else n.targets[0].id for n in ast.parse(text).body
             if not isinstance(n, (ast.Import, ast.ImportFrom))]
    assert names == ["SCALE", "helper", "A", "helper_xmod_b", "B"]  # UNUSED left out, A's module first
    namespace: dict = {}
    exec(text, namespace)
    import torch

    x = torch.ones(2)
    assert torch.equal(namespace["B"]().forward(x), xmod_b.B().forward(x))


def test_reserved_names_are_not_taken(modules):
    bundle = SourceBundle(reserved=("helper",), extra_modules=("xmod_a",))
    import xmod_a

    bundle.add_object(xmod_a.A)
    text = _emit(bundle)
    assert "def helper_xmod_a(" in text and "return helper_xmod_a(x) + math.pi" in text


def test_a_local_name_that_would_need_renaming_is_refused(modules):
    _write(modules, "xmod_c", '''
        from xmod_a import A


        def helper(x):
            return x


        def use(x):
            helper = 3  # shadows the module-level helper: renaming it would change meaning
            return x + helper


        class C(A):
            def forward(self, x):
                return use(helper(x))
    ''')
    import xmod_c

    bundle = SourceBundle(extra_modules=("xmod_a", "xmod_c"))
    bundle.add_object(xmod_c.C)
    bundle.assign_names()
    with pytest.raises(ExportError, match="also a local name"):
        [bundle.text_of(d) for d in bundle.ordered()]


def test_third_party_import_is_refused(modules):
    _write(modules, "xmod_d", '''
        import lark


        def parse_it(text):
            return lark.Lark(text)
    ''')
    import xmod_d

    bundle = SourceBundle(extra_modules=("xmod_d",))
    with pytest.raises(ExportError, match="other than torch"):
        bundle.add_object(xmod_d.parse_it)


def test_whole_module_import_of_inlined_package_is_refused(modules):
    _write(modules, "xmod_e", '''
        import xmod_a as other


        def f(x):
            return other.helper(x)
    ''')
    import xmod_e

    bundle = SourceBundle(extra_modules=("xmod_a", "xmod_e"))
    with pytest.raises(ExportError, match="whole module"):
        bundle.add_object(xmod_e.f)


def test_registry_decorator_dropped_and_op_name_kept():
    from einsearch.ops import get_op

    cls = get_op("short_conv").cls
    bundle = SourceBundle()
    definition = bundle.add_object(cls)
    bundle.assign_names()
    text = bundle.text_of(definition)
    assert "@register" not in text and text.startswith(f"class {cls.__name__}(")
    assert text.endswith(f"{cls.__name__}.op_name = 'short_conv'")
    assert ("einsearch.ops.registry", "register") not in bundle.defs  # the registry is not exported


def test_equivalent_imports_are_kept_and_conflicting_ones_refused(modules):
    _write(modules, "xmod_f", '''
        import torch.nn
        from xmod_a import A


        class F(A):
            def forward(self, x):
                return torch.nn.functional.relu(super().forward(x))
    ''')
    import xmod_f

    bundle = SourceBundle(extra_modules=("xmod_a", "xmod_f"))
    bundle.add_object(xmod_f.F)
    assert {"import torch", "import torch.nn"} <= bundle.import_lines()  # both bind torch
    _write(modules, "xmod_g", '''
        import math as torch  # binds "torch" to another module


        def g(x):
            return torch.sqrt(x)
    ''')
    import xmod_g

    bundle.extra_modules.add("xmod_g")
    with pytest.raises(ExportError, match="bind 'torch' differently"):
        bundle.add_object(xmod_g.g)
