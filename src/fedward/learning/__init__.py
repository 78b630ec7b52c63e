"""Training plans, dataset loaders and metrics: the only place sklearn and torch are imported.

- ``plan``             ``TrainingPlan`` contract, ``TrainOutcome``, ``Progress``, ``DatasetView``,
                       ``BUFFER_PREFIX`` (parameters that are data statistics)
- ``plan_source``      extract a plan class's source (researcher), load it from source (node)
- ``training_args``    ``TrainingArgs`` (validated), the fixed held-out split, per-round RNG
- ``metrics``          accuracy, F1, precision, recall, ROC AUC, MSE, MAE, explained variance
- ``feature_scaling``  standardisation with pooled moments that travel as ``buffer:`` params
- ``sklearn_plan``     ``SklearnTrainingPlan`` (partial_fit); ``linear_losses``: its loss curve
- ``torch_plan``       ``TorchTrainingPlan``; ``torch_modules`` layers for torch plans
- ``plans``            shipped default plans: SGD classifier/regressor, perceptron, MLP, CNN
- ``datasets``         validators and loaders per dataset type (csv, images, mnist, medical-folder)
- ``setting_names``    unknown settings refused with the closest valid name
- ``fedbiomed_plans``  Fed-BioMed's plan names, signatures and idioms, refused with fedward's
"""

from __future__ import annotations


def __getattr__(name: str) -> object:
    # Fed-BioMed's users import its plan classes from one place: say where fedward's are.
    from fedward.learning.fedbiomed_plans import learning_name

    error = learning_name(name)
    if error is not None:
        raise error
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
