"""The logic behind the SDK face (`import cairn`): `Client` with its registry methods,
the fluent API and its run stack, where the data lives (context.py), model loading
(`cairn.load_model`), sklearn model logging and autologging.

Imports: every room below and `cairn.engine.datadir`; never the face `cairn` itself.
"""
