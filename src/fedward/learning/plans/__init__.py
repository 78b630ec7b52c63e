"""Training plans shipped with fedward; a node may auto-approve them as default plans.

Each file holds imports and one plan class only: ``plan_source`` sends exactly that.

- ``sklearn_classifier``  ``SGDClassifierPlan``  logistic regression (SGD) on a CSV table
- ``sklearn_regressor``   ``SGDRegressorPlan``   linear regression (SGD) on a CSV table
- ``sklearn_perceptron``  ``PerceptronPlan``     perceptron on a CSV table
- ``torch_mlp``           ``TorchMLPPlan``       multi-layer perceptron on a CSV table
- ``torch_cnn``           ``TorchCNNPlan``       small CNN on images / MNIST / 8x8 digits
"""
