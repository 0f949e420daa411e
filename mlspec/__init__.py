"""mlspec: a declarative GitOps configuration compiler for MLOps."""

__version__ = "0.1.0"
