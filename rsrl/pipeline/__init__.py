"""spec -> plan -> Ray DAG of stages, with a content-addressed stage cache.

plan.py compiles (no Ray needed), apply.py runs on Ray, cache.py/lock.py guard the workdir.
"""
