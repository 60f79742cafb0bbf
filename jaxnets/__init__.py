"""jaxnets: the classic deep nets of "Deep Learning: A Closer Look" in JAX/Flax."""

__version__ = "0.1.0"
