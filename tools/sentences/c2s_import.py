"""Import the real cell2sentence 1.2.0 package without torch / transformers.

`import cell2sentence` runs `cell2sentence/__init__.py`, which imports `csmodel` and `tasks`, and those
do `import torch` and `from transformers import ...` at module level. None of the functions we use
(`utils.generate_vocabulary`, `utils.generate_sentences`, `utils.benchmark_expression_conversion`,
`CSData.adata_to_arrow`) touch torch or transformers. Installing torch from PyPI pulls several GiB
of CUDA wheels, so the venv does not have it. If torch / transformers are really installed they are
used as is; otherwise empty placeholder modules are put into `sys.modules` only for the duration of
`import cell2sentence` and removed straight after (scipy / array-api-compat look for a `torch` entry
in `sys.modules`, so leaving a fake one there would break them).

All third-party modules that cell2sentence.utils imports are imported *before* the placeholders go
in, so none of them can see the fake modules.
"""

import importlib.util
import sys
import types

# Import order matters: these must be imported while sys.modules has no fake torch.
import numpy  # noqa: F401
import pandas  # noqa: F401
import scipy.sparse  # noqa: F401
import scipy.stats  # noqa: F401
import sklearn.linear_model  # noqa: F401
import sklearn.metrics  # noqa: F401
import sklearn.model_selection  # noqa: F401
import sklearn.utils  # noqa: F401
import plotnine  # noqa: F401
import datasets  # noqa: F401
import anndata  # noqa: F401

C2S_EXPECTED_VERSION = "1.2.0"


def _have(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ValueError, ImportError):
        return False


def import_c2s():
    """Return (cell2sentence package, cell2sentence.utils, CSData, list of stubbed module names)."""
    stubbed = []
    if not _have("torch"):
        m = types.ModuleType("torch")

        class Tensor:  # only so that isinstance checks elsewhere cannot crash
            pass

        m.Tensor = Tensor
        sys.modules["torch"] = m
        stubbed.append("torch")
    if not _have("transformers"):
        m = types.ModuleType("transformers")
        for attr in ("AutoTokenizer", "AutoModelForCausalLM", "Trainer", "TrainingArguments"):
            setattr(m, attr, None)
        sys.modules["transformers"] = m
        stubbed.append("transformers")
    try:
        import cell2sentence
        import cell2sentence.utils as c2s_utils
        from cell2sentence.csdata import CSData
    finally:
        for name in stubbed:
            sys.modules.pop(name, None)

    import importlib.metadata as md

    dist_version = md.version("cell2sentence")
    if dist_version != C2S_EXPECTED_VERSION:
        raise RuntimeError(f"expected cell2sentence {C2S_EXPECTED_VERSION}, found {dist_version}")
    return cell2sentence, c2s_utils, CSData, stubbed


def package_versions():
    import importlib.metadata as md

    names = [
        "cell2sentence", "anndata", "scanpy", "numpy", "scipy", "pandas", "pyarrow", "scikit-learn",
        "datasets", "plotnine", "h5py",
    ]
    out = {}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            out[n] = None
    out["python"] = sys.version.split()[0]
    return out
