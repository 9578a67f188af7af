"""Shipped weights of hear_suite (installed as ``hear_suite.weights``); model cards in README.md."""
