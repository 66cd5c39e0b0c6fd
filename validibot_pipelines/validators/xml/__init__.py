"""The XML validator: ``.xml`` models (gbXML, FMI model descriptions, ...) validated against an XSD schema.

Control plane: ``intake.py`` (pure-Python defusedxml checks of the model and of uploaded schemas: no DTDs or
entities, well-formedness, size, depth and element caps). Shared by both sides: ``envelopes.py``. Worker side,
no ``dagster``: ``worker/`` (``validate.py``, the trusted runner, and ``child.py``, lxml's schema validation run
inside the sandbox, because libxml2 is native code reading untrusted bytes).
"""
