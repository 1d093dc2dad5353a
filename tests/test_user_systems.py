"""A lab's own systems: references resolved, probed once, hashed; the library with any d_in, d_out."""

import textwrap

import numpy as np
import pytest

from tlkeras.core import config as study_config
from tlkeras.core.config import StudyConfig
from tlkeras.core.errors import ConfigError
from tlkeras.core.user_config import resolve_user_systems
from tlkeras.execution import training
from tlkeras.nn import data
from tlkeras.systems import user as user_systems
from tlkeras.systems.domains import Domain

MODELS = textwrap.dedent('''
    import numpy as np

    def three_to_one(x):
        return (x[:, 0] + 2 * x[:, 1] - x[:, 2])[:, None]

    def vector(x):
        return x.sum(axis=1)

    def wrong_rows(x):
        return np.zeros((len(x) + 1, 2))

    def three_d(x):
        return np.zeros((len(x), 2, 1))

    def nan_at_zero(x):
        return np.stack([1.0 / x[:, 0], x[:, 1]], axis=1)

    def raises(x):
        raise RuntimeError("solver did not converge")

    def strings(x):
        return [["a", "b"]] * len(x)

    def exits(x):
        raise SystemExit(3)

    not_callable = 3
''')


@pytest.fixture()
def models_file(tmp_path):
    path = tmp_path / "lab_models.py"
    path.write_text(MODELS)
    return path


def test_a_file_reference_is_loaded_called_and_hashed(models_file):
    reference = f"{models_file}:three_to_one"
    assert user_systems.probe(reference, Domain(0.0, 5.0), 3) == 1
    assert user_systems.short_name(reference) == "lab_models.three_to_one"
    assert len(user_systems.source_sha256(reference)) == 64
    y = user_systems.call(reference, user_systems.load_function(reference), np.array([[1.0, 2.0, 3.0]]))
    assert y.tolist() == [[2.0]]
    # One output returned as a vector is read as [n, 1].
    assert user_systems.probe(f"{models_file}:vector", Domain(0.0, 1.0), 4) == 1


def test_a_module_reference_resolves_on_the_python_path(models_file, monkeypatch):
    package = models_file.parent / "mylab"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "circuits.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(models_file.parent))
    assert user_systems.probe("mylab.circuits:three_to_one", Domain(0.0, 1.0), 3) == 1
    assert user_systems.source_path("mylab.circuits:g") == package / "circuits.py"
    assert user_systems.short_name("mylab.circuits:g") == "circuits.g"
    reference = "numpy:cumsum"  # cumsum of [n, 2] flattens: wrong shape, and the message says so
    with pytest.raises(user_systems.SystemReferenceError, match=r"numpy:cumsum returned shape \[56\]"):
        user_systems.probe(reference, Domain(0.0, 1.0), 2)


@pytest.mark.parametrize("function, message", [
    ("wrong_rows", r"returned shape \[29, 2\] for inputs of shape \[28, 2\]: expected \[28, outputs\]"),
    ("three_d", r"returned shape \[28, 2, 1\]"),
    ("nan_at_zero", r"returned inf \(not finite\) for output 1 at inputs \[0, 0\]"),
    ("raises", r"raised RuntimeError: solver did not converge on inputs of shape \[28, 2\]"),
    ("strings", r"returned list, not numbers"),
    ("exits", r"raised SystemExit"),
    ("not_callable", r"'not_callable' in .* is not a function"),
    ("missing", r"defines no 'missing'"),
])
def test_a_broken_function_is_named_with_what_is_wrong(models_file, function, message):
    with pytest.raises(user_systems.SystemReferenceError, match=message) as caught:
        user_systems.probe(f"{models_file}:{function}", Domain(0.0, 1.0), 2)
    assert "\n" not in str(caught.value) and str(models_file) in str(caught.value)


@pytest.mark.parametrize("reference, message", [
    ("nowhere/model.py:g", r"file nowhere/model.py does not exist"),
    ("no_such_module_xyz:g", r"module 'no_such_module_xyz' cannot be found.*path/to/no_such_module_xyz.py:g"),
    ("no_such_package_xyz.models:g", r"cannot be found .*as path/to/models.py:g"),
    ("os.path:join", r"module 'os.path' is built into Python .*no source file.* path/to/file.py:join"),
    ("model.py:", r"is not a function reference"),
    ("model.py:1g", r"is not a function reference"),
    ("not a module:g", r"neither a .py file nor a dotted module name"),
])
def test_a_reference_that_does_not_resolve_is_one_line(reference, message):
    with pytest.raises(user_systems.SystemReferenceError, match=message):
        user_systems.probe(reference, Domain(0.0, 1.0), 2)


