"""Demo data: a handful of scikit-learn models trained with `cairn.autolog()` into the
"cairn-demo" experiment, plus one hand-logged run with a 50-step metric curve, and two
of those models registered (ONNX-verified): `iris` v1 in Production with alias
`champion`, and `breast-cancer` v1 in Staging.

Everything comes from data sets bundled inside scikit-learn, so it runs offline. The
models are small on purpose: the whole demo must finish in well under 20 s on two
cores, since `cairn up` runs it on first start.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

EXPERIMENT = "cairn-demo"
CURVE_STEPS = 50
# run name -> (registered model name, stage, alias)
REGISTER = {
    "iris-logreg": ("iris", "Production", "champion"),
    "breast-cancer-forest": ("breast-cancer", "Staging", None),
}


def _models():
    """(run name, data set loader, estimator, score name) for each autologged run.
    Built lazily so importing this module does not import scikit-learn."""
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    return [
        ("iris-logreg", load_iris, LogisticRegression(max_iter=500), "accuracy"),
        (
            "breast-cancer-forest",
            load_breast_cancer,
            RandomForestClassifier(
                n_estimators=50, max_depth=6, random_state=0, n_jobs=1
            ),
            "accuracy",
        ),
        (
            "wine-scaled-svc",
            load_wine,
            Pipeline([("scale", StandardScaler()), ("svc", SVC(C=1.0, kernel="rbf"))]),
            "accuracy",
        ),
        (
            "wine-tree-grid",
            load_wine,
            GridSearchCV(
                DecisionTreeClassifier(random_state=0),
                {"max_depth": [2, 3, 5], "min_samples_leaf": [1, 5]},
                cv=3,
            ),
            "accuracy",
        ),
        ("diabetes-ridge-0.1", load_diabetes, Ridge(alpha=0.1), "r2"),
        ("diabetes-ridge-1", load_diabetes, Ridge(alpha=1.0), "r2"),
        ("diabetes-ridge-10", load_diabetes, Ridge(alpha=10.0), "r2"),
    ]


def _curve(cairn) -> float:
    """A hand-logged run: params, then loss and accuracy over 50 steps, shaped like a
    training curve (exponential decay plus a little deterministic noise)."""
    import numpy as np

    rng = np.random.default_rng(7)
    cairn.log_params(
        {"optimizer": "sgd", "learning_rate": "0.05", "epochs": str(CURVE_STEPS)}
    )
    loss = acc = 0.0
    for step in range(CURVE_STEPS):
        decay = math.exp(-step / 12)
        loss = 2.0 * decay + 0.1 + float(rng.normal(0, 0.02))
        val_loss = 2.1 * decay + 0.18 + float(rng.normal(0, 0.03))
        acc = 0.97 - 0.6 * decay + float(rng.normal(0, 0.005))
        cairn.log_metrics(
            {"loss": loss, "val_loss": val_loss, "accuracy": acc}, step=step
        )
    return acc


def run_demo(data_dir: str | None = None, echo: Callable[[str], None] = print) -> str:
    """Train the demo models into `data_dir` (the SDK's current directory when None)
    and return the experiment id. Prints one line per run through `echo`.

    Leaves the SDK pointed at `data_dir` with cairn-demo active, and scikit-learn
    autologging off: the demo is meant to be run by itself, as `cairn demo` does."""
    from sklearn.model_selection import train_test_split

    import cairn

    if data_dir is not None:
        cairn.set_tracking_dir(str(data_dir))
    exp = cairn.set_experiment(EXPERIMENT)
    exp_id = exp.experiment_id
    cairn.autolog()
    run_ids: dict[str, str] = {}
    try:
        # Convergence and conversion warnings are noise in a demo; the runs still log.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for run_name, load, model, score_name in _models():
                X, y = load(return_X_y=True)
                X_train, X_test, y_train, y_test = train_test_split(
                    X, y, test_size=0.25, random_state=0
                )
                with cairn.start_run(run_name=run_name) as run:
                    model.fit(X_train, y_train)
                    score = float(model.score(X_test, y_test))
                    cairn.log_metric(f"test_{score_name}", score)
                run_ids[run_name] = run.info.run_id
                echo(
                    f"  {run_name:<22} {type(model).__name__:<24} test {score_name} {score:.3f}  run {run.info.run_id}"
                )
            with cairn.start_run(run_name="hand-logged-curve") as run:
                acc = _curve(cairn)
            echo(
                f"  {'hand-logged-curve':<22} {'(manual logging)':<24} final accuracy {acc:.3f}  run {run.info.run_id}"
            )
    finally:
        cairn.autolog(disable=True)
    _register(cairn, run_ids, echo)
    return exp_id


def _register(cairn, run_ids: dict[str, str], echo: Callable[[str], None]) -> None:
    """Register the demo's chosen runs' models, then stage and alias them."""
    client = cairn.Client()
    for run_name, (name, stage, alias) in REGISTER.items():
        mv = cairn.register_model(f"runs:/{run_ids[run_name]}/model", name)
        client.transition_model_version_stage(name, mv.version, stage)
        if alias:
            client.set_registered_model_alias(name, alias, mv.version)
        echo(f"  registered {name} v{mv.version} ({mv.status}) {stage}{f' @{alias}' if alias else ''}")
