"""multiplan: multi-plan integration (多规合一) for Hainan's plans, one store and one map."""

__version__ = "0.1.0"
