"""Data and output versioning with DVC: ``dvc.yaml`` generated from ``pipeline.yaml`` (stages),
object verification (objects), and recording / moving outputs (repo)."""
