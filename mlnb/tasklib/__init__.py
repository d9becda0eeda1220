"""What task notebooks import: the task context (``task``), data checks, the evaluation and export
steps, and the example's scikit-learn helpers (``modeling``)."""
