"""Reusable test support: reference models, hypothesis strategies and state machines.

Shipped with the package so that users can drive their own policies and platforms through the
same property tests we run.  Only this package (and ``tests/``) imports hypothesis.
"""
