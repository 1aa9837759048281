"""The model registry: catalogs and schemas (Unity Catalog's namespace), registered
models, versions, aliases, stages, lineage, and the registration pipeline that turns a
PENDING_REGISTRATION version into a READY ONNX model. `contract.RegistryStore` is the
interface; `lmdbstore.LmdbRegistryStore` implements it.

Imports: errors, store/, query/, tracking/, loggedmodels/, models/.
"""
