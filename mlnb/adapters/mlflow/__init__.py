"""MLflow: tracking runs of builds and tasks, and loading logged models safely."""