def test_an_import_error_in_the_users_file_is_one_line(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import numpy as np\nraise ImportError('scipy is missing')\n")
    with pytest.raises(user_systems.SystemReferenceError, match=r"importing .* raised ImportError: scipy is missing"):
        user_systems.load_function(f"{path}:g")


def test_config_resolution_fills_dimensions_hashes_and_absolute_paths(models_file, monkeypatch):
    monkeypatch.chdir(models_file.parent)
    config = resolve_user_systems(StudyConfig(simple_system="lab_models.py:three_to_one",
                                              systems=("lab_models.py:vector",), num_inputs=3)).validate()
    assert (config.input_dimension, config.output_dimension) == (3, 1)
    assert config.simple_system == f"{models_file}:three_to_one"
    assert config.simple_source == config.system_sources[0] == user_systems.source_sha256(config.simple_system)
    assert config.network.layer_sizes()[0] == (3, 10) and config.network.layer_sizes()[-1] == (10, 1)
    with pytest.raises(ConfigError, match="same number of outputs"):
        resolve_user_systems(StudyConfig(simple_system=f"{models_file}:vector", systems=("hill2",), num_inputs=2))
    with pytest.raises(ConfigError, match=r"three_to_one raised IndexError: index 2 is out of bounds"):
        resolve_user_systems(StudyConfig(simple_system=f"{models_file}:three_to_one", systems=("hill2",)))
    with pytest.raises(ConfigError, match="built-in system 'hill2' has 2 inputs"):
        resolve_user_systems(StudyConfig(simple_system=f"{models_file}:three_to_one", systems=("hill2",),
                                         num_inputs=3))


def test_training_sets_of_a_user_system_have_its_shapes_and_are_reproducible(models_file):
    config = resolve_user_systems(StudyConfig(
        simple_system=f"{models_file}:three_to_one", systems=(f"{models_file}:vector",), num_inputs=3,
        big_domain=(0, 1, -5, 5, 10, 20), small_domain=(0, 0.5, -5, 0, 10, 15))).validate()
    member = training.Member("baseline", "lab_models.vector", 64, 0)
    x, y = training.training_set(config, member)
    assert x.shape == (64, 3) and y.shape == (64, 1)
    assert config.small_box.contains(x).all()  # per-input domains
    again = training.training_set(config, member)
    np.testing.assert_array_equal(again[1], y)
    clean = x.astype(np.float64).sum(axis=1, keepdims=True)
    assert 0.5 < np.std(y - clean) < 1.5  # real_noise = 1 on top of the function


def test_the_pipeline_reports_a_function_that_fails_on_the_full_set(models_file):
    x_probe_safe = Domain(1.0, 2.0)  # nan_at_zero is finite on this domain...
    function = user_systems.load_function(f"{models_file}:nan_at_zero")
    system = lambda x: user_systems.call("nan_at_zero", function, x)  # noqa: E731
    data.sample_set(system, x_probe_safe, 16, 2, 0.0, seed=0)
    with pytest.raises(user_systems.SystemReferenceError, match=r"^nan_at_zero returned inf"):  # ...not here
        data.sample_set(system, Domain((0.0, 0.0), (0.0, 1.0)), 16, 2, 0.0, seed=0)


def test_built_in_systems_are_unchanged_by_the_generalisation():
    config = study_config.StudyConfig().validate()
    assert config.network.layer_sizes()[0] == (2, 10) and config.input_dimension == 2
    assert config.system_names() == ["hill2"] and config.simple_name == "synthetic"


def test_a_fault_the_probe_missed_is_still_one_config_error_before_any_work(tmp_path):
    from tlkeras.core.user_config import with_normalisation

    g = tmp_path / "banded.py"  # NaN on a narrow band of the domain: the probe's 28 points miss it
    g.write_text("import numpy as np\ndef g(x):\n    y = x ** 2\n    y[(x > 9.99) & (x < 10.01)] = np.nan\n    return y\n")
    config = resolve_user_systems(StudyConfig(simple_system=f"{g}:g", systems=(f"{g}:g",), num_inputs=2,
                                              big_domain=(0, 20), small_domain=(0, 10)))
    with pytest.raises(ConfigError, match=r"banded.py:g returned nan .* after the probe"):
        with_normalisation(config)


def test_a_real_system_named_like_the_simple_one_but_elsewhere_is_refused(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "model.py").write_text("def g(x):\n    return x\n")
    with pytest.raises(ConfigError, match=r"names other than the simple system's \('model.g'"):
        resolve_user_systems(StudyConfig(simple_system=f"{tmp_path}/a/model.py:g",
                                         systems=(f"{tmp_path}/b/model.py:g",))).validate()


def test_a_function_returning_strings_or_integers_is_warned_of_once(tmp_path, capsys):
    path = tmp_path / "typed.py"
    path.write_text("import numpy as np\n"
                    "def strings(x):\n    return [[str(v) for v in row] for row in x]\n"
                    "def integers(x):\n    return np.round(x).astype(int)\n"
                    "def floats(x):\n    return x * 1.0\n"
                    "def complex_real(x):\n    return x + 0j\n"
                    "def complex_imaginary(x):\n    return x + 1j\n")
    for name, kind in (("strings", "strings"), ("integers", "integers"), ("floats", None),
                       ("complex_real", "complex numbers (all real)")):
        reference = f"{path}:{name}"
        function = user_systems.load_function(reference)
        for _ in range(2):
            y = user_systems.call(reference, function, np.array([[1.25, 2.0]]))
        assert y.dtype == np.float64
        lines = [line for line in capsys.readouterr().err.splitlines() if line]
        if kind is None:
            assert lines == []
        else:
            assert len(lines) == 1 and lines[0].startswith(f"warning: {reference} returned {kind}"), lines
    reference = f"{path}:complex_imaginary"
    with pytest.raises(user_systems.SystemReferenceError, match="returned complex numbers with an imaginary part"):
        user_systems.call(reference, user_systems.load_function(reference), np.array([[1.25, 2.0]]))


def test_the_users_module_is_imported_once_and_announced_before(tmp_path):
    path = tmp_path / "counted.py"
    log = tmp_path / "imports.log"
    path.write_text(f"open({str(log)!r}, 'a').write('imported\\n')\nimport numpy as np\n"
                    "def g(x):\n    return x[:, :1] * 2.0\n")
    said = []
    for _ in range(2):
        assert user_systems.probe(f"{path}:g", Domain(0.0, 1.0), 2, report=said.append) == 1
    assert log.read_text() == "imported\n"
    assert said[0] == f"importing your simple model {path}:g ..." and said[1].startswith(f"probing {path}:g on")
