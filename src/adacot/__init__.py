"""adacot: chain-of-thought SFT data fitted to one student model (arXiv 2504.11919), as a DVC pipeline.

The package is a library of pure functions on polars frames and dataclasses; the DVC stage scripts in
``stages/`` are thin wrappers around it. Importing it does nothing but define names: heavy imports
(torch, vllm, trl) happen inside the functions that need them.
"""

__version__ = "0.1.0"
