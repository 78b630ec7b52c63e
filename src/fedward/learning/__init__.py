"""Training plans, dataset loaders and metrics: the only place sklearn and torch are imported.

- ``plan``          ``TrainingPlan`` contract, ``TrainOutcome``, ``Progress``, ``DatasetView``
- ``plan_source``   extract a plan class's source (researcher) and load it from source (node worker)
- ``sklearn_plan``  ``SklearnTrainingPlan`` (partial_fit models) ; ``plans/`` the shipped plans
- ``datasets``      loaders and validators per dataset type (csv, images, mnist, medical-folder)
- ``metrics``       accuracy, F1, ROC AUC, precision, recall, MSE, MAE, explained variance
"""
