"""Built-in mlspec targets, importable as ``mlspec.generators``.

Each target is one module exposing a pure ``generate(ctx) -> list[Artefact]``
function; targets are registered through the ``mlspec.generators`` entry-point
group (see ``mlspec.registry``), the built-ins the same way as third-party ones.
"""
