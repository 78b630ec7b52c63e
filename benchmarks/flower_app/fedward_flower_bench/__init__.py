"""No-op federated rounds on Flower's deployment runtime, timed per round."""
